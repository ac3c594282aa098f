//! Group commit: the consume loop hands every delivery over (`common::amqp::batches`); up to
//! `WORKER_CONCURRENCY` appliers each take the deliveries that are ready, at most
//! `WORKER_BATCH_MAX`, and apply them in one transaction (`apply::apply_batch`): decode →
//! authorise → apply → commit → reply → ack. An applier never waits for more when no other
//! batch is under way (so a lone command starts at once); while one is, it gathers what
//! arrives until that batch is done (at most `gather::GATHER_CAP`), the way PostgreSQL's
//! `commit_delay` waits only when other transactions are active.
//! A command that meets a database error is left, with the ones after it, to be applied
//! one by one with in-process retries, in delivery order; so commands for one person in
//! one batch apply in the order they were delivered.

mod gather;

use crate::{
    apply::{self, Applied, ApplyContext, Item},
    authorize::{Caller, Refusal, authorize, failed_outcome},
    settle::{Answer, Outcome, Settler},
};
use backon::Retryable;
use common::{
    amqp::batches::{Batches, Takers, hand_off, unzip},
    db::{is_transient, is_unique_violation, redact},
    messages::{Command, Envelope, Reply},
};
use gather::{Gate, gather};
use lapin::message::Delivery;
use sea_orm::{DatabaseConnection, DbErr};
use std::{
    sync::{Arc, atomic::Ordering},
    time::Instant,
};
use tokio::sync::Notify;

/// What the appliers share.
pub struct Shared {
    pub db: DatabaseConnection,
    pub settler: Settler,
    pub ctx: ApplyContext,
    /// Woken after each commit, for the outbox relay.
    pub committed: Arc<Notify>,
    /// `WORKER_BATCH_MAX`.
    pub batch_max: usize,
}

/// Starts `appliers` appliers; they stop once every `Batches` clone is dropped and the
/// deliveries handed over are settled.
pub fn start(shared: Arc<Shared>, appliers: usize) -> (Batches, tokio::task::JoinSet<()>) {
    let (batches, takers) = hand_off();
    let gate = Arc::new(Gate::default());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..appliers.max(1) {
        set.spawn(applier(shared.clone(), takers.clone(), gate.clone()));
    }
    (batches, set)
}

async fn applier(shared: Arc<Shared>, takers: Arc<Takers>, gate: Arc<Gate>) {
    let max = shared.batch_max.max(1);
    while let Some((mut jobs, mut waiting)) = takers.take(max).await {
        if jobs.len() < max && gate.busy.load(Ordering::Acquire) > 0 {
            gather(&mut waiting, &mut jobs, max, &gate).await;
        }
        gate.busy.fetch_add(1, Ordering::AcqRel);
        drop(waiting);
        let (deliveries, settled) = unzip(jobs);
        process(&shared, deliveries).await;
        gate.busy.fetch_sub(1, Ordering::AcqRel);
        gate.done.notify_waiters();
        settled.all();
    }
}

/// A delivery decoded and authorised, ready to apply.
struct Ready {
    delivery: Delivery,
    env: Envelope,
    cmd: Command,
    caller: Caller,
    kind: String,
    started: Instant,
}

/// Settles the deliveries: the ones that cannot be applied at once, then the rest in
/// batches (a command that must run alone, `apply::runs_alone`, in a batch of its own),
/// in delivery order.
async fn process(shared: &Shared, deliveries: Vec<Delivery>) {
    let mut ready = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        if let Some(r) = prepare(shared, delivery).await {
            ready.push(r);
        }
    }
    let mut run: Vec<Ready> = Vec::new();
    for r in ready {
        if apply::runs_alone(&r.cmd) {
            apply_run(shared, std::mem::take(&mut run)).await;
            apply_run(shared, vec![r]).await;
        } else {
            run.push(r);
        }
    }
    apply_run(shared, run).await;
}

