//! The admin page's session: what its signed cookie holds (the org once signed in, a
//! fingerprint of the admin key it signed in with, an expiry checked here as well as by the
//! browser, a random CSRF token) and the cookie's flags. Plain values and the time passed
//! in, so expiry and CSRF checks are unit-tested; the signature is `axum_extra`'s
//! `SignedCookieJar`.
//!
//! Sessions are stateless, so they end three ways: at their expiry, when the signing key
//! changes, and when the org's admin key changes — each request compares the session's key
//! fingerprint with the org's current admin key (`page::Visit`), so a replaced or revoked
//! key ends every session made with it at once. Session fixation: the cookie a browser
//! holds before signing in (the sign-in form's) is never promoted; sign-in issues a new one.

use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use common::Settings;
use rand::RngCore;
use std::sync::{Arc, OnceLock};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The cookie's name.
pub const COOKIE: &str = "roster_admin";
/// The cookie's path: only the page's routes receive it.
pub const PATH: &str = "/admin";
/// How long a sign-in lasts.
pub const SIGNED_IN_FOR: TimeDelta = TimeDelta::hours(8);
/// How long a sign-in form stays usable.
pub const SIGN_IN_FORM_FOR: TimeDelta = TimeDelta::minutes(30);

/// One browser's session. Without `org` it only protects the sign-in form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub org: Option<Uuid>,
    /// Unix seconds after which the session is no longer accepted.
    pub expires: i64,
    /// `key_fingerprint` of the admin key the session signed in with (`-` before sign-in).
    pub key: String,
    pub csrf: String,
}

/// What a session remembers of the admin key it signed in with: 128 bits of a digest of
/// the stored key hash (never the hash itself, though the cookie is only signed, not
/// encrypted).
pub fn key_fingerprint(admin_key_hash: &str) -> String {
    let digest = common::secret::TokenHash::of(&format!("roster admin session:{admin_key_hash}"));
    digest.as_str()[..32].to_owned()
}

impl Session {
    /// A session for the sign-in form only, with a fresh CSRF token.
    pub fn sign_in_form(now: DateTime<Utc>) -> Self {
        Self {
            org: None,
            expires: (now + SIGN_IN_FORM_FOR).timestamp(),
            key: "-".to_owned(),
            csrf: random_token(),
        }
    }

    /// A new session for an admin who just signed in with the key whose fingerprint is
    /// `key`: a new CSRF token every time, so nothing from before the sign-in carries over.
    pub fn signed_in(org: Uuid, key: String, now: DateTime<Utc>) -> Self {
        Self {
            org: Some(org),
            expires: (now + SIGNED_IN_FOR).timestamp(),
            key,
            csrf: random_token(),
        }
    }

    /// Whether the session was made with the admin key whose stored hash is given.
    pub fn key_matches(&self, admin_key_hash: &str) -> bool {
        let current = key_fingerprint(admin_key_hash);
        self.org.is_some() && bool::from(current.as_bytes().ct_eq(self.key.as_bytes()))
    }

    /// The cookie value: `v2.<org or ->.<expires>.<key fingerprint or ->.<csrf>`.
    pub fn encode(&self) -> String {
        let org = self.org.map_or_else(|| "-".to_owned(), |o| o.to_string());
        format!("v2.{org}.{}.{}.{}", self.expires, self.key, self.csrf)
    }

    /// The session in a (signature-checked) cookie value, if well formed and not expired.
    pub fn decode(value: &str, now: DateTime<Utc>) -> Option<Self> {
        let mut parts = value.split('.');
        let (Some("v2"), Some(org), Some(expires), Some(key), Some(csrf), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let org = match org {
            "-" => None,
            o => Some(Uuid::parse_str(o).ok()?),
        };
        let expires: i64 = expires.parse().ok()?;
        (expires > now.timestamp() && csrf.len() >= 32).then(|| Self {
            org,
            expires,
            key: key.to_owned(),
            csrf: csrf.to_owned(),
        })
    }

    /// Whether a form's CSRF field is this session's token (constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())))
    }

    /// The cookie carrying this session: HttpOnly, SameSite=Strict, Path=/admin, Secure
    /// when the ingress is served over https, and expiring with the session.
    pub fn cookie(&self, secure: bool, now: DateTime<Utc>) -> Cookie<'static> {
        let max_age = (self.expires - now.timestamp()).max(0);
        let mut c = Cookie::new(COOKIE, self.encode());
        c.set_http_only(true);
        c.set_same_site(SameSite::Strict);
        c.set_path(PATH);
        c.set_secure(secure);
        c.set_max_age(cookie::time::Duration::seconds(max_age));
        c
    }
}

