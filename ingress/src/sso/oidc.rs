//! The OpenID Connect protocol, through the `openidconnect` crate: discovery (fetched at each
//! step, so a key the provider rotates in is used at once and a key it drops is refused),
//! the authorization request with PKCE, `state` and `nonce`, the code exchange, and the ID
//! token's checks (signature against the provider's JWKS, issuer, audience, expiry, nonce).
//! Nothing here is hand-written JWT handling. Only starting a sign-in reuses an issuer's
//! discovery document for a few minutes (`Providers`), so a flood of sign-in starts is not
//! a flood of requests to the provider; finishing always reads discovery and JWKS afresh.

use common::{messages::SignInClaim, secret::Secret};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How long one call to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long starting a sign-in reuses an issuer's discovery document.
const START_REUSES_DISCOVERY_FOR: Duration = Duration::from_secs(300);

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The providers' side: the HTTP client (no redirects followed, the crate's advice against
/// SSRF; a timeout; rustls with the system's roots) and the discovery documents sign-in
/// starts reuse, by issuer.
#[derive(Clone)]
pub struct Providers {
    http: reqwest::Client,
    discovered: Arc<Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>>,
}

impl Default for Providers {
    fn default() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(PROVIDER_TIMEOUT)
                .build()
                .unwrap_or_default(),
            discovered: Arc::default(),
        }
    }
}

impl Providers {
    /// The issuer's discovery document (with its JWKS), read now.
    async fn discover(&self, issuer: &str) -> Result<CoreProviderMetadata, Failure> {
        let url = IssuerUrl::new(issuer.to_owned()).map_err(unreachable)?;
        let metadata = CoreProviderMetadata::discover_async(url, &self.http)
            .await
            .map_err(unreachable)?;
        let now = Instant::now();
        let mut cache = self.discovered.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (at, _)| now.duration_since(*at) < START_REUSES_DISCOVERY_FOR);
        cache.insert(issuer.to_owned(), (now, metadata.clone()));
        Ok(metadata)
    }

    /// The issuer's discovery document read in the last few minutes, else read now.
    async fn recent(&self, issuer: &str) -> Result<CoreProviderMetadata, Failure> {
        let cached = {
            let cache = self.discovered.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(issuer)
                .filter(|(at, _)| at.elapsed() < START_REUSES_DISCOVERY_FOR)
                .map(|(_, m)| m.clone())
        };
        match cached {
            Some(m) => Ok(m),
            None => self.discover(issuer).await,
        }
    }
}

/// An org's client at its provider, as stored (the secret opened by the caller).
pub struct OrgClient {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub redirect_uri: String,
}

/// Why a sign-in did not complete: a short code (shown on the page and in docs/sso.md)
/// and what the person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl Failure {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }
}

/// The start of a sign-in: where to send the browser and what to remember for the return.
pub struct Start {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// What a valid ID token says about the person.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub preferred_username: Option<String>,
}

impl Verified {
    /// The value of the org's claim, if the token has it (an `email` the provider says is
    /// not verified does not count).
    pub fn claim(&self, claim: SignInClaim) -> Result<&str, Failure> {
        let value = match claim {
            SignInClaim::Email => {
                if self.email_verified == Some(false) {
                    return Err(Failure::new(
                        "email_not_verified",
                        403,
                        "Your identity provider says your email address is not verified.",
                    ));
                }
                self.email.as_deref()
            }
            SignInClaim::PreferredUsername => self.preferred_username.as_deref(),
        };
        value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            Failure::new(
                "missing_claim",
                403,
                format!(
                    "The ID token has no {} claim; ask your administrator to add the \"{}\" scope in Okta.",
                    claim.as_str(),
                    if claim == SignInClaim::Email { "email" } else { "profile" }
                ),
            )
        })
    }
}

fn unreachable(e: impl std::fmt::Display) -> Failure {
    tracing::warn!(error = %e, "OpenID provider discovery failed");
    Failure::new(
        "provider_unreachable",
        502,
        "Roster could not read your identity provider's configuration. Try again in a minute; if it persists, tell your administrator.",
    )
}

/// The org's client at the provider the metadata describes.
fn client(metadata: CoreProviderMetadata, org: &OrgClient) -> Result<Client, Failure> {
    let redirect = RedirectUrl::new(org.redirect_uri.clone()).map_err(unreachable)?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(org.client_id.clone()),
        Some(ClientSecret::new(org.client_secret.expose().clone())),
    )
    .set_redirect_uri(redirect))
}

