//! The admin page's HTML (maud, which escapes every value): the sign-in form, the
//! integration page, and the error page. Elements the browser test reads have ids or
//! `data-` attributes.

use crate::admin::service::{
    Activity, GuardStatus, LogEntry, Person, ProvisioningStatus, Settings, Sso,
};
use common::{
    mapping::{self, Mapping, Policy},
    org_chart::MatchKey,
};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

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
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Roster" }
                link rel="stylesheet" href="/admin/style.css";
                script src="/admin/app.js" defer {}
            }
            body { (body) }
        }
    }
}

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
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
                form #sign-in-form method="post" action="/admin/login" {
                    (csrf_field(csrf))
                    label for="admin-key" { "Admin key" }
                    input #admin-key type="password" name="admin_key" autocomplete="off" required;
                    button #sign-in type="submit" { "Sign in" }
                }
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
                form #sign-out-form method="post" action="/admin/logout" {
                    (csrf_field(csrf))
                    button #sign-out.secondary type="submit" { "Sign out" }
                }
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

fn provisioning(p: &ProvisioningStatus, csrf: &str, token: Option<&str>) -> Markup {
    html! {
        section #provisioning {
            h2 { "Provisioning" }
            form #provisioning-form method="post" action="/admin/provisioning" {
                (csrf_field(csrf))
                label.check {
                    input #enable-provisioning type="checkbox" name="enabled" value="on" checked[p.enabled];
                    " Enable user provisioning from Okta"
                }
                button #save-provisioning type="submit" { "Save" }
            }
            p #provisioning-status data-enabled=(p.enabled) {
                @if p.enabled {
                    "On. "
                    @if let Some(hint) = &p.token_hint {
                        "Okta's token ends in " code { (hint) }
                        @if let Some(at) = p.token_created_at {
                            ", issued " (at.format("%Y-%m-%d %H:%M UTC"))
                        }
                        "."
                    }
                } @else {
                    "Off: Okta's calls are refused and no token is valid."
                }
            }
            @if let Some(t) = token {
                div.token #token-box {
                    (copyable("scim-token", t, "API token"))
                    p.hint { "Copy it now: it is shown only this once. Paste it into Okta as the API token (HTTP Header)." }
                }
            }
            (copyable("scim-base-url", &p.scim_base_url, "SCIM connector base URL"))
            p.hint {
                "In Okta: your app → Provisioning → Integration → Enable API integration, "
                "paste the base URL, choose HTTP Header authentication and paste the token. "
                "Unique identifier field: userName."
            }
            @if p.enabled {
                form #rotate-form method="post" action="/admin/token" {
                    (csrf_field(csrf))
                    button #rotate-token.secondary type="submit" { "Generate a new token" }
                    span.hint { " The current token stops working at once." }
                }
            }
        }
    }
}

fn settings(s: &crate::admin::service::Settings, csrf: &str) -> Markup {
    html! {
        section #settings {
            h2 { "When Okta adds or changes someone" }
            form #settings-form method="post" action="/admin/settings" {
                (csrf_field(csrf))
                label.check {
                    input #send-invites type="checkbox" name="send_invites" value="on" checked[s.send_invites];
                    " Send invite when someone is added"
                }
                label.check {
                    input #lock-synced-fields type="checkbox" name="lock_synced_fields" value="on" checked[s.lock_synced_fields];
                    " Lock synced fields (people cannot edit what Okta overwrites)"
                }
                (deactivated_people(s.deactivated_people))
                (manager_match(&s.manager_match))
                button #save-settings type="submit" { "Save settings" }
            }
        }
    }
}

fn sso(s: &Sso, csrf: &str) -> Markup {
    use common::messages::SignInClaim;
    html! {
        section #sso {
            h2 { "Employee sign-in with Okta" }
            p #sso-status data-enabled=(s.enabled) {
                @if s.enabled {
                    "On: people in the directory sign in with Okta (OpenID Connect)."
                } @else {
                    "Off: set up an OpenID Connect web app in Okta and enter it here."
                }
            }
            (copyable("sso-redirect-uri", &s.redirect_uri, "Sign-in redirect URI (paste into Okta's app)"))
            (copyable("sso-sign-in-url", &s.sign_in_url, "Sign-in page for your people"))
            @if !s.configurable {
                p.error { "Sign-in cannot be set up: the operator has not set ROSTER_SECRETS_KEY." }
            }
            form #sso-form method="post" action="/admin/sso" {
                (csrf_field(csrf))
                label for="sso-issuer" { "Issuer URL" }
                input #sso-issuer type="url" name="issuer" value=(s.issuer.as_deref().unwrap_or("")) placeholder="https://acme.okta.com" spellcheck="false" required;
                label for="sso-client-id" { "Client ID" }
                input #sso-client-id type="text" name="client_id" value=(s.client_id.as_deref().unwrap_or("")) spellcheck="false" required;
                label for="sso-client-secret" { "Client secret" }
                input #sso-client-secret type="password" name="client_secret" autocomplete="off"
                    placeholder=(if s.client_secret_set { "stored; leave blank to keep it" } else { "" });
                label for="sso-claim" { "Match people by" }
                select #sso-claim name="claim" {
                    option value="email" selected[s.claim == SignInClaim::Email] { "email (userName or directory email)" }
                    option value="preferred_username" selected[s.claim == SignInClaim::PreferredUsername] { "preferred_username (Okta login = userName)" }
                }
                button #save-sso type="submit" { "Save sign-in" }
                span.hint { " Saving signs every employee out." }
            }
            @if s.enabled {
                form #sso-off-form method="post" action="/admin/sso/off" {
                    (csrf_field(csrf))
                    button #sso-off.secondary type="submit" { "Turn sign-in off" }
                }
            }
        }
    }
}

