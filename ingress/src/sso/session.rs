//! What the employee sign-in keeps in the browser, in cookies signed with the session key
//! (`ROSTER_SESSION_KEY`): the flow in progress (`roster_sso`: org, `state`, `nonce`, the
//! PKCE verifier, the settings generation, the invite it came from; ten minutes, only sent
//! to `/sso`) and the session (`roster_session`: org, person, the person's and the org's
//! session generations, expiry, a CSRF token). Both are HttpOnly and `SameSite=Lax` (the
//! provider's redirect back is a cross-site top-level GET), `Secure` when `PUBLIC_URL` is
//! https. Nothing is stored server-side (the ingress does not write the database): a
//! session ends at its expiry, at sign-out, or when either generation it carries is no
//! longer the current one — each request checks them (`sso::signed_in`).

use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub const FLOW_COOKIE: &str = "roster_sso";
pub const FLOW_PATH: &str = "/sso";
pub const FLOW_FOR: TimeDelta = TimeDelta::minutes(10);
pub const SESSION_COOKIE: &str = "roster_session";
pub const SESSION_PATH: &str = "/";
pub const SIGNED_IN_FOR: TimeDelta = TimeDelta::hours(8);

/// A sign-in in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub org: Uuid,
    pub expires: i64,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The org's `oidc_generation` when the flow started.
    pub generation: i64,
    /// The invite (its digest) the sign-in started from.
    pub invite_hash: Option<String>,
}

/// Every part is base64url or hex or a number: none holds a `.`.
fn plain(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Flow {
    pub fn encode(&self) -> String {
        format!(
            "f1.{}.{}.{}.{}.{}.{}.{}",
            self.org,
            self.expires,
            self.state,
            self.nonce,
            self.pkce_verifier,
            self.generation,
            self.invite_hash.as_deref().unwrap_or("-")
        )
    }

    pub fn decode(value: &str, now: DateTime<Utc>) -> Option<Self> {
        let p: Vec<&str> = value.split('.').collect();
        let [
            "f1",
            org,
            expires,
            state,
            nonce,
            verifier,
            generation,
            invite,
        ] = p[..]
        else {
            return None;
        };
        let expires: i64 = expires.parse().ok()?;
        if expires <= now.timestamp() || ![state, nonce, verifier, invite].into_iter().all(plain) {
            return None;
        }
        Some(Self {
            org: Uuid::parse_str(org).ok()?,
            expires,
            state: state.to_owned(),
            nonce: nonce.to_owned(),
            pkce_verifier: verifier.to_owned(),
            generation: generation.parse().ok()?,
            invite_hash: (invite != "-").then(|| invite.to_owned()),
        })
    }

    /// Whether the `state` the provider sent back is this flow's (constant time).
    pub fn state_matches(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.state.as_bytes()))
    }

    pub fn cookie(&self, secure: bool, now: DateTime<Utc>) -> Cookie<'static> {
        cookie(
            FLOW_COOKIE,
            FLOW_PATH,
            self.encode(),
            self.expires,
            secure,
            now,
        )
    }
}

/// A signed-in employee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub org: Uuid,
    pub user: Uuid,
    pub expires: i64,
    /// The person's `session_generation` at sign-in (bumped when they are deactivated).
    pub person_generation: i64,
    /// The org's `oidc_generation` at sign-in (bumped by every settings change).
    pub org_generation: i64,
    pub csrf: String,
}

