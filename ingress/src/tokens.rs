//! The SCIM tokens this ingress has checked, kept for a moment so that a request does not
//! cost a database lookup (docs/performance.md, "A token checked once, an event parsed once").
//!
//! A kept token is trusted only while PostgreSQL's announcements are known to reach this
//! ingress: every change that can end a token's validity (revoked, deleted, provisioning
//! switched, org deleted) is announced on `roster_scim_tokens` when it commits (migration
//! `m0011_token_changes`), and hearing one forgets every kept token. "Known to reach": the
//! listener checks that the announcing triggers exist and are enabled, and hears a
//! heartbeat of its own every `HEARTBEAT` sent through the request pool; with none heard
//! for `HEARD_WITHIN` (a connection dead unseen, a pooler that drops notifications),
//! nothing kept is trusted. While the listener is down, nothing is kept and every request
//! is looked up. A token is kept at most `KEEP`, and a lookup that began before an
//! announcement is not kept (`generation`). The ingress that relays an admin change
//! forgets its tokens itself before it answers, so the change holds there from the answer
//! on; elsewhere, from the moment its announcement arrives (milliseconds). Only valid
//! tokens are kept: a wrong one is always looked up.

use common::secret::{Secret, TokenHash};
use sea_orm::{
    ConnectionTrait, DatabaseConnection,
    sqlx::{
        self,
        postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    },
};
use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};
use tokio::sync::watch;
use uuid::Uuid;

/// The channel the migration's triggers notify.
pub const CHANNEL: &str = "roster_scim_tokens";
/// How long a checked token is trusted at most.
pub const KEEP: Duration = Duration::from_secs(2);
/// How often the listener sends itself a heartbeat.
const HEARTBEAT: Duration = Duration::from_millis(250);
/// Kept tokens are trusted only while a heartbeat was heard this recently.
const HEARD_WITHIN: Duration = Duration::from_secs(1);
/// Most tokens kept; past it they are all forgotten (an org has one live token).
const MAX_KEPT: usize = 10_000;
/// The migration's triggers, which must exist and be enabled for anything to be kept.
const TRIGGERS_ON: &str = "SELECT count(*) = 2 FROM pg_trigger \
     WHERE tgname IN ('scim_tokens_changed', 'orgs_provisioning_changed') \
     AND tgenabled IN ('O', 'A')";

#[derive(Default)]
struct Kept {
    /// Whether the announcements reach us: only then is anything kept or trusted.
    listening: bool,
    /// When the listener last heard its own heartbeat.
    heard: Option<Instant>,
    /// Bumped by every announcement (and every loss of the channel).
    generation: u64,
    /// By the digest of the token presented: its org, and when it was looked up.
    tokens: HashMap<String, (Uuid, Instant)>,
}

impl Kept {
    fn trusted(&self) -> bool {
        self.listening && self.heard.is_some_and(|at| at.elapsed() < HEARD_WITHIN)
    }
}

/// The kept tokens. Cheap to share (`Arc`).
#[derive(Default)]
pub struct TokenCache {
    kept: RwLock<Kept>,
}

impl TokenCache {
    /// The org of a kept token, if it is kept and still trusted.
    pub fn get(&self, presented: &TokenHash) -> Option<Uuid> {
        let kept = self.kept.read().ok()?;
        if !kept.trusted() {
            return None;
        }
        let (org, at) = kept.tokens.get(presented.as_str())?;
        (at.elapsed() < KEEP).then_some(*org)
    }

    /// Whether tokens are kept now (`/readyz` shows it).
    pub fn is_keeping(&self) -> bool {
        self.kept.read().is_ok_and(|k| k.trusted())
    }

    /// Before a lookup: the generation to hand to [`TokenCache::keep`] with its result.
    pub fn generation(&self) -> u64 {
        self.kept.read().map(|k| k.generation).unwrap_or(u64::MAX)
    }

    /// Keeps a token found valid by a lookup that began at `generation`, unless a change
    /// was announced since (the lookup may have read what came before it).
    pub fn keep(&self, generation: u64, presented: &TokenHash, org: Uuid, looked_up: Instant) {
        let Ok(mut kept) = self.kept.write() else {
            return;
        };
        if !kept.trusted() || kept.generation != generation {
            return;
        }
        if kept.tokens.len() >= MAX_KEPT {
            kept.tokens.clear();
        }
        kept.tokens
            .insert(presented.as_str().to_owned(), (org, looked_up));
    }

    /// Forgets every kept token: a change was announced, or made through this ingress.
    pub fn forget_all(&self) {
        self.set_listening(None);
    }

    /// The listener heard its heartbeat.
    fn heard(&self) {
        if let Ok(mut kept) = self.kept.write() {
            kept.heard = Some(Instant::now());
        }
    }

    /// Forgets every kept token and, with `Some`, says whether announcements reach us.
    fn set_listening(&self, listening: Option<bool>) {
        if let Ok(mut kept) = self.kept.write() {
            kept.generation = kept.generation.wrapping_add(1);
            kept.tokens.clear();
            if let Some(listening) = listening {
                kept.listening = listening;
                kept.heard = None;
            }
        }
    }
}

