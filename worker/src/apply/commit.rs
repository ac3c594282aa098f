//! Group commit: a batch of commands in one transaction — ids claimed together, people
//! and groups locked in one order, creates that come one after another written together
//! (`users::create_run`), the batch's effects written by one statement, replies
//! stored and deadlines checked by one statement, one commit. A command that meets a
//! database error rolls the transaction back; the commands before it are applied again
//! without it (no savepoints: they would cost two round trips a command, every time, for
//! what is rare).

use super::{
    Applied, ApplyContext, Batch, Item, Tx, apply_one,
    effects::{self, Effects},
    hot_sql, to_json,
    unapplied::{expire, unclaimed_reply},
    users,
};
use common::{
    db::{stmt, uuid_array},
    messages::{Command, Envelope, Reply},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use serde_json::Value as Json;
use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
};
use uuid::Uuid;

/// Applies the commands in one transaction, in order (a command that meets a database
/// error is left to the caller with the ones after it, and the ones before it are applied
/// again without it), their effects written by one writer, their replies stored and their
/// deadlines checked in one statement, and one commit (DESIGN invariant 3 for each).
/// A redelivered command finds its id and gets its stored reply, with no second effect.
/// The caller has already declared the commands expired on its own clock; one whose
/// deadline passes during the batch is recorded as expired and the others applied again
/// without it. A barrier command ([`runs_alone`]) must come alone.
pub async fn apply_batch(
    db: &DatabaseConnection,
    ctx: &ApplyContext,
    items: &[Item<'_>],
) -> Result<Batch, DbErr> {
    let mut late: Vec<usize> = Vec::new();
    // Items from `upto` on are left to the caller, after `failed`, the error of item `upto`.
    let mut upto = items.len();
    let mut failed: Option<DbErr> = None;
    loop {
        let todo: Vec<usize> = (0..upto).filter(|i| !late.contains(i)).collect();
        let run = if todo.is_empty() {
            Run::Committed {
                replies: Vec::new(),
            }
        } else {
            run_batch(db, ctx, items, &todo).await?
        };
        match run {
            Run::Failed { at, error } => {
                // Nothing is committed: the items before `at` run again without it.
                upto = at;
                failed = Some(error);
                continue;
            }
            Run::Committed { replies } => {
                let error = if upto < items.len() { failed } else { None };
                let mut settled = Vec::with_capacity(replies.len() + late.len());
                let mut replies = replies.into_iter();
                for (i, item) in items.iter().enumerate() {
                    if i >= upto {
                        break;
                    }
                    let applied = if late.contains(&i) {
                        expire(db, item.env).await?
                    } else if let Some(reply) = replies.next() {
                        match reply {
                            Some(reply) => Applied::answered(reply),
                            None => Applied::answered(unclaimed_reply(db, item.env).await?),
                        }
                    } else {
                        break;
                    };
                    settled.push(applied);
                }
                return Ok(Batch { settled, error });
            }
            // Their deadline passed while the batch ran: rolled back; the batch runs again
            // without them, and they are recorded as expired.
            Run::Late(more) => late.extend(more),
        }
    }
}

/// What one attempt at a batch did.
enum Run {
    /// Committed: a reply for each item (`None`: its id was taken, by an earlier delivery
    /// or another org's command, or its org is gone).
    Committed { replies: Vec<Option<Reply>> },
    /// Rolled back: item `at` met a database error.
    Failed { at: usize, error: DbErr },
    /// Rolled back: these items' deadlines passed before the commit.
    Late(Vec<usize>),
}

/// Each item's reply and effects, by its place in the batch's `todo`.
struct Slots {
    replies: Vec<Option<Reply>>,
    effects: Vec<Effects>,
}

impl Slots {
    fn new(n: usize) -> Self {
        Self {
            replies: (0..n).map(|_| None).collect(),
            effects: (0..n).map(|_| Effects::default()).collect(),
        }
    }

    fn put(&mut self, place: usize, reply: Reply, effects: Effects) {
        self.replies[place] = Some(reply);
        self.effects[place] = effects;
    }
}

/// Applies the creates at places `creates` of `todo` together (`users::create_run`) and
/// empties it; `Err` is the failure to end the batch with.
async fn create_run(
    tx: &DatabaseTransaction,
    shared: &effects::Shared,
    ctx: &ApplyContext,
    items: &[Item<'_>],
    todo: &[usize],
    creates: &mut Vec<usize>,
    slots: &mut Slots,
) -> Result<(), Run> {
    if creates.is_empty() {
        return Ok(());
    }
    let places = std::mem::take(creates);
    let run: Vec<Item<'_>> = places.iter().map(|&p| items[todo[p]]).collect();
    match users::create_run(tx, shared, ctx, &run).await {
        Ok(done) => {
            for (&p, (reply, fx)) in places.iter().zip(done) {
                slots.put(p, reply, fx);
            }
            Ok(())
        }
        Err((k, error)) => Err(Run::Failed {
            at: todo[places[k]],
            error,
        }),
    }
}

async fn run_batch(
    db: &DatabaseConnection,
    ctx: &ApplyContext,
    items: &[Item<'_>],
    todo: &[usize],
) -> Result<Run, DbErr> {
    let tx = db.begin().await?;
    let claimed = claim(&tx, todo.iter().map(|&i| items[i].env)).await?;
    if todo.len() > 1 {
        lock_in_order(&tx, todo.iter().map(|&i| items[i].env)).await?;
    }
    let mut slots = Slots::new(todo.len());
    // A message published twice can come twice in one batch: its id is claimed once, and
    // only its first delivery runs; the others get the stored reply after the commit.
    let mut taken: HashSet<Uuid> = HashSet::new();
    let shared = effects::Shared::default();
    // The places of the creates that came one after another, not yet applied: they are
    // applied together before the next other command.
    let mut creates: Vec<usize> = Vec::new();
    for (p, &i) in todo.iter().enumerate() {
        let Item { env, cmd } = items[i];
        if !claimed.contains(&env.id) || !taken.insert(env.id) {
            continue;
        }
        if matches!(cmd, Command::CreateUser(_)) {
            creates.push(p);
            continue;
        }
        let run = create_run(&tx, &shared, ctx, items, todo, &mut creates, &mut slots);
        if let Err(failed) = run.await {
            tx.rollback().await?;
            return Ok(failed);
        }
        let fx = Mutex::new(Effects::default());
        match apply_one(&Tx::new(&tx, &fx, &shared), ctx, env, cmd).await {
            Ok(reply) => {
                let fx = fx.into_inner().unwrap_or_else(PoisonError::into_inner);
                slots.put(p, reply, fx);
            }
            Err(error) => {
                tx.rollback().await?;
                return Ok(Run::Failed { at: i, error });
            }
        }
    }
    let run = create_run(&tx, &shared, ctx, items, todo, &mut creates, &mut slots);
    if let Err(failed) = run.await {
        tx.rollback().await?;
        return Ok(failed);
    }
    let Slots { replies, effects } = slots;
    let mut pending = Effects::default();
    for fx in effects {
        pending.append(fx);
    }
    pending.write(&tx).await?;
    let applied: Vec<(usize, &Reply)> = todo
        .iter()
        .zip(&replies)
        .filter_map(|(&i, r)| r.as_ref().map(|r| (i, r)))
        .collect();
    let stored = store_replies(&tx, items, &applied).await?;
    let late: Vec<usize> = applied
        .iter()
        .map(|&(i, _)| i)
        .filter(|&i| !stored.contains(&items[i].env.id))
        .collect();
    if !late.is_empty() {
        tx.rollback().await?;
        return Ok(Run::Late(late));
    }
    tx.commit().await?;
    Ok(Run::Committed { replies })
}

/// Claims the commands' ids (`processed_commands`), key-share locking their orgs for the
/// transaction: an org removal (`org::delete_org`) waits for the commands in flight, and a
/// command of an org that is gone is not claimed, so it leaves no row that names the org.
/// Returns the ids claimed.
async fn claim<'e>(
    tx: &DatabaseTransaction,
    envs: impl Iterator<Item = &'e Envelope>,
) -> Result<HashSet<Uuid>, DbErr> {
    let rows: Vec<Json> = envs
        .map(|e| serde_json::json!({"id": e.id, "org_id": e.org_id, "kind": e.kind}))
        .collect();
    let claimed = tx
        .query_all_raw(stmt(hot_sql::CLAIM, [Json::Array(rows).into()]))
        .await?;
    claimed
        .iter()
        .map(|r| r.try_get::<Uuid>("", "command_id"))
        .collect()
}

/// Locks the users and groups the commands change, in one order (by id), before any
/// command runs. Each command locks its row again when it runs; taken here first, two
/// batches that change the same people wait for each other instead of deadlocking (a
/// deadlock costs PostgreSQL's `deadlock_timeout`, a second, and a retry).
async fn lock_in_order<'e>(
    tx: &DatabaseTransaction,
    envs: impl Iterator<Item = &'e Envelope>,
) -> Result<(), DbErr> {
    let (mut users, mut groups) = (Vec::new(), Vec::new());
    for env in envs {
        let id = |key: &str| {
            env.payload
                .get(key)
                .and_then(Json::as_str)
                .and_then(|s| s.parse::<Uuid>().ok())
        };
        users.extend(id("user_id"));
        groups.extend(id("group_id"));
    }
    if users.is_empty() && groups.is_empty() {
        return Ok(());
    }
    tx.query_one_raw(stmt(
        hot_sql::LOCK_IN_ORDER,
        [uuid_array(&users), uuid_array(&groups)],
    ))
    .await?;
    Ok(())
}

/// Stores each applied command's reply, only if its deadline has not passed: the last
/// statement before COMMIT checks every deadline on PostgreSQL's clock, holding each
/// command's fence lock until the commit (m0005_deadlines.sql). The ingress, which answers
/// `503` only after it has seen that clock pass the deadline under the same lock, can then
/// never be contradicted by a commit. Returns the ids stored.
async fn store_replies(
    tx: &DatabaseTransaction,
    items: &[Item<'_>],
    applied: &[(usize, &Reply)],
) -> Result<HashSet<Uuid>, DbErr> {
    if applied.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<Json> = applied
        .iter()
        .map(|&(i, reply)| {
            let env = items[i].env;
            serde_json::json!({"id": env.id, "reply": to_json(reply), "apply_by": env.apply_by})
        })
        .collect();
    let ids: Vec<Uuid> = applied.iter().map(|&(i, _)| items[i].env.id).collect();
    let stored = tx
        .query_all_raw(stmt(
            hot_sql::STORE_REPLIES,
            [Json::Array(rows).into(), uuid_array(&ids)],
        ))
        .await?;
    stored
        .iter()
        .map(|r| r.try_get::<Uuid>("", "command_id"))
        .collect()
}
