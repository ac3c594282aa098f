//! The creates of a batch that come one after another, written together: their rows in
//! one statement, which also takes their org-chart value locks, and the people waiting
//! for one of them as their manager linked in a second, however many they are (two round
//! trips instead of three a create; docs/performance.md, "Creates written together").
//!
//! What each one comes to is what it would be one at a time, in order: a `userName` taken
//! by an earlier create of the run gets its `409`, a report waiting on keys of several
//! goes to the first, and each command's effects are its own. A person with a manager
//! value of their own is created alone (`create`), after the ones before them are written:
//! their link is looked up among the people written so far, and can close a cycle.

use super::super::{
    ApplyContext, Item, Tx,
    effects::{Effects, Shared},
    hot_sql::CREATE_USERS,
    manager,
};
use super::{NewUser, Prepared, create_prepared, created, prepare, taken};
use common::{
    db::{entities::user, stmt},
    messages::{Command, Reply},
    org_chart,
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};
use uuid::Uuid;

/// Applies `run`, user creates in delivery order, in `db`: each one's reply and effects,
/// in order. On a database error nothing of the run is to be kept: `Err((k, error))`
/// says the error came while writing item `k` or those after it (the caller rolls back
/// and applies the items from `k` on one at a time).
pub(in super::super) async fn create_run(
    db: &DatabaseTransaction,
    shared: &Shared,
    ctx: &ApplyContext,
    run: &[Item<'_>],
) -> Result<Vec<(Reply, Effects)>, (usize, DbErr)> {
    let owns: Vec<Mutex<Effects>> = run.iter().map(|_| Mutex::default()).collect();
    let mut replies: Vec<Option<Reply>> = run.iter().map(|_| None).collect();
    // The creates prepared and not yet written: `(k, row)`.
    let mut pending: Vec<(usize, NewUser)> = Vec::new();
    for (k, item) in run.iter().enumerate() {
        let Command::CreateUser(cmd) = item.cmd else {
            return Err((
                k,
                DbErr::Custom("a run of creates holds another command".into()),
            ));
        };
        let tx = Tx::new(db, &owns[k], shared);
        let org_id = item.env.org_id.unwrap_or_default();
        match prepare(&tx, org_id, cmd).await.map_err(|e| (k, e))? {
            Prepared::Refused(reply) => replies[k] = Some(reply),
            Prepared::Row(new) if !new.has_manager_value() => pending.push((k, *new)),
            Prepared::Row(new) => {
                write(db, shared, ctx, run, &owns, &mut pending, &mut replies).await?;
                let reply = create_prepared(&tx, ctx, item.env, *new).await;
                replies[k] = Some(reply.map_err(|e| (k, e))?);
            }
        }
    }
    write(db, shared, ctx, run, &owns, &mut pending, &mut replies).await?;
    Ok(replies
        .into_iter()
        .zip(owns)
        .map(|(reply, own)| {
            let reply = reply.unwrap_or_else(|| Reply::error(500, None, "not applied"));
            (
                reply,
                own.into_inner().unwrap_or_else(PoisonError::into_inner),
            )
        })
        .collect())
}

/// Writes the `pending` creates (none has a manager value) in two statements, and sets
/// their replies and effects.
async fn write(
    db: &DatabaseTransaction,
    shared: &Shared,
    ctx: &ApplyContext,
    run: &[Item<'_>],
    owns: &[Mutex<Effects>],
    pending: &mut Vec<(usize, NewUser)>,
    replies: &mut [Option<Reply>],
) -> Result<(), (usize, DbErr)> {
    let Some(&(first, _)) = pending.first() else {
        return Ok(());
    };
    let at = |e| (first, e);
    let mut written = insert(db, pending).await.map_err(at)?;
    // Those created, in order, with their org's match keys.
    let arrivals: Vec<(user::Model, Vec<org_chart::MatchKey>)> = pending
        .iter()
        .filter_map(|(_, new)| written.remove(&new.row.id))
        .collect();
    let linked = manager::link_arrivals(db, &arrivals).await.map_err(at)?;
    // The arrivals are in `pending`'s order: each one is the next of them, if created.
    let mut done = arrivals.iter().map(|(m, _)| m).zip(&linked).peekable();
    for (k, new) in pending.drain(..) {
        let env = run[k].env;
        let tx = Tx::new(db, &owns[k], shared);
        replies[k] = Some(match done.next_if(|(m, _)| m.id == new.row.id) {
            Some((stored, reports)) => {
                manager::reports_linked(&tx, env, stored.org_id, stored, reports);
                created(&tx, ctx, env, &new.input, stored)
            }
            None => taken(&new.input.user_name),
        });
    }
    Ok(())
}

/// Inserts the rows (`hot_sql::CREATE_USERS`); returns those created by id, each with its
/// org's match keys.
async fn insert(
    db: &DatabaseTransaction,
    pending: &[(usize, NewUser)],
) -> Result<HashMap<Uuid, (user::Model, Vec<org_chart::MatchKey>)>, DbErr> {
    let mut rows = Vec::with_capacity(pending.len());
    let mut locks = Vec::new();
    for (n, (_, new)) in pending.iter().enumerate() {
        let r = &new.row;
        rows.push(json!({
            "n": n, "id": r.id, "org_id": r.org_id, "user_name": r.user_name,
            "external_id": r.external_id, "active": r.active, "display_name": r.display_name,
            "given_name": r.given_name, "family_name": r.family_name, "email": r.email,
            "resource": r.resource, "profile": r.profile,
        }));
        for v in manager::arrives_with(r) {
            locks.push(json!({"id": r.id, "org_id": r.org_id, "v": v}));
        }
    }
    let created = db
        .query_all_raw(stmt(
            CREATE_USERS,
            [Value::Array(rows).into(), Value::Array(locks).into()],
        ))
        .await?;
    created
        .iter()
        .map(|row| {
            let m = user::Model::from_query_result(row, "")?;
            let keys = manager::match_keys(&row.try_get("", "keys")?);
            Ok((m.id, (m, keys)))
        })
        .collect()
}