/// Keep deactivated people, or erase them (as a delete would) N days after deactivation.
fn deactivated_people(p: common::messages::DeactivatedPeople) -> Markup {
    let days = p.after_days();
    html! {
        fieldset #deactivated-people {
            legend { "When Okta deactivates someone" }
            label.check {
                input #deactivated-keep type="radio" name="deactivated_people" value="keep" checked[days.is_none()];
                " Keep them in the directory (marked inactive)"
            }
            label.check {
                input #deactivated-erase type="radio" name="deactivated_people" value="erase" checked[days.is_some()];
                " Erase them and their personal data "
                input #erase-after-days type="number" name="erase_after_days" min="1" max="3650"
                    value=(days.unwrap_or(30)) aria-label="Days after deactivation";
                " days after deactivation"
            }
        }
    }
}

/// One select per position: the keys a manager value is tried against, in order.
fn manager_match(keys: &[MatchKey]) -> Markup {
    html! {
        fieldset #manager-match {
            legend { "Find a person's manager by" }
            ol {
                @for i in 0..MatchKey::ALL.len() {
                    li {
                        select name="manager_match" data-position=(i + 1) aria-label={ "Manager key " (i + 1) } {
                            option value="" selected[keys.get(i).is_none()] { "—" }
                            @for k in MatchKey::ALL {
                                option value=(k.as_str()) selected[keys.get(i) == Some(&k)] { (k.label()) }
                            }
                        }
                    }
                }
            }
            p.hint { "Okta sends whatever you map to the manager attribute; the first key that names someone wins." }
        }
    }
}

fn policy_select(field: &str, selected: Option<Policy>) -> Markup {
    html! {
        select name="policy" data-field=(field) aria-label="Policy" {
            @for (policy, label) in POLICIES {
                option value=(policy.as_str()) selected[selected == Some(policy)] { (label) }
            }
        }
    }
}

fn mappings(rows: &[Mapping], csrf: &str) -> Markup {
    html! {
        section #mappings {
            h2 { "Field mapping" }
            form #mappings-form method="post" action="/admin/mappings" {
                (csrf_field(csrf))
                div.scroll {
                    table {
                        thead { tr { th { "Field" } th { "Okta (SCIM) attribute" } th { "Policy" } } }
                        tbody {
                            @for m in rows {
                                tr.mapping data-field=(m.field) {
                                    td {
                                        input type="hidden" name="field" value=(m.field);
                                        (mapping::label(&m.field)) br; code { (m.field) }
                                    }
                                    td { input type="text" name="scim_attribute" value=(m.scim_attribute) aria-label="SCIM attribute" spellcheck="false"; }
                                    td { (policy_select(&m.field, Some(m.policy))) }
                                }
                            }
                            tr #new-mapping {
                                td { input #new-field type="text" name="field" placeholder="custom.shirt_size" aria-label="New custom field" spellcheck="false"; }
                                td { input #new-scim-attribute type="text" name="scim_attribute" placeholder="urn:ietf:params:scim:schemas:extension:roster:2.0:User:shirtSize" aria-label="SCIM attribute of the new field" spellcheck="false"; }
                                td { (policy_select("", Some(Policy::Overwrite))) }
                            }
                        }
                    }
                }
                p.hint { "Add your own field as custom.<name>, mapped to an attribute of Roster's extension. Clear a custom field's attribute to remove it." }
                button #save-mappings type="submit" { "Save mappings" }
            }
        }
    }
}

/// What an activity entry was about: the user name in its detail, else the resource.
fn resource(a: &Activity) -> String {
    let name = ["userName", "displayName", "name"]
        .iter()
        .find_map(|k| a.detail.get(*k).and_then(Value::as_str));
    match (name, &a.resource_id) {
        (Some(n), _) => format!("{} {n}", a.resource_type),
        (None, Some(id)) => format!("{} {id}", a.resource_type),
        (None, None) => a.resource_type.clone(),
    }
}

