//! The payloads of employee sign-in: the org's OpenID Connect client, a sign-in and a
//! sign-out.

use crate::secret::TokenHash;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which ID token claim names the person signing in (docs/sso.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignInClaim {
    /// `email`, compared with the person's userName and their directory email.
    #[default]
    Email,
    /// `preferred_username` (Okta's login), compared with the person's userName.
    PreferredUsername,
}

impl SignInClaim {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInClaim::Email => "email",
            SignInClaim::PreferredUsername => "preferred_username",
        }
    }
}

/// An org's OpenID Connect client at its provider (Okta).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcClient {
    /// The issuer URL (an Okta org or authorization server).
    pub issuer: String,
    pub client_id: String,
    /// The client secret, sealed by the ingress with `ROSTER_SECRETS_KEY`
    /// (`common::sealed`, bound to the org); absent: keep the stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sealed: Option<String>,
    #[serde(default)]
    pub claim: SignInClaim,
}

/// `PUT`/`DELETE /admin/v1/sso`: sets the org's employee sign-in, or (`oidc` absent) turns
/// it off. Every change ends every employee session of the org.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSso {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcClient>,
}

/// A person signed in: the ID token was valid (checked by the ingress); the worker decides
/// whether its claim names an active person of the org, records it, and, from an invite
/// link, accepts the invite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The org's claim setting the ingress used.
    pub claim: SignInClaim,
    /// The claim's value in the ID token.
    pub value: String,
    /// The token's `sub`, for the activity log.
    pub subject: String,
    /// The org's `oidc_generation` when the sign-in started: a settings change since then
    /// refuses it.
    pub oidc_generation: i64,
    /// From an invite link: the invite to accept with this first sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_token_hash: Option<TokenHash>,
}

/// A person signed out: every session of theirs ends (their session generation moves on).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignOut {
    pub user_id: Uuid,
}
