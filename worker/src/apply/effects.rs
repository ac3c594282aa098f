//! What applying a command changes besides its own resource rows, as values: its audit
//! entries, its events (to the outbox, published by the relay) and its invite. Commands
//! collect them in [`Tx`] while they run; one writer ([`Effects::write`]) persists a whole
//! batch's in one statement.
//!
//! A command's resource rows (users, groups, members, …) are written in place, not
//! collected: a later command of the same batch must read them (a `PATCH` after its
//! create), and the database's unique constraints must judge them as they happen (a
//! `409` is decided there). Nothing a command reads is in `Effects`, except for the
//! commands `runs_alone` names (`super::runs_alone`), which run in a batch of their own.

use common::{mapping::Mapping, messages::Envelope};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};
use serde::Serialize;
use serde_json::Value as Json;
use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};
use uuid::Uuid;

/// Everything a batch of commands writes besides its resource rows.
#[derive(Debug, Default)]
pub struct Effects {
    pub audits: Vec<AuditEntry>,
    pub events: Vec<Envelope>,
    pub invites: Vec<Invite>,
}

/// One activity entry (`audit_log`).
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    pub org_id: Option<Uuid>,
    pub command_id: Uuid,
    pub correlation_id: String,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub detail: Json,
}

/// An invite due to a person (`invites`), written only if the org sends invites.
#[derive(Debug, Serialize)]
pub struct Invite {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
}

/// An outbox row, as the writer sends it.
#[derive(Serialize)]
struct OutboxRow<'a> {
    event_id: Uuid,
    org_id: Option<Uuid>,
    routing_key: &'a str,
    envelope: Json,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.audits.is_empty() && self.events.is_empty() && self.invites.is_empty()
    }

    pub fn append(&mut self, mut other: Effects) {
        self.audits.append(&mut other.audits);
        self.events.append(&mut other.events);
        self.invites.append(&mut other.invites);
    }

    /// Persists and clears the effects: every audit entry, outbox event and invite in one
    /// statement (data-modifying `WITH` parts run once each), whatever their number.
    /// The statement is the batch writer's, hand-written on purpose (see `hot_sql`).
    pub async fn write(&mut self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        if self.is_empty() {
            return Ok(());
        }
        let events: Vec<OutboxRow> = self
            .events
            .iter()
            .map(|e| OutboxRow {
                event_id: e.id,
                org_id: e.org_id,
                routing_key: &e.kind,
                envelope: serde_json::to_value(e).unwrap_or(Json::Null),
            })
            .collect();
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            super::hot_sql::WRITE_EFFECTS,
            [json(&self.audits), json(&events), json(&self.invites)],
        ))
        .await?;
        self.audits.clear();
        self.events.clear();
        self.invites.clear();
        Ok(())
    }
}

/// A list as one JSON parameter.
fn json(rows: &impl Serialize) -> sea_orm::Value {
    serde_json::to_value(rows).unwrap_or_default().into()
}

/// What the commands of one batch read once: an org's field mappings, which no command
/// of a batch changes (a mapping change runs alone, `apply::runs_alone`).
#[derive(Default)]
pub struct Shared {
    mappings: Mutex<HashMap<Uuid, Vec<Mapping>>>,
}

/// The transaction a command runs in, with the effects it collects.
pub struct Tx<'a> {
    db: &'a DatabaseTransaction,
    effects: &'a Mutex<Effects>,
    shared: &'a Shared,
}

impl<'a> Tx<'a> {
    pub fn new(
        db: &'a DatabaseTransaction,
        effects: &'a Mutex<Effects>,
        shared: &'a Shared,
    ) -> Self {
        Self {
            db,
            effects,
            shared,
        }
    }

    /// The org's field mappings, read once a batch; `None` if there is no such org.
    pub async fn org_mapping(&self, org_id: Uuid) -> Result<Option<Vec<Mapping>>, DbErr> {
        let cached = self
            .shared
            .mappings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&org_id)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let read = common::db::reads::existing_org_mapping(self, org_id).await?;
        if let Some(mapping) = &read {
            self.shared
                .mappings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(org_id, mapping.clone());
        }
        Ok(read)
    }

    /// The effects collected so far (held only for a push, never across an await).
    pub fn effects(&self) -> MutexGuard<'_, Effects> {
        self.effects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Tx<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.db.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.db.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.db.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.db.query_all_raw(stmt).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_keeps_order() {
        let entry = |n: u8| AuditEntry {
            org_id: None,
            command_id: Uuid::nil(),
            correlation_id: n.to_string(),
            actor: "scim".into(),
            action: "user.created".into(),
            resource_type: "User".into(),
            resource_id: None,
            detail: Json::Null,
        };
        let mut a = Effects::default();
        a.audits.push(entry(1));
        let mut b = Effects::default();
        b.audits.push(entry(2));
        a.append(b);
        let order: Vec<_> = a.audits.iter().map(|e| e.correlation_id.as_str()).collect();
        assert_eq!(order, ["1", "2"]);
        assert!(!a.is_empty());
    }
}