/// Why the listener is not listening.
#[derive(Debug, thiserror::Error)]
enum Deaf {
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
    #[error("the listening connection was lost")]
    Lost,
    #[error("no heartbeat: {0}")]
    Heartbeat(String),
    #[error(
        "the triggers of migration m0011_token_changes are missing or disabled (run `worker migrate`)"
    )]
    NoTriggers,
}

/// Listens on [`CHANNEL`] (on a connection of its own to `url`, `DATABASE_URL`) until
/// `shutdown` turns true, forgetting the kept tokens at each announcement; while it
/// cannot listen, nothing is kept, and it tries again after a pause. Heartbeats go
/// through `db`, the requests' pool.
pub async fn listen(
    cache: Arc<TokenCache>,
    url: Secret<String>,
    db: DatabaseConnection,
    mut shutdown: watch::Receiver<bool>,
) {
    // Read once: sqlx warns of what it does not know in a URL, and must not at each retry.
    let pool = match PgConnectOptions::from_str(url.expose()) {
        Ok(options) => PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options),
        Err(_) => {
            tracing::warn!("DATABASE_URL unreadable for the SCIM token listener; no token is kept");
            return;
        }
    };
    let heartbeat = format!("{CHANNEL}_{}", Uuid::new_v4().simple());
    let mut pause = Duration::from_millis(100);
    loop {
        let outcome = tokio::select! {
            outcome = follow(&cache, &pool, &db, &heartbeat, &mut pause) => outcome,
            _ = shutdown.changed() => Ok(()),
        };
        cache.set_listening(Some(false));
        match outcome {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %common::secret::redact_urls(&e.to_string()), retry_in_ms = pause.as_millis() as u64, "SCIM token announcements not heard; every request is looked up meanwhile");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {},
            _ = shutdown.changed() => break,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    pool.close().await;
}

/// One listening connection, for as long as it lasts (it returns only with why not).
async fn follow(
    cache: &TokenCache,
    pool: &sqlx::PgPool,
    db: &DatabaseConnection,
    heartbeat: &str,
    pause: &mut Duration,
) -> Result<(), Deaf> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported (`None`) rather than silently replaced, so that what
    // was announced meanwhile is not missed.
    listener.eager_reconnect(false);
    listener.listen_all([CHANNEL, heartbeat]).await?;
    let triggers: bool = sqlx::query_scalar(TRIGGERS_ON)
        .fetch_one(&mut listener)
        .await?;
    if !triggers {
        return Err(Deaf::NoTriggers);
    }
    // Listening from here on: anything kept before may have missed an announcement.
    cache.set_listening(Some(true));
    *pause = Duration::from_millis(100);
    let beat = common::db::stmt("SELECT pg_notify($1, '')", [heartbeat.into()]);
    let mut ticks = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            got = listener.try_recv() => match got? {
                Some(n) if n.channel() == heartbeat => cache.heard(),
                Some(_) => cache.forget_all(),
                None => return Err(Deaf::Lost),
            },
            _ = ticks.tick() => {
                match tokio::time::timeout(HEARD_WITHIN, db.execute_raw(beat.clone())).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(Deaf::Heartbeat(common::db::redact(&e))),
                    Err(_) => return Err(Deaf::Heartbeat("no answer in time".into())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> TokenHash {
        TokenHash::of(s)
    }

    #[test]
    fn a_token_is_kept_only_while_announcements_are_heard_and_no_change_came_between() {
        let cache = TokenCache::default();
        let (a, org) = (token("rst_scim_a"), Uuid::new_v4());
        // Not listening: nothing is kept.
        let g = cache.generation();
        cache.keep(g, &a, org, Instant::now());
        assert_eq!(cache.get(&a), None);

        cache.set_listening(Some(true));
        let g = cache.generation();
        cache.keep(g, &a, org, Instant::now());
        assert_eq!(cache.get(&a), None, "no heartbeat heard yet");
        cache.heard();
        cache.keep(g, &a, org, Instant::now());
        assert_eq!(cache.get(&a), Some(org));
        assert_eq!(cache.get(&token("rst_scim_b")), None);

        // A change announced while a lookup was under way: its result is not kept.
        let b = token("rst_scim_b");
        let before = cache.generation();
        cache.forget_all();
        assert_eq!(cache.get(&a), None, "forgotten");
        cache.keep(before, &b, org, Instant::now());
        assert_eq!(cache.get(&b), None, "read before the change");

        // Kept at most KEEP.
        let g = cache.generation();
        cache.keep(
            g,
            &a,
            org,
            Instant::now().checked_sub(KEEP).expect("uptime"),
        );
        assert_eq!(cache.get(&a), None);

        // No heartbeat for HEARD_WITHIN: nothing kept is trusted.
        cache.keep(g, &a, org, Instant::now());
        assert_eq!(cache.get(&a), Some(org));
        cache.kept.write().expect("lock").heard = Instant::now().checked_sub(HEARD_WITHIN);
        assert_eq!(cache.get(&a), None);
        assert!(!cache.is_keeping());
        cache.heard();
        assert!(cache.is_keeping());

        // The channel lost: nothing kept is trusted, nothing new is kept.
        cache.keep(g, &a, org, Instant::now());
        assert_eq!(cache.get(&a), Some(org));
        cache.set_listening(Some(false));
        assert_eq!(cache.get(&a), None);
        let g = cache.generation();
        cache.keep(g, &a, org, Instant::now());
        assert_eq!(cache.get(&a), None);
    }
}
