//! Secrets Roster must use again later (an org's OpenID Connect client secret), sealed with
//! AES-256-GCM under `ROSTER_SECRETS_KEY`. The sealed form is what travels on the queue and
//! is stored; it is bound to what it belongs to (the org) as associated data, so a sealed
//! value copied to another org does not open. Only the ingress holds the key.

use crate::secret::Secret;
use aes_gcm::{
    Aes256Gcm, KeyInit,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;

/// What a sealed value starts with (the format's version).
const PREFIX: &str = "v1.";
/// AES-GCM's 96-bit nonce, random per sealing.
const NONCE_LEN: usize = 12;

/// The 256-bit key secrets are sealed with.
#[derive(Clone)]
pub struct SealKey(Secret<[u8; 32]>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

/// A sealed value that does not open: another key, another org, or altered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the sealed secret cannot be opened (another ROSTER_SECRETS_KEY, or altered)")]
pub struct OpenError;

impl SealKey {
    /// The key in `ROSTER_SECRETS_KEY`: base64 (standard or URL-safe) of exactly 32 bytes.
    pub fn parse(value: &str) -> Result<Self, String> {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
        let value = value.trim();
        let bytes = STANDARD
            .decode(value)
            .or_else(|_| URL_SAFE.decode(value))
            .or_else(|_| STANDARD_NO_PAD.decode(value))
            .or_else(|_| URL_SAFE_NO_PAD.decode(value))
            .map_err(|_| "not base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes (e.g. `openssl rand -base64 32`)")?;
        Ok(Self(Secret::new(key)))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose().into())
    }

    /// Seals `plain` for `context` (e.g. `oidc:<org id>`): `v1.` and base64 of the random
    /// nonce followed by the ciphertext and its tag.
    pub fn seal(&self, context: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption fails only for messages longer than AES-GCM's 64 GiB bound.
        let sealed = self
            .cipher()
            .encrypt((&nonce).into(), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what `seal` made for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Secret<String>, OpenError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(OpenError)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError)?;
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        let plain = self
            .cipher()
            .decrypt((&nonce).into(), payload)
            .map_err(|_| OpenError)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn key(byte: u8) -> SealKey {
        SealKey::parse(&STANDARD.encode([byte; 32])).expect("a key")
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_context_only() {
        let k = key(1);
        let sealed = k.seal("oidc:org-a", "s3cr3t-client-secret");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(
            k.open("oidc:org-a", &sealed).expect("opens").expose(),
            "s3cr3t-client-secret"
        );
        assert_eq!(k.open("oidc:org-b", &sealed).err(), Some(OpenError));
        assert_eq!(key(2).open("oidc:org-a", &sealed).err(), Some(OpenError));
        assert_ne!(
            k.seal("oidc:org-a", "same"),
            k.seal("oidc:org-a", "same"),
            "a fresh nonce every time"
        );
    }

    #[test]
    fn altered_or_malformed_values_do_not_open() {
        let k = key(3);
        let sealed = k.seal("c", "value");
        let mut bytes = URL_SAFE_NO_PAD
            .decode(&sealed[PREFIX.len()..])
            .expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
        for bad in ["", "v1.", "v2.abc", "v1.!!!", "v1.AAAA", altered.as_str()] {
            assert_eq!(k.open("c", bad).err(), Some(OpenError), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_base64_of_32_bytes_and_never_print() {
        assert!(SealKey::parse(&STANDARD.encode([0u8; 31])).is_err());
        assert!(SealKey::parse(&STANDARD.encode([0u8; 33])).is_err());
        assert!(SealKey::parse("not base64!").is_err());
        let k = key(9);
        assert!(!format!("{k:?}").contains("9"));
    }
}
