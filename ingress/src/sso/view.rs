//! The employee pages (maud, which escapes every value): a refused sign-in, signed out,
//! and the directory with the person's own edit form. Elements the browser tests read have
//! ids or `data-` attributes.

use super::oidc::Failure;
use crate::store::directory::Person;
use common::mapping;
use maud::{Markup, html};
use serde_json::Value;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
    table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd}\
    tr.me{background:#eef6ff}.error{color:#a00;background:#fee;padding:.6rem;border-radius:4px}\
    header{display:flex;justify-content:space-between;align-items:center}\
    label{display:block;margin-top:.6rem}input{font-size:1rem;padding:.3rem;width:20rem}\
    .locked{color:#666}button{font-size:1rem;padding:.4rem 1rem;margin-top:.8rem}form#profile-form button{display:block}";

fn layout(title: &str, body: Markup) -> Markup {
    crate::html::shell(title, html! { style { (STYLE) } }, body)
}

/// A sign-in that did not complete: what happened, its code (docs/sso.md), and a new start.
pub fn failure(f: &Failure, retry: Option<&str>) -> Markup {
    layout(
        "Sign-in refused",
        html! {
            h1 { "You are not signed in" }
            p.error #sign-in-error data-code=(f.code) role="alert" { (f.message) }
            p { "Reference: " code #sign-in-error-code { (f.code) } }
            @if let Some(href) = retry {
                p { a #sign-in-again href=(href) { "Sign in again" } }
            }
        },
    )
}

/// After sign-out, or when a session has ended.
pub fn signed_out(sign_in: Option<&str>, ended: bool) -> Markup {
    layout(
        "Signed out",
        html! {
            h1 #signed-out { "You are signed out" }
            @if ended {
                p #session-ended { "Your session has ended (it expired, your profile was deactivated, or sign-in settings changed)." }
            }
            @if let Some(href) = sign_in {
                p { a #sign-in-again href=(href) { "Sign in with Okta" } }
            }
        },
    )
}

/// Everything the directory page shows.
pub struct Directory<'a> {
    pub people: &'a [Person],
    pub me: &'a Person,
    /// The person's fields in order, and whether each is editable.
    pub fields: &'a [(String, bool)],
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

fn field<'a>(p: &'a Person, name: &str) -> &'a str {
    p.fields.get(name).and_then(Value::as_str).unwrap_or("")
}

fn name(p: &Person) -> String {
    let preferred = field(p, "preferred_name");
    let first = if preferred.is_empty() {
        field(p, "first_name")
    } else {
        preferred
    };
    match format!("{first} {}", field(p, "last_name")).trim() {
        "" => p.user_name.clone(),
        n => n.to_owned(),
    }
}

pub fn directory(d: &Directory<'_>) -> Markup {
    layout(
        "Directory",
        html! {
            header {
                h1 { "Directory" }
                form #sign-out-form method="post" action="/sso/sign-out" {
                    input type="hidden" name="csrf" value=(d.csrf);
                    span #signed-in-as data-user-name=(d.me.user_name) { "Signed in as " (name(d.me)) " " }
                    button #sign-out type="submit" { "Sign out" }
                }
            }
            @if let Some(e) = d.error {
                p.error #edit-error role="alert" { (e) }
            }
            table #directory {
                thead { tr { th { "Name" } th { "Email" } th { "Job title" } th { "Department" } th { "Phone" } th { "Location" } } }
                tbody {
                    @for p in d.people {
                        tr.person.me[p.id == d.me.id] data-user-name=(p.user_name) {
                            td { (name(p)) }
                            td { (field(p, "email")) }
                            td { (field(p, "job_title")) }
                            td { (field(p, "department")) }
                            td { (field(p, "phone")) }
                            td { (field(p, "location")) }
                        }
                    }
                }
            }
            section #my-profile {
                h2 { "Your profile" }
                form #profile-form method="post" action="/directory/me" {
                    input type="hidden" name="csrf" value=(d.csrf);
                    @for (f, editable) in d.fields {
                        @let id = format!("field-{}", f.replace('.', "-"));
                        label for=(id) {
                            (mapping::label(f))
                            @if !*editable { span.locked { " (synced from Okta, locked)" } }
                        }
                        @if *editable {
                            input id=(id) type="text" name={"field." (f)} value=(field(d.me, f));
                        } @else {
                            input.locked id=(id) type="text" value=(field(d.me, f)) readonly data-locked="true" title="Synced from Okta and locked by your administrator";
                        }
                    }
                    button #save-profile type="submit" { "Save" }
                }
            }
        },
    )
}