/// The cookie that removes the session.
pub fn removal() -> Cookie<'static> {
    let mut c = Cookie::from(COOKIE);
    c.set_path(PATH);
    c
}

/// Whether cookies must be `Secure`: the ingress is reached over https.
pub fn secure(settings: &Settings) -> bool {
    settings.public_url.starts_with("https://")
}

/// 256 random bits, URL-safe.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The signing key: `ROSTER_SESSION_KEY`, or random bytes made once per ingress (then
/// sessions end when it restarts and do not work across replicas).
#[derive(Clone, Default)]
pub struct Keys(Arc<OnceLock<Key>>);

impl Keys {
    pub fn key(&self, settings: &Settings) -> &Key {
        self.0.get_or_init(|| {
            let configured = settings
                .session_key
                .as_ref()
                .and_then(|k| common::config::session_key(k.expose()).ok());
            match configured {
                Some(bytes) => Key::from(&bytes),
                None => {
                    let mut bytes = [0u8; 64];
                    rand::rng().fill_bytes(&mut bytes);
                    Key::from(&bytes)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("a valid time")
    }

    #[test]
    fn a_session_round_trips_until_it_expires() {
        let now = at(1_700_000_000);
        let org = Uuid::now_v7();
        let s = Session::signed_in(org, key_fingerprint("h"), now);
        assert_eq!(Session::decode(&s.encode(), now), Some(s.clone()));
        let almost = now + SIGNED_IN_FOR - TimeDelta::seconds(1);
        assert!(Session::decode(&s.encode(), almost).is_some());
        assert_eq!(Session::decode(&s.encode(), now + SIGNED_IN_FOR), None);
        let form = Session::sign_in_form(now);
        assert_eq!(
            Session::decode(&form.encode(), now).and_then(|f| f.org),
            None
        );
        assert!(Session::decode(&form.encode(), now + SIGN_IN_FORM_FOR).is_none());
    }

    #[test]
    fn malformed_values_are_no_session() {
        let now = at(1_700_000_000);
        let good = Session::signed_in(Uuid::now_v7(), key_fingerprint("h"), now).encode();
        for bad in [
            "",
            "v2",
            "v1.-.1800000000.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "v3.-.1800000000.-.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "v2.not-a-uuid.1800000000.-.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "v2.-.soon.-.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "v2.-.1800000000.-.short",
            &format!("{good}.extra"),
        ] {
            assert_eq!(Session::decode(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn csrf_must_match_exactly() {
        let s = Session::signed_in(Uuid::now_v7(), key_fingerprint("h"), at(0));
        assert!(s.csrf_matches(Some(&s.csrf)));
        assert!(!s.csrf_matches(None));
        assert!(!s.csrf_matches(Some("")));
        assert!(!s.csrf_matches(Some(&s.csrf[1..])));
        assert!(!s.csrf_matches(Some(&format!("{}x", s.csrf))));
        let other = Session::signed_in(s.org.expect("org"), s.key.clone(), at(0));
        assert_ne!(other.csrf, s.csrf, "every sign-in gets a new token");
        assert!(!other.csrf_matches(Some(&s.csrf)));
    }

    #[test]
    fn a_session_is_bound_to_the_admin_key_it_signed_in_with() {
        let now = at(1_700_000_000);
        let s = Session::signed_in(Uuid::now_v7(), key_fingerprint("old-hash"), now);
        assert!(s.key_matches("old-hash"));
        assert!(
            !s.key_matches("new-hash"),
            "a replaced key ends the session"
        );
        assert!(!s.key.contains("old-hash"));
        assert!(!Session::sign_in_form(now).key_matches("old-hash"));
        let decoded = Session::decode(&s.encode(), now).expect("valid");
        assert!(decoded.key_matches("old-hash"));
    }

    #[test]
    fn the_cookie_has_its_flags() {
        let now = at(1_700_000_000);
        let s = Session::signed_in(Uuid::now_v7(), key_fingerprint("h"), now);
        let c = s.cookie(true, now).to_string();
        for flag in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/admin",
            "Max-Age=28800",
        ] {
            assert!(c.contains(flag), "{c} lacks {flag}");
        }
        assert!(!s.cookie(false, now).to_string().contains("Secure"));
    }

    #[test]
    fn the_configured_key_is_used() {
        use base64::engine::general_purpose::STANDARD;
        let mut settings = Settings::defaults();
        settings.session_key = Some(common::secret::Secret::new(STANDARD.encode([9u8; 64])));
        let a = Keys::default();
        let b = Keys::default();
        assert_eq!(a.key(&settings).master(), b.key(&settings).master());
        settings.session_key = None;
        assert_ne!(
            Keys::default().key(&settings).master(),
            Keys::default().key(&settings).master(),
            "random keys differ"
        );
    }
}
