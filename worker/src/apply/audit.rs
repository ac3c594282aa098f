//! A command's activity entry and what goes with it (its event, its invite), collected in
//! the command's [`Tx`] as effects (`effects`).

use super::{
    Tx,
    effects::{AuditEntry, Invite},
};
use common::messages::Envelope;
use serde_json::Value as Json;
use uuid::Uuid;

/// One audit entry for the command.
pub(super) struct Audit<'a> {
    pub(super) action: &'a str,
    pub(super) resource_type: &'a str,
    pub(super) resource_id: Option<String>,
    pub(super) detail: Json,
}

/// What a change writes besides its own rows and audit entry.
#[derive(Default)]
pub(super) struct Side<'a> {
    /// Its event, to the outbox (published by the relay).
    pub(super) event: Option<&'a Envelope>,
    /// The invite a new user gets, `(user id, address)`, if the org sends invites.
    pub(super) invite: Option<(Uuid, String)>,
}

impl<'a> Side<'a> {
    /// Just an event.
    pub(super) fn event(event: &'a Envelope) -> Self {
        Self {
            event: Some(event),
            invite: None,
        }
    }
}

/// A change to resource `id` of `resource_type`: its event, and the activity entry named
/// after the event's kind.
pub(super) fn record_change(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    (resource_type, id): (&str, Uuid),
    event: &Envelope,
    detail: Json,
) {
    let a = Audit {
        action: &event.kind,
        resource_type,
        resource_id: Some(id.to_string()),
        detail,
    };
    audit_with(tx, env, Some(org_id), a, Side::event(event));
}

pub(super) fn audit(tx: &Tx<'_>, env: &Envelope, org_id: Option<Uuid>, a: Audit<'_>) {
    audit_with(tx, env, org_id, a, Side::default());
}

/// The audit entry and what `side` asks for, collected in `tx` for the batch's writer
/// (`Effects::write`).
pub(super) fn audit_with(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Option<Uuid>,
    a: Audit<'_>,
    side: Side<'_>,
) {
    let mut fx = tx.effects();
    fx.audits.push(AuditEntry {
        org_id,
        command_id: env.id,
        correlation_id: env.correlation_id.clone(),
        actor: actor(env),
        action: a.action.to_owned(),
        resource_type: a.resource_type.to_owned(),
        resource_id: a.resource_id,
        detail: a.detail,
    });
    if let Some(e) = side.event {
        fx.events.push(e.clone());
    }
    if let (Some(org_id), Some((user_id, email))) = (org_id, side.invite) {
        fx.invites.push(Invite {
            id: Uuid::now_v7(),
            org_id,
            user_id,
            email,
        });
    }
}

/// Who sent the command, as the audit log shows it.
pub(super) fn actor(env: &Envelope) -> String {
    if env.credential.is_some() {
        return "integration".to_owned();
    }
    match env.kind.split('.').next() {
        Some("user" | "group") => "scim".to_owned(),
        Some("invite") => "invitee".to_owned(),
        Some("person") if env.kind == "person.delete" => {
            if env.payload["by_policy"] == true {
                "retention".to_owned()
            } else {
                "admin".to_owned()
            }
        }
        Some("person") => "employee".to_owned(),
        Some("org") => "operator".to_owned(),
        Some("admin_key") if env.payload["by_operator"] == true => "operator".to_owned(),
        _ => "admin".to_owned(),
    }
}