/// Decodes and authorises a delivery; one that cannot be applied is settled here.
#[tracing::instrument(skip_all, fields(command_id, command_type, correlation_id))]
async fn prepare(shared: &Shared, delivery: Delivery) -> Option<Ready> {
    let started = Instant::now();
    let env = match Envelope::from_bytes(&delivery.data) {
        Ok(env) => env,
        Err(e) => {
            let outcome = refused(shared, Refusal::undecodable(None, e));
            shared
                .settler
                .settle(&delivery, "", "unknown", started, outcome)
                .await;
            return None;
        }
    };
    let span = tracing::Span::current();
    span.record("command_id", tracing::field::display(env.id));
    span.record("command_type", env.kind.as_str());
    span.record("correlation_id", env.correlation_id.as_str());
    // Anything can arrive as a type: only known ones become a metrics label.
    let kind = if Command::is_known(&env.kind) {
        env.kind.clone()
    } else {
        "unknown".to_owned()
    };
    let outcome = match authorized(shared, &delivery, &env).await {
        Ok(Ok(caller)) => match Command::from_envelope(&env) {
            Ok(cmd) => {
                return Some(Ready {
                    delivery,
                    env,
                    cmd,
                    caller,
                    kind,
                    started,
                });
            }
            Err(e) => refused(shared, Refusal::undecodable(Some(&env.kind), e)),
        },
        Ok(Err(refusal)) => refused(shared, refusal),
        // The caller is not known yet: no reply into Roster's own queues.
        Err(e) => failed(&env, &e, false),
    };
    shared
        .settler
        .settle(&delivery, &env.correlation_id, &kind, started, outcome)
        .await;
    None
}