fn activity(entries: &[Activity]) -> Markup {
    html! {
        section #activity {
            h2 { "Recent activity" }
            @if entries.is_empty() {
                p.hint { "Nothing yet." }
            } @else {
                div.scroll {
                    table #activity-table {
                        thead { tr { th { "Time" } th { "Actor" } th { "Action" } th { "Resource" } } }
                        tbody {
                            @for a in entries {
                                tr.activity-entry data-action=(a.action) {
                                    td { time datetime=(a.at.to_rfc3339()) { (a.at.format("%Y-%m-%d %H:%M:%S")) } }
                                    td { (a.actor) }
                                    td { (a.action) }
                                    td { (resource(a)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// While the mass-deprovisioning guard holds changes (or refuses them after a
/// rejection): what happened, how many are held, and the approve and reject buttons.
fn guard_banner(g: &GuardStatus, csrf: &str) -> Markup {
    html! {
        @if g.state == "tripped" {
            section #guard-banner.alert role="alert" data-held=(g.held) {
                h2 { "Deactivations held for your approval" }
                p {
                    "More people were deactivated or deleted in Okta within "
                    (g.settings.window_minutes) " minutes than your mass-deprovisioning guard allows. "
                    strong #guard-held { (g.held) } " deactivations and deletions are held: nothing was changed, "
                    "and Okta shows them as failed tasks that it retries. Creates and updates go on."
                }
                div.actions {
                    form #guard-approve-form method="post" action="/admin/guard/approve" {
                        (csrf_field(csrf))
                        button #guard-approve type="submit" { "Approve: let them through" }
                    }
                    form #guard-reject-form method="post" action="/admin/guard/reject" {
                        (csrf_field(csrf))
                        button #guard-reject.secondary type="submit" { "Reject: keep refusing them" }
                    }
                }
            }
        } @else if let Some(until) = g.refused_until {
            section #guard-banner.alert role="status" data-held="0" {
                p {
                    "You rejected a mass deprovisioning: deactivations and deletions are refused until "
                    time datetime=(until.to_rfc3339()) { (until.format("%Y-%m-%d %H:%M UTC")) } "."
                }
            }
        }
    }
}

/// The latest SCIM requests Okta made, failures marked.
fn provisioning_log(entries: &[LogEntry]) -> Markup {
    html! {
        section #provisioning-log {
            h2 { "Provisioning log" }
            p.hint { "What Okta asked and what Roster answered; failures first in "
                code { "GET /admin/v1/provisioning/log?outcome=failed" } "." }
            @if entries.is_empty() {
                p.hint { "Nothing yet." }
            } @else {
                div.scroll {
                    table #provisioning-log-table {
                        thead { tr { th { "Time" } th { "Request" } th { "Status" } th { "Detail" } } }
                        tbody {
                            @for e in entries {
                                tr.log-entry.failed[e.status >= 400] data-status=(e.status) {
                                    td { time datetime=(e.at.to_rfc3339()) { (e.at.format("%Y-%m-%d %H:%M:%S")) } }
                                    td { (e.method) " " (e.path) }
                                    td { (e.status) }
                                    td { (e.detail.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn field<'a>(p: &'a Person, name: &str) -> &'a str {
    p.fields.get(name).and_then(Value::as_str).unwrap_or("")
}

/// A person's name: first and last name when known, else the user name.
fn display_name(p: &Person) -> String {
    let name = format!("{} {}", field(p, "first_name"), field(p, "last_name"));
    match name.trim() {
        "" => p.user_name.clone(),
        n => n.to_owned(),
    }
}

fn people(list: &[Person]) -> Markup {
    html! {
        section #people {
            h2 { "People" }
            p { a #org-chart-link href="/admin/org-chart" { "See the org chart" } }
            @if list.is_empty() {
                p.hint { "No one yet: assign the app to people in Okta." }
            } @else {
                div.scroll {
                    table #people-table {
                        thead { tr { th { "Name" } th { "Email" } th { "Job title" } th { "Manager" } th { "Active" } } }
                        tbody {
                            @for p in list {
                                tr.person data-user-name=(p.user_name) data-active=(p.active) {
                                    td { (display_name(p)) }
                                    td { (field(p, "email")) }
                                    td { (field(p, "job_title")) }
                                    td.manager {
                                        @if let Some(m) = &p.manager {
                                            @if m.active { (m.name) } @else { "Vacant (was " (m.name) ")" }
                                        } @else if let Some(raw) = &p.manager_ref {
                                            span.hint title="No one in Roster matches this value yet" { "waiting: " code { (raw) } }
                                        }
                                    }
                                    td { @if p.active { "Yes" } @else { "No" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let html = sign_in("<csrf\">", Some("<script>alert(1)</script>")).into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("value=\"&lt;csrf&quot;&gt;\""), "{html}");
    }

    fn guard(state: &str, held: i64) -> GuardStatus {
        GuardStatus {
            settings: crate::admin::service::GuardSettings {
                enabled: true,
                threshold_percent: 10,
                min_count: 10,
                window_minutes: 60,
            },
            state: state.into(),
            tripped_at: None,
            refused_until: None,
            held,
            changes: Vec::new(),
        }
    }

    #[test]
    fn the_guard_banner_shows_only_while_changes_are_held() {
        let html = guard_banner(&guard("tripped", 7), "c").into_string();
        assert!(html.contains("id=\"guard-held\">7<"), "{html}");
        assert!(html.contains("action=\"/admin/guard/approve\""), "{html}");
        assert!(html.contains("action=\"/admin/guard/reject\""), "{html}");
        assert!(
            guard_banner(&guard("armed", 0), "c")
                .into_string()
                .is_empty()
        );
    }
}
