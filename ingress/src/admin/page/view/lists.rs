//! The page's lists: the guard's held changes, the provisioning log, the activity and the
//! people.

use super::post_form;
use crate::admin::service::{Activity, GuardStatus, LogEntry, Person};
use maud::{Markup, html};
use serde_json::Value;

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

pub(super) fn activity(entries: &[Activity]) -> Markup {
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
pub(super) fn guard_banner(g: &GuardStatus, csrf: &str) -> Markup {
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
                    (post_form("guard-approve-form", "/admin/guard/approve", csrf, html! {
                        button #guard-approve type="submit" { "Approve: let them through" }
                    }))
                    (post_form("guard-reject-form", "/admin/guard/reject", csrf, html! {
                        button #guard-reject.secondary type="submit" { "Reject: keep refusing them" }
                    }))
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
pub(super) fn provisioning_log(entries: &[LogEntry]) -> Markup {
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

pub(super) fn people(list: &[Person]) -> Markup {
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
    use crate::admin::page::view::sign_in;

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