/// Applies `run` (commands that may share a transaction) and settles each: in one batch,
/// then what the batch left one by one, with retries.
async fn apply_run(shared: &Shared, run: Vec<Ready>) {
    if run.is_empty() {
        return;
    }
    // Declaring a command expired is always safe (its caller gets `503` either way), so
    // the worker's own clock may decide it early; only applying needs PostgreSQL's clock.
    let now = chrono::Utc::now();
    let (expired, run): (Vec<Ready>, Vec<Ready>) =
        run.into_iter().partition(|r| r.env.expired_at(now));
    for r in expired {
        let result = one(shared, &r).await;
        settle(shared, &r, result).await;
    }
    let settled = if run.len() > 1 {
        let items: Vec<Item> = run
            .iter()
            .map(|r| Item {
                env: &r.env,
                cmd: &r.cmd,
            })
            .collect();
        match apply::apply_batch(&shared.db, &shared.ctx, &items).await {
            Ok(batch) => {
                if let Some(e) = &batch.error {
                    tracing::warn!(error = %redact(e), applied = batch.settled.len(), of = run.len(), "a command of the batch failed; it and the ones after it are applied one by one");
                }
                batch.settled
            }
            Err(e) => {
                tracing::warn!(error = %redact(&e), size = run.len(), "the batch failed; its commands are applied one by one");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if !settled.is_empty() {
        shared.committed.notify_one();
        batch_size(shared, settled.len());
    }
    // The batch's replies and acks go out together: each waits only for its own confirm.
    let n = settled.len();
    let (done, rest) = run.split_at(n);
    futures_util::future::join_all(
        done.iter()
            .zip(settled)
            .map(|(r, applied)| settle(shared, r, Ok(applied))),
    )
    .await;
    for r in rest {
        let result = one(shared, r).await;
        settle(shared, r, result).await;
    }
}

/// Applies one command on its own, with in-process retries of transient failures.
async fn one(shared: &Shared, r: &Ready) -> Result<Applied, DbErr> {
    let attempt = || apply::apply(&shared.db, &shared.ctx, &r.env, &r.cmd);
    let result = attempt
        .retry(common::retry::database_transient())
        // A unique violation means a concurrent command won a race the pre-checks could
        // not see; running again answers it properly (a 409).
        .when(|e| is_transient(e) || is_unique_violation(e))
        .notify(|e, after| tracing::warn!(command_id = %r.env.id, error = %redact(e), retry_in_ms = after.as_millis() as u64, "transient failure; retrying"))
        .await;
    if matches!(result, Ok(Applied { expired: false, .. })) {
        shared.committed.notify_one();
        batch_size(shared, 1);
    }
    result
}

/// Counts one committed transaction of `n` commands.
fn batch_size(shared: &Shared, n: usize) {
    metrics::histogram!(common::metrics::COMMAND_BATCH_SIZE, "prefix" => shared.settler.prefix.clone())
        .record(n as f64);
}

/// Settles an applied (or failed) command.
async fn settle(shared: &Shared, r: &Ready, result: Result<Applied, DbErr>) {
    let trusted = r.caller == Caller::Roster;
    let outcome = match result {
        Ok(Applied {
            reply,
            expired: true,
        }) => {
            tracing::warn!(command_id = %r.env.id, apply_by = ?r.env.apply_by, "command past its deadline; not applied");
            Outcome::Expired { reply, trusted }
        }
        Ok(Applied { reply, .. }) => {
            tracing::info!(command_id = %r.env.id, command_type = %r.env.kind, correlation_id = %r.env.correlation_id, status = reply.status(), "command applied");
            let unanswered = r.delivery.properties.reply_to().is_none();
            match failed_outcome(&reply).filter(|_| r.caller == Caller::Integration && unanswered) {
                // Another service's fire-and-forget command failed: with nobody waiting for
                // the reply, the dead-letter queue is where the failure shows. Its id is
                // stored, so the same command published again has no second effect.
                Some(reason) => {
                    tracing::warn!(reason = %reason, "integration command failed; dead-lettered");
                    Outcome::DeadLettered {
                        reason,
                        answer: Answer::Nothing,
                    }
                }
                None => Outcome::Answered { reply, trusted },
            }
        }
        Err(e) => failed(&r.env, &e, trusted),
    };
    shared
        .settler
        .settle(
            &r.delivery,
            &r.env.correlation_id,
            &r.kind,
            r.started,
            outcome,
        )
        .await;
}

/// A refused command: dead-lettered with its reason (nothing was applied), and the error
/// to a publisher waiting on `reply_to`.
fn refused(shared: &Shared, refusal: Refusal) -> Outcome {
    tracing::warn!(reason = %refusal.reason, "command refused; dead-lettered");
    metrics::counter!(common::metrics::COMMANDS_REFUSED, "reason" => refusal.class, "prefix" => shared.settler.prefix.clone())
        .increment(1);
    Outcome::DeadLettered {
        reason: refusal.reason.clone(),
        answer: Answer::Error(refusal.reply()),
    }
}

/// A database failure that outlasted the in-process retries: transient ones go to a retry
/// queue; permanent ones to the dead-letter queue, and a caller waiting on `reply_to` is
/// answered `500` at once (once it is stored as the command's final answer) rather than
/// left to time out. `trusted` as for `Settler::send_reply`.
fn failed(env: &Envelope, e: &DbErr, trusted: bool) -> Outcome {
    let reason = redact(e);
    if is_transient(e) {
        return Outcome::RetryLater { reason };
    }
    tracing::error!(error = %reason, "command failed permanently; dead-lettered");
    Outcome::DeadLettered {
        reason,
        answer: Answer::Failed {
            reply: Reply::error(
                500,
                None,
                "the change could not be applied and nothing was changed, and it never will \
                 be; it is kept in Roster's dead-letter queue for an operator to inspect",
            ),
            env: Box::new(env.clone()),
            trusted,
        },
    }
}

/// `authorize`, with transient database failures retried in process.
async fn authorized(
    shared: &Shared,
    delivery: &Delivery,
    env: &Envelope,
) -> Result<Result<Caller, Refusal>, DbErr> {
    let user_id = delivery.properties.user_id().as_ref().map(|u| u.as_str());
    let own_user = shared.settler.publisher().user();
    let attempt = || authorize(&shared.db, env, user_id, own_user);
    attempt
        .retry(common::retry::database_transient())
        .when(is_transient)
        .notify(|e, after| tracing::warn!(error = %redact(e), retry_in_ms = after.as_millis() as u64, "transient failure; retrying"))
        .await
}