/// Starts a sign-in: the provider's authorization URL with a fresh `state`, `nonce` and PKCE
/// challenge (S256), asking for `openid email profile`.
pub async fn start(providers: &Providers, org: &OrgClient) -> Result<Start, Failure> {
    let client = client(providers.recent(&org.issuer).await?, org)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(Start {
        url: url.to_string(),
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// Exchanges the code (with the PKCE verifier) and checks the ID token against the
/// provider's current JWKS, the issuer, the client id as audience, the expiry and `nonce`.
pub async fn finish(
    providers: &Providers,
    org: &OrgClient,
    code: &str,
    pkce_verifier: &str,
    nonce: &str,
) -> Result<Verified, Failure> {
    let client = client(providers.discover(&org.issuer).await?, org)?;
    let http = &providers.http;
    let request = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(unreachable)?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()));
    let response = request.request_async(http).await.map_err(|e| {
        tracing::info!(error = %e, "the provider refused the authorization code");
        Failure::new(
            "code_refused",
            401,
            "Your identity provider did not accept this sign-in (the code was refused, perhaps used already or the client secret is wrong). Start again; if it persists, tell your administrator.",
        )
    })?;
    let id_token = response.id_token().ok_or_else(|| {
        Failure::new(
            "no_id_token",
            401,
            "Your identity provider sent no ID token; the app in Okta must be an OpenID Connect app.",
        )
    })?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
        .map_err(refused)?;
    Ok(Verified {
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|e| e.as_str().to_owned()),
        email_verified: claims.email_verified(),
        preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
    })
}

/// An ID token that failed a check, as the person's page says it.
fn refused(e: ClaimsVerificationError) -> Failure {
    tracing::info!(error = %e, "ID token refused");
    let (code, message) = match &e {
        ClaimsVerificationError::InvalidAudience(_) => (
            "wrong_audience",
            "The ID token was issued for another application.",
        ),
        ClaimsVerificationError::InvalidNonce(_) => (
            "wrong_nonce",
            "The ID token does not belong to this sign-in (nonce mismatch).",
        ),
        ClaimsVerificationError::Expired(_) => ("expired_token", "The ID token has expired."),
        ClaimsVerificationError::InvalidIssuer(_) => (
            "wrong_issuer",
            "The ID token comes from another identity provider than the one configured.",
        ),
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => (
            "unknown_key",
            "The ID token is signed with a key your identity provider does not publish.",
        ),
        ClaimsVerificationError::SignatureVerification(_) => {
            ("bad_signature", "The ID token's signature is not valid.")
        }
        _ => ("invalid_token", "The ID token is not valid."),
    };
    Failure::new(
        code,
        401,
        format!(
            "{message} Roster did not sign you in. Start again; if it persists, tell your administrator."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(email: Option<&str>, verified: Option<bool>, login: Option<&str>) -> Verified {
        Verified {
            subject: "00u1".into(),
            email: email.map(Into::into),
            email_verified: verified,
            preferred_username: login.map(Into::into),
        }
    }

    #[test]
    fn the_org_claim_is_read_and_an_unverified_email_refused() {
        let v = verified(Some("jane@example.com"), Some(true), Some("jane"));
        assert_eq!(v.claim(SignInClaim::Email), Ok("jane@example.com"));
        assert_eq!(v.claim(SignInClaim::PreferredUsername), Ok("jane"));
        let unverified = verified(Some("jane@example.com"), Some(false), None);
        assert_eq!(
            unverified.claim(SignInClaim::Email).map_err(|f| f.code),
            Err("email_not_verified")
        );
        assert_eq!(
            unverified
                .claim(SignInClaim::PreferredUsername)
                .map_err(|f| f.code),
            Err("missing_claim")
        );
        let blank = verified(Some(" "), None, None);
        assert_eq!(
            blank.claim(SignInClaim::Email).map_err(|f| f.code),
            Err("missing_claim")
        );
    }

    #[test]
    fn each_token_check_has_its_own_code() {
        let code = |e| refused(e).code;
        assert_eq!(
            code(ClaimsVerificationError::InvalidAudience("x".into())),
            "wrong_audience"
        );
        assert_eq!(
            code(ClaimsVerificationError::InvalidNonce("x".into())),
            "wrong_nonce"
        );
        assert_eq!(
            code(ClaimsVerificationError::Expired("x".into())),
            "expired_token"
        );
        assert_eq!(
            code(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
            )),
            "unknown_key"
        );
    }
}