impl Session {
    pub fn new(
        org: Uuid,
        user: Uuid,
        person_generation: i64,
        org_generation: i64,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            org,
            user,
            expires: (now + SIGNED_IN_FOR).timestamp(),
            person_generation,
            org_generation,
            csrf: random_token(),
        }
    }

    pub fn encode(&self) -> String {
        format!(
            "e1.{}.{}.{}.{}.{}.{}",
            self.org,
            self.user,
            self.expires,
            self.person_generation,
            self.org_generation,
            self.csrf
        )
    }

    /// The session in a signature-checked cookie value, expired or not (`live` says): an
    /// ended session still tells which org to offer a new sign-in for.
    pub fn decode(value: &str) -> Option<Self> {
        let p: Vec<&str> = value.split('.').collect();
        let ["e1", org, user, expires, person, org_gen, csrf] = p[..] else {
            return None;
        };
        (csrf.len() >= 32 && plain(csrf)).then_some(())?;
        Some(Self {
            org: Uuid::parse_str(org).ok()?,
            user: Uuid::parse_str(user).ok()?,
            expires: expires.parse().ok()?,
            person_generation: person.parse().ok()?,
            org_generation: org_gen.parse().ok()?,
            csrf: csrf.to_owned(),
        })
    }

    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires > now.timestamp()
    }

    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())))
    }

    pub fn cookie(&self, secure: bool, now: DateTime<Utc>) -> Cookie<'static> {
        cookie(
            SESSION_COOKIE,
            SESSION_PATH,
            self.encode(),
            self.expires,
            secure,
            now,
        )
    }
}

fn cookie(
    name: &'static str,
    path: &'static str,
    value: String,
    expires: i64,
    secure: bool,
    now: DateTime<Utc>,
) -> Cookie<'static> {
    let mut c = Cookie::new(name, value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_path(path);
    c.set_secure(secure);
    c.set_max_age(cookie::time::Duration::seconds(
        (expires - now.timestamp()).max(0),
    ));
    c
}

/// The cookie that removes `name` (set at `path`).
pub fn removal(name: &'static str, path: &'static str) -> Cookie<'static> {
    let mut c = Cookie::from(name);
    c.set_path(path);
    c
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("a valid time")
    }

    fn flow(now: DateTime<Utc>, invite: Option<&str>) -> Flow {
        Flow {
            org: Uuid::now_v7(),
            expires: (now + FLOW_FOR).timestamp(),
            state: "c3RhdGU".into(),
            nonce: "bm9uY2U".into(),
            pkce_verifier: "dmVyaWZpZXJ2ZXJpZmllcg-_".into(),
            generation: 3,
            invite_hash: invite.map(Into::into),
        }
    }

    #[test]
    fn a_flow_round_trips_until_it_expires() {
        let now = at(1_700_000_000);
        for f in [flow(now, None), flow(now, Some("ab12"))] {
            assert_eq!(Flow::decode(&f.encode(), now), Some(f.clone()));
            assert_eq!(Flow::decode(&f.encode(), now + FLOW_FOR), None);
        }
        let f = flow(now, None);
        assert!(f.state_matches("c3RhdGU"));
        assert!(!f.state_matches("c3RhdGV"));
        assert!(!f.state_matches(""));
        for bad in ["", "f1", "f2.x", &format!("{}.x", f.encode())] {
            assert_eq!(Flow::decode(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn a_session_round_trips_and_knows_when_it_has_expired() {
        let now = at(1_700_000_000);
        let s = Session::new(Uuid::now_v7(), Uuid::now_v7(), 2, 5, now);
        let back = Session::decode(&s.encode()).expect("decodes");
        assert_eq!(back, s);
        assert!(back.live(now));
        assert!(!back.live(now + SIGNED_IN_FOR));
        assert!(s.csrf_matches(Some(&s.csrf)));
        assert!(!s.csrf_matches(Some(&s.csrf[1..])));
        assert!(!s.csrf_matches(None));
        for bad in ["", "e1", "v2.x.y.z.w", &format!("{}.x", s.encode())] {
            assert_eq!(Session::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_https() {
        let now = at(1_700_000_000);
        let s = Session::new(Uuid::now_v7(), Uuid::now_v7(), 0, 0, now);
        let c = s.cookie(true, now).to_string();
        for flag in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=28800",
        ] {
            assert!(c.contains(flag), "{c} lacks {flag}");
        }
        assert!(!s.cookie(false, now).to_string().contains("Secure"));
        let f = flow(now, None).cookie(false, now).to_string();
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/sso", "Max-Age=600"] {
            assert!(f.contains(flag), "{f} lacks {flag}");
        }
    }
}
