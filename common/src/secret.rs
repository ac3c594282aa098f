//! Secrets: a wrapper that never prints, random tokens with a recognisable prefix, and
//! their SHA-256 digests (the only form that is stored or sent on the queue).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A value that is never shown by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The value itself, for the one place that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The kinds of token Roster issues; the prefix makes a leaked one recognisable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    AdminKey,
    Scim,
    Invite,
    /// A credential another service puts on the commands it publishes (`docs/messages.md`).
    Integration,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::AdminKey => "rst_admin_",
            TokenKind::Scim => "rst_scim_",
            TokenKind::Invite => "rst_inv_",
            TokenKind::Integration => "rst_int_",
        }
    }
}

/// A freshly issued token: the plain value (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub plain: Secret<String>,
    pub hash: TokenHash,
    /// The last four characters, to help an admin tell tokens apart.
    pub hint: String,
}

/// The SHA-256 digest of a token, as lowercase hex.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct TokenHash(pub String);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Constant-time equality, for comparing a presented token with a stored digest.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// A token's last four characters, to tell tokens apart without revealing them (empty for
/// one shorter than that: showing it would show all of it).
pub fn hint(token: &str) -> String {
    token
        .char_indices()
        .rev()
        .nth(3)
        .map_or("", |(i, _)| &token[i..])
        .to_owned()
}

/// Issues a 256-bit random token of the given kind.
pub fn issue(kind: TokenKind) -> IssuedToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let plain = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    let hint = hint(&plain);
    IssuedToken {
        hash: TokenHash::of(&plain),
        plain: Secret::new(plain),
        hint,
    }
}

/// The token that `key` derives for `id` (HMAC-SHA-256): the same every time, so a message
/// sent again carries the same token; like an issued one, only its digest is stored.
pub fn derive(kind: TokenKind, key: &[u8], id: &[u8]) -> IssuedToken {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(kind.prefix().as_bytes());
    mac.update(id);
    let plain = format!(
        "{}{}",
        kind.prefix(),
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    let hint = hint(&plain);
    IssuedToken {
        hash: TokenHash::of(&plain),
        plain: Secret::new(plain),
        hint,
    }
}

/// `text` with the user information of every URL in it (`scheme://user:password@`) replaced
/// by `[redacted]`: for error messages that may repeat a connection URL (a broker refusing
/// a virtual host repeats it, and a list of URLs taken as one puts them all in the vhost).
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the path, query or fragment, or where the URL itself does.
        let end = after
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | ',' | ';' | '\'' | '"' | '<' | '>' | '`'
                ) || c.is_whitespace()
            })
            .unwrap_or(after.len());
        match after[..end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("[redacted]");
                rest = &after[userinfo_end..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_tokens_are_stable_per_key_and_id() {
        let a = derive(TokenKind::Invite, b"k1", b"id-1");
        assert!(a.plain.expose().starts_with("rst_inv_"));
        assert_eq!(a.plain, derive(TokenKind::Invite, b"k1", b"id-1").plain);
        assert_ne!(a.plain, derive(TokenKind::Invite, b"k1", b"id-2").plain);
        assert_ne!(a.plain, derive(TokenKind::Invite, b"k2", b"id-1").plain);
        assert_eq!(a.hash, TokenHash::of(a.plain.expose()));
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_urls("access to vhost '/,amqp://u:pw1@h:5682/%2f,amqps://v:pw2@k/x' refused"),
            "access to vhost '/,amqp://[redacted]@h:5682/%2f,amqps://[redacted]@k/x' refused"
        );
        assert_eq!(
            redact_urls("postgres://me:s3cret@db/roster and amqp://guest:guest@[::1]:5672"),
            "postgres://[redacted]@db/roster and amqp://[redacted]@[::1]:5672"
        );
        // A password with an encoded `@`, a user without a password, nothing to hide.
        assert_eq!(redact_urls("amqp://u:p%40ss@h"), "amqp://[redacted]@h");
        assert_eq!(redact_urls("amqp://user@h:1"), "amqp://[redacted]@h:1");
        assert_eq!(redact_urls("amqp://h:5672/%2f"), "amqp://h:5672/%2f");
        assert_eq!(redact_urls("no url, an @ sign"), "no url, an @ sign");
        assert_eq!(redact_urls("ends with ://"), "ends with ://");
    }

    proptest::proptest! {
        #[test]
        fn no_password_survives(user in "[a-z]{1,8}", password in "[A-Za-z0-9%!$&()*+=:-]{6,20}", around in "[ -~]{0,20}") {
            let text = format!("{around}amqp://{user}:{password}@node-1:5672/%2f,{around}postgres://{user}:{password}@db/x{around}");
            let redacted = redact_urls(&text);
            proptest::prop_assert!(!redacted.contains(&format!(":{password}@")), "{}", redacted);
        }
    }

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = issue(TokenKind::Scim);
        let b = issue(TokenKind::Scim);
        assert!(a.plain.expose().starts_with("rst_scim_"));
        assert_ne!(a.plain.expose(), b.plain.expose());
        assert_eq!(a.hash, TokenHash::of(a.plain.expose()));
        assert_eq!(a.hash.as_str().len(), 64);
        assert!(a.plain.expose().ends_with(&a.hint));
        assert!(a.hash.ct_eq(&TokenHash::of(a.plain.expose())));
        assert!(!a.hash.ct_eq(&b.hash));
        assert!(!format!("{a:?}").contains(a.plain.expose().as_str()));
        assert!(
            issue(TokenKind::Integration)
                .plain
                .expose()
                .starts_with("rst_int_")
        );
    }
}
