//! The admin page's HTML (maud, which escapes every value): the sign-in form, the
//! integration page, and the error page. Elements the browser test reads have ids or
//! `data-` attributes.

use crate::admin::service::{
    Activity, GuardStatus, LogEntry, Person, ProvisioningStatus, Settings, Sso,
};
use common::mapping::{Mapping, Policy};
use maud::{Markup, html};

mod forms;
mod lists;

use forms::{mappings, provisioning, settings, sso};
use lists::{activity, guard_banner, people, provisioning_log};

/// Everything the integration page shows.
pub struct Page {
    pub guard: GuardStatus,
    pub log: Vec<LogEntry>,
    pub provisioning: ProvisioningStatus,
    pub settings: Settings,
    pub sso: Sso,
    pub mappings: Vec<Mapping>,
    pub activity: Vec<Activity>,
    pub people: Vec<Person>,
}

/// What a page shows once: a token just issued, or a problem with what was submitted.
#[derive(Default)]
pub struct Notice {
    pub token: Option<String>,
    pub error: Option<String>,
}

const POLICIES: [(Policy, &str); 3] = [
    (Policy::CreateOnly, "Write on create only"),
    (Policy::Overwrite, "Overwrite on update"),
    (Policy::Ignore, "Do not map"),
];

pub(super) fn layout(title: &str, body: Markup) -> Markup {
    let head = html! {
        link rel="stylesheet" href="/admin/style.css";
        script src="/admin/app.js" defer {}
    };
    crate::html::shell(title, head, body)
}

/// A form with id `id` that posts `fields` to `action`, with the session's CSRF token.
fn post_form(id: &str, action: &str, csrf: &str, fields: Markup) -> Markup {
    html! {
        form id=(id) method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            (fields)
        }
    }
}

fn error_banner(error: Option<&str>, id: &str) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error id=(id) role="alert" { (e) }
        }
    }
}

/// The sign-in form.
pub fn sign_in(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        html! {
            main.narrow {
                h1 { "Roster admin" }
                p { "Sign in with your organisation's admin key." }
                (error_banner(error, "sign-in-error"))
                (post_form("sign-in-form", "/admin/login", csrf, html! {
                    label for="admin-key" { "Admin key" }
                    input #admin-key type="password" name="admin_key" autocomplete="off" required;
                    button #sign-in type="submit" { "Sign in" }
                }))
            }
        },
    )
}

/// A page for a refused or failed request.
pub fn error(status: u16, message: &str) -> Markup {
    layout(
        "Error",
        html! {
            main.narrow {
                h1 #error-status { "Error " (status) }
                p #error-message { (message) }
                p { a href="/admin" { "Back to the integration page" } }
            }
        },
    )
}

/// The integration page.
pub fn page(p: &Page, csrf: &str, notice: &Notice) -> Markup {
    layout(
        "Okta integration",
        html! {
            header {
                h1 { "Okta integration" }
                (post_form("sign-out-form", "/admin/logout", csrf, html! {
                    button #sign-out.secondary type="submit" { "Sign out" }
                }))
            }
            main {
                (error_banner(notice.error.as_deref(), "page-error"))
                (guard_banner(&p.guard, csrf))
                (provisioning(&p.provisioning, csrf, notice.token.as_deref()))
                (settings(&p.settings, csrf))
                (sso(&p.sso, csrf))
                (mappings(&p.mappings, csrf))
                (provisioning_log(&p.log))
                (activity(&p.activity))
                (people(&p.people))
            }
        },
    )
}

fn copyable(id: &str, value: &str, label: &str) -> Markup {
    html! {
        label for=(id) { (label) }
        div.copyable {
            input id=(id) type="text" readonly value=(value) spellcheck="false";
            button.secondary type="button" data-copy-target=(id) { "Copy" }
        }
    }
}
