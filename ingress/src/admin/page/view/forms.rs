//! The page's setting forms: provisioning and its token, settings, employee sign-in and
//! the field mapping.

use super::{POLICIES, copyable, post_form};
use crate::admin::service::{ProvisioningStatus, Sso};
use common::{
    mapping::{self, Mapping, Policy},
    org_chart::MatchKey,
};
use maud::{Markup, html};

pub(super) fn provisioning(p: &ProvisioningStatus, csrf: &str, token: Option<&str>) -> Markup {
    html! {
        section #provisioning {
            h2 { "Provisioning" }
            (post_form("provisioning-form", "/admin/provisioning", csrf, html! {
                (checkbox("enable-provisioning", "enabled", p.enabled, "Enable user provisioning from Okta"))
                button #save-provisioning type="submit" { "Save" }
            }))
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
                (post_form("rotate-form", "/admin/token", csrf, html! {
                    button #rotate-token.secondary type="submit" { "Generate a new token" }
                    span.hint { " The current token stops working at once." }
                }))
            }
        }
    }
}

pub(super) fn settings(s: &crate::admin::service::Settings, csrf: &str) -> Markup {
    html! {
        section #settings {
            h2 { "When Okta adds or changes someone" }
            (post_form("settings-form", "/admin/settings", csrf, html! {
                (checkbox("send-invites", "send_invites", s.send_invites, "Send invite when someone is added"))
                (checkbox("lock-synced-fields", "lock_synced_fields", s.lock_synced_fields,
                    "Lock synced fields (people cannot edit what Okta overwrites)"))
                (deactivated_people(s.deactivated_people))
                (manager_match(&s.manager_match))
                button #save-settings type="submit" { "Save settings" }
            }))
        }
    }
}

pub(super) fn sso(s: &Sso, csrf: &str) -> Markup {
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
            (post_form("sso-form", "/admin/sso", csrf, html! {
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
            }))
            @if s.enabled {
                (post_form("sso-off-form", "/admin/sso/off", csrf, html! {
                    button #sso-off.secondary type="submit" { "Turn sign-in off" }
                }))
            }
        }
    }
}

/// A checkbox sent as `name=on` while ticked, its `label` after it.
fn checkbox(id: &str, name: &str, checked: bool, label: &str) -> Markup {
    html! {
        label.check {
            input id=(id) type="checkbox" name=(name) value="on" checked[checked];
            " " (label)
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

pub(super) fn mappings(rows: &[Mapping], csrf: &str) -> Markup {
    html! {
        section #mappings {
            h2 { "Field mapping" }
            (post_form("mappings-form", "/admin/mappings", csrf, html! {
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
            }))
        }
    }
}
