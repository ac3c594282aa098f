//! The SCIM tokens this ingress has checked, kept for a moment so that a request does not
//! cost a database lookup (docs/performance.md, "A token checked once").
//!
//! A kept token is trusted only while PostgreSQL's announcements reach this ingress: every
//! change that can end a token's validity (revoked, deleted, provisioning switched, org
//! deleted) is announced on `roster_scim_tokens` when it commits (migration
//! `m0011_token_changes`), and hearing one forgets every kept token. While the listening
//! connection is down, nothing is kept and every request is looked up. A token is kept at
//! most `KEEP` (should a connection die unseen), and a lookup that began before an
//! announcement is not kept (`generation`). The ingress that relays an admin change
//! forgets its tokens itself before it answers, so the change holds there from the answer
//! on; elsewhere, from the moment its announcement arrives (milliseconds). Only valid
//! tokens are kept: a wrong one is always looked up.

use common::secret::TokenHash;
use sea_orm::sqlx::postgres::PgListener;
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};
use tokio::sync::watch;
use uuid::Uuid;

/// The channel the migration's triggers notify.
pub const CHANNEL: &str = "roster_scim_tokens";
/// How long a checked token is trusted at most.
pub const KEEP: Duration = Duration::from_secs(2);
/// Most tokens kept; past it they are all forgotten (an org has one live token).
const MAX_KEPT: usize = 10_000;

#[derive(Default)]
struct Kept {
    /// Whether the announcements reach us: only then is anything kept or trusted.
    listening: bool,
    /// Bumped by every announcement (and every loss of the channel).
    generation: u64,
    /// By the digest of the token presented: its org, and when it was looked up.
    tokens: HashMap<String, (Uuid, Instant)>,
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
        if !kept.listening {
            return None;
        }
        let (org, at) = kept.tokens.get(presented.as_str())?;
        (at.elapsed() < KEEP).then_some(*org)
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
        if !kept.listening || kept.generation != generation {
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

    /// Forgets every kept token and, with `Some`, says whether announcements reach us.
    fn set_listening(&self, listening: Option<bool>) {
        if let Ok(mut kept) = self.kept.write() {
            kept.generation = kept.generation.wrapping_add(1);
            kept.tokens.clear();
            if let Some(listening) = listening {
                kept.listening = listening;
            }
        }
    }
}

/// Listens on [`CHANNEL`] until `shutdown` turns true, forgetting the kept tokens at each
/// announcement; while the connection is down (PostgreSQL unreachable), nothing is kept,
/// and it is opened again after a pause.
pub async fn listen(cache: Arc<TokenCache>, url: String, mut shutdown: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match follow(&cache, &url, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                cache.set_listening(Some(false));
                tracing::warn!(error = %common::secret::redact_urls(&e.to_string()), retry_in_ms = pause.as_millis() as u64, "SCIM token announcements not heard; every request is looked up meanwhile");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {},
            _ = shutdown.changed() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// One listening connection (`DATABASE_URL`), for as long as it lasts. `Ok` at shutdown.
async fn follow(
    cache: &TokenCache,
    url: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), sea_orm::sqlx::Error> {
    // A connection of its own, outside the pool the requests use.
    let mut listener = PgListener::connect(url).await?;
    // A lost connection is reported (`None`) rather than silently replaced, so that what
    // was announced meanwhile is not missed.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    // Listening from here on: anything kept before may have missed an announcement.
    cache.set_listening(Some(true));
    loop {
        tokio::select! {
            got = listener.try_recv() => match got? {
                Some(_) => cache.forget_all(),
                None => {
                    return Err(sea_orm::sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the listening connection was lost",
                    )));
                }
            },
            _ = shutdown.changed() => {
                cache.set_listening(Some(false));
                return Ok(());
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
        cache.keep(g, &a, org, Instant::now() - KEEP);
        assert_eq!(cache.get(&a), None);

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
