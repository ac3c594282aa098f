//! Message contracts: the envelope every command and event travels in, the commands the
//! worker applies, its replies, and the events it publishes. Plain serde data.

use crate::secret::TokenHash;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The version of the message schemas in this file.
pub const SCHEMA_VERSION: u32 = 1;

/// What every message on Roster's exchanges looks like.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Unique per message; for a command it is the idempotency key.
    pub id: Uuid,
    /// `user.create`, `user.created`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The version of the message schemas (docs/messages.md, "Versioning").
    pub schema_version: u32,
    /// The tenant; absent only for `org.create` and `org.delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Uuid>,
    /// Travels from the HTTP request through the command, the reply and the events.
    pub correlation_id: String,
    /// When the message was made (for an event: when its change was committed), UTC.
    pub occurred_at: DateTime<Utc>,
    /// The type's own data: see the schema of each type (`docs/schemas/<type>.json`).
    pub payload: Value,
    /// On a command: the moment after which the worker must not apply it (UTC). Roster's
    /// ingress sets it to the time it stops waiting for the reply, so a command it answered
    /// `503` (or whose caller timed out) is never applied later; another service may set
    /// one or not (docs/messages.md, "Deadlines"). A command past it is acknowledged
    /// unapplied and answered `503`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_by: Option<DateTime<Utc>>,
    /// On a command from another service: its integration credential (`rst_int_…`), which
    /// must belong to `org_id`. Roster's own commands and all events carry none. Never
    /// printed by `Debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// By hand, so a credential never reaches a log line.
impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("schema_version", &self.schema_version)
            .field("org_id", &self.org_id)
            .field("correlation_id", &self.correlation_id)
            .field("occurred_at", &self.occurred_at)
            .field("payload", &self.payload)
            .field("apply_by", &self.apply_by)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Envelope {
    pub fn new(
        kind: &str,
        org_id: Option<Uuid>,
        correlation_id: &str,
        payload: impl Serialize,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            schema_version: SCHEMA_VERSION,
            org_id,
            correlation_id: correlation_id.to_owned(),
            occurred_at: Utc::now(),
            payload: serde_json::to_value(payload).unwrap_or(Value::Null),
            apply_by: None,
            credential: None,
        }
    }

    /// Whether the command's deadline has passed at `now` (never, without one).
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.apply_by.is_some_and(|by| now > by)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings, numbers and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError(format!("envelope: {e}")))
    }

    fn payload_as<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| DecodeError(format!("{} payload: {e}", self.kind)))
    }
}

/// A message that cannot be understood; it is dead-lettered with this text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("undecodable message: {0}")]
pub struct DecodeError(pub String);

/// A new token's stored form: its digest and last four characters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NewToken {
    pub hash: TokenHash,
    pub hint: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateOrg {
    pub org_id: Uuid,
    pub name: String,
    pub admin_key_hash: TokenHash,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetProvisioning {
    pub enabled: bool,
    /// The token to issue when provisioning is switched on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<NewToken>,
}

/// Replaces the org's admin key (the admin's own rotation, or the operator's reset of a
/// leaked one): the old key stops working at once, and `/admin` sessions signed in with it
/// end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateAdminKey {
    pub admin_key_hash: TokenHash,
    /// The operator reset the key (a leaked one), rather than the admin rotating it.
    #[serde(default)]
    pub by_operator: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateScimToken {
    pub token: NewToken,
}

/// Org settings to change; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_invites: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_synced_fields: Option<bool>,
    /// What happens to people Okta deactivated (docs/data-lifecycle.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_people: Option<DeactivatedPeople>,
    /// The mass-deprovisioning guard's settings; absent fields stay as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovision_guard: Option<GuardSettings>,
    /// The keys a person's manager value is tried against, in order (`org_chart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_match: Option<Vec<crate::org_chart::MatchKey>>,
}

/// The org's choice about deactivated people: keep them (the default), or erase them —
/// as a delete would — `after_days` days after their deactivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeactivatedPeople {
    Keep,
    Erase {
        /// 1 to 3650.
        after_days: u32,
    },
}

impl DeactivatedPeople {
    /// The most days `erase` may wait.
    pub const MAX_DAYS: u32 = 3650;

    /// As stored: `None` keeps, `Some(n)` erases after `n` days.
    pub fn after_days(self) -> Option<u32> {
        match self {
            DeactivatedPeople::Keep => None,
            DeactivatedPeople::Erase { after_days } => Some(after_days),
        }
    }

    pub fn from_days(days: Option<i32>) -> Self {
        match days.and_then(|d| u32::try_from(d).ok()) {
            Some(after_days) => DeactivatedPeople::Erase { after_days },
            None => DeactivatedPeople::Keep,
        }
    }

    /// An error naming the problem, for a bad `after_days`.
    pub fn validate(self) -> Result<(), String> {
        match self.after_days() {
            Some(d) if d == 0 || d > Self::MAX_DAYS => Err(format!(
                "deactivated_people.after_days must be 1 to {}",
                Self::MAX_DAYS
            )),
            _ => Ok(()),
        }
    }
}

/// `DELETE /api/v1/people/{id}` (the directory API, admin key), or the org's
/// deactivated-people policy (`by_policy`): the person is deleted and their personal data
/// erased from every table (docs/data-lifecycle.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletePerson {
    pub user_id: Uuid,
    /// Erased by the org's policy for deactivated people, not by an admin: applied only if
    /// the person is still deactivated and past the org's window.
    #[serde(default)]
    pub by_policy: bool,
}

/// `DELETE /admin/v1/orgs/{id}` (the operator): every row of the org goes, in one
/// transaction. The envelope carries no `org_id`, so nothing Roster keeps about the command
/// names the org.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteOrg {
    pub org_id: Uuid,
}

/// `PUT /admin/v1/orgs/{id}/retention` (the operator): how long the org's activity entries
/// are kept; `null` for the default (`ACTIVITY_RETENTION`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOrgRetention {
    /// 1 to 36500, or `null`.
    pub activity_days: Option<u32>,
}

/// The mass-deprovisioning guard of an org (docs/admin.md): once more than
/// `max(min_count, threshold_percent % of its active people)` people are deactivated or
/// deleted within `window_minutes`, further deactivations and deletions are held (`503`)
/// until an admin approves or rejects them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_percent: Option<u32>,
    /// 1 to 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    /// 1 to 10080 (a week).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<u32>,
}

impl GuardSettings {
    /// Every value out of range, named; `Ok` when all given values are in range.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let check = |name: &str, v: Option<u32>, max: u32, problems: &mut Vec<String>| {
            if let Some(v) = v
                && !(1..=max).contains(&v)
            {
                problems.push(format!("{name} must be 1 to {max}, not {v}"));
            }
        };
        check(
            "threshold_percent",
            self.threshold_percent,
            100,
            &mut problems,
        );
        check("min_count", self.min_count, 100_000, &mut problems);
        check("window_minutes", self.window_minutes, 10_080, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// An admin's decision on the deactivations and deletions the guard holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardDecision {
    /// The held changes succeed on the identity provider's next retry; the count starts again.
    Approve,
    /// The held changes, and every other deactivation or deletion, stay refused until the
    /// window has passed.
    Reject,
}

/// `POST /admin/v1/deprovision-guard/{approve,reject}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideGuard {
    pub decision: GuardDecision,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateUser {
    /// The SCIM User as validated by the sender: no `id`, `meta` or password.
    pub resource: Value,
}

/// `PUT /Users/{id}`: replace the user with `resource`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplaceUser {
    pub user_id: Uuid,
    pub resource: Value,
    /// The version the client saw (`If-Match`); a mismatch is `412`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `PATCH /Users/{id}`: the RFC 7644 PatchOp body, applied by the worker to the current user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatchUser {
    pub user_id: Uuid,
    pub patch: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteUser {
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `user.deactivate` / `user.reactivate` (for other services): the same change, event and
/// reply as a `PATCH /Users/{id}` that sets `active` to false / true.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetUserActive {
    pub user_id: Uuid,
    /// The version the sender saw; a mismatch is `412`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `POST /Groups`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateGroup {
    pub resource: Value,
}

/// `PUT /Groups/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplaceGroup {
    pub group_id: Uuid,
    pub resource: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `PATCH /Groups/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatchGroup {
    pub group_id: Uuid,
    pub patch: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// `DELETE /Groups/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteGroup {
    pub group_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<i64>,
}

/// Replaces the org's whole mapping (`PUT /admin/v1/mappings`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetMappings {
    pub mappings: Vec<crate::mapping::Mapping>,
}

/// An edit of a person's directory fields (`PATCH /api/v1/people/{id}`): field → new value,
/// `null` to clear.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdatePerson {
    pub user_id: Uuid,
    pub fields: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptInvite {
    pub token_hash: TokenHash,
}

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

/// `POST /admin/v1/integrations`: a credential another service of the org publishes
/// commands with. Only its digest travels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateIntegration {
    pub integration_id: Uuid,
    pub name: String,
    pub credential: NewToken,
}

/// `DELETE /admin/v1/integrations/{id}`: the credential stops working at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RevokeIntegration {
    pub integration_id: Uuid,
}

/// The command types other services may publish with an integration credential; every
/// other type is Roster's own.
pub const PUBLIC_COMMANDS: &[&str] = &[
    "user.create",
    "user.replace",
    "user.patch",
    "user.deactivate",
    "user.reactivate",
    "user.delete",
    "group.create",
    "group.replace",
    "group.patch",
    "group.delete",
];

/// Every command the worker applies.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    CreateOrg(CreateOrg),
    RotateAdminKey(RotateAdminKey),
    SetProvisioning(SetProvisioning),
    RotateScimToken(RotateScimToken),
    UpdateSettings(UpdateSettings),
    SetMappings(SetMappings),
    UpdatePerson(UpdatePerson),
    DeletePerson(DeletePerson),
    DeleteOrg(DeleteOrg),
    SetOrgRetention(SetOrgRetention),
    CreateUser(CreateUser),
    ReplaceUser(ReplaceUser),
    PatchUser(PatchUser),
    DeleteUser(DeleteUser),
    DeactivateUser(SetUserActive),
    ReactivateUser(SetUserActive),
    CreateGroup(CreateGroup),
    ReplaceGroup(ReplaceGroup),
    PatchGroup(PatchGroup),
    DeleteGroup(DeleteGroup),
    AcceptInvite(AcceptInvite),
    CreateIntegration(CreateIntegration),
    RevokeIntegration(RevokeIntegration),
    SetSso(SetSso),
    SignIn(SignIn),
    SignOut(SignOut),
    DecideGuard(DecideGuard),
}

impl Command {
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateOrg(_) => "org.create",
            Command::RotateAdminKey(_) => "admin_key.rotate",
            Command::SetProvisioning(_) => "provisioning.set",
            Command::RotateScimToken(_) => "provisioning.rotate_token",
            Command::UpdateSettings(_) => "settings.update",
            Command::SetMappings(_) => "mappings.set",
            Command::UpdatePerson(_) => "person.update",
            Command::DeletePerson(_) => "person.delete",
            Command::DeleteOrg(_) => "org.delete",
            Command::SetOrgRetention(_) => "org.set_retention",
            Command::CreateUser(_) => "user.create",
            Command::ReplaceUser(_) => "user.replace",
            Command::PatchUser(_) => "user.patch",
            Command::DeleteUser(_) => "user.delete",
            Command::DeactivateUser(_) => "user.deactivate",
            Command::ReactivateUser(_) => "user.reactivate",
            Command::CreateGroup(_) => "group.create",
            Command::ReplaceGroup(_) => "group.replace",
            Command::PatchGroup(_) => "group.patch",
            Command::DeleteGroup(_) => "group.delete",
            Command::AcceptInvite(_) => "invite.accept",
            Command::CreateIntegration(_) => "integration.create",
            Command::RevokeIntegration(_) => "integration.revoke",
            Command::SetSso(_) => "sso.set",
            Command::SignIn(_) => "person.sign_in",
            Command::SignOut(_) => "person.sign_out",
            Command::DecideGuard(_) => "deprovision_guard.decide",
        }
    }

    /// Whether `kind` names a command the worker knows.
    pub fn is_known(kind: &str) -> bool {
        KNOWN_COMMANDS.contains(&kind)
    }

    /// Wraps the command for the given org.
    pub fn into_envelope(self, org_id: Option<Uuid>, correlation_id: &str) -> Envelope {
        let kind = self.kind();
        let payload = match self {
            Command::CreateOrg(p) => serde_json::to_value(p),
            Command::RotateAdminKey(p) => serde_json::to_value(p),
            Command::SetProvisioning(p) => serde_json::to_value(p),
            Command::RotateScimToken(p) => serde_json::to_value(p),
            Command::UpdateSettings(p) => serde_json::to_value(p),
            Command::SetMappings(p) => serde_json::to_value(p),
            Command::UpdatePerson(p) => serde_json::to_value(p),
            Command::DeletePerson(p) => serde_json::to_value(p),
            Command::DeleteOrg(p) => serde_json::to_value(p),
            Command::SetOrgRetention(p) => serde_json::to_value(p),
            Command::CreateUser(p) => serde_json::to_value(p),
            Command::ReplaceUser(p) => serde_json::to_value(p),
            Command::PatchUser(p) => serde_json::to_value(p),
            Command::DeleteUser(p) => serde_json::to_value(p),
            Command::DeactivateUser(p) | Command::ReactivateUser(p) => serde_json::to_value(p),
            Command::CreateGroup(p) => serde_json::to_value(p),
            Command::ReplaceGroup(p) => serde_json::to_value(p),
            Command::PatchGroup(p) => serde_json::to_value(p),
            Command::DeleteGroup(p) => serde_json::to_value(p),
            Command::AcceptInvite(p) => serde_json::to_value(p),
            Command::CreateIntegration(p) => serde_json::to_value(p),
            Command::RevokeIntegration(p) => serde_json::to_value(p),
            Command::SetSso(p) => serde_json::to_value(p),
            Command::SignIn(p) => serde_json::to_value(p),
            Command::SignOut(p) => serde_json::to_value(p),
            Command::DecideGuard(p) => serde_json::to_value(p),
        };
        Envelope::new(kind, org_id, correlation_id, payload.unwrap_or(Value::Null))
    }

    pub fn from_envelope(env: &Envelope) -> Result<Self, DecodeError> {
        if env.schema_version != SCHEMA_VERSION {
            return Err(DecodeError(format!(
                "schema_version {} is not supported (expected {SCHEMA_VERSION})",
                env.schema_version
            )));
        }
        let needs_org = !matches!(env.kind.as_str(), "org.create" | "org.delete");
        if needs_org && env.org_id.is_none() {
            return Err(DecodeError(format!("{} needs an org_id", env.kind)));
        }
        Ok(match env.kind.as_str() {
            "org.create" => Command::CreateOrg(env.payload_as()?),
            "admin_key.rotate" => Command::RotateAdminKey(env.payload_as()?),
            "provisioning.set" => Command::SetProvisioning(env.payload_as()?),
            "provisioning.rotate_token" => Command::RotateScimToken(env.payload_as()?),
            "settings.update" => Command::UpdateSettings(env.payload_as()?),
            "mappings.set" => Command::SetMappings(env.payload_as()?),
            "person.update" => Command::UpdatePerson(env.payload_as()?),
            "person.delete" => Command::DeletePerson(env.payload_as()?),
            "org.delete" => Command::DeleteOrg(env.payload_as()?),
            "org.set_retention" => Command::SetOrgRetention(env.payload_as()?),
            "user.create" => Command::CreateUser(env.payload_as()?),
            "user.replace" => Command::ReplaceUser(env.payload_as()?),
            "user.patch" => Command::PatchUser(env.payload_as()?),
            "user.delete" => Command::DeleteUser(env.payload_as()?),
            "user.deactivate" => Command::DeactivateUser(env.payload_as()?),
            "user.reactivate" => Command::ReactivateUser(env.payload_as()?),
            "group.create" => Command::CreateGroup(env.payload_as()?),
            "group.replace" => Command::ReplaceGroup(env.payload_as()?),
            "group.patch" => Command::PatchGroup(env.payload_as()?),
            "group.delete" => Command::DeleteGroup(env.payload_as()?),
            "invite.accept" => Command::AcceptInvite(env.payload_as()?),
            "integration.create" => Command::CreateIntegration(env.payload_as()?),
            "integration.revoke" => Command::RevokeIntegration(env.payload_as()?),
            "sso.set" => Command::SetSso(env.payload_as()?),
            "person.sign_in" => Command::SignIn(env.payload_as()?),
            "person.sign_out" => Command::SignOut(env.payload_as()?),
            "deprovision_guard.decide" => Command::DecideGuard(env.payload_as()?),
            other => return Err(DecodeError(format!("unknown command type {other:?}"))),
        })
    }
}

/// Every command type, public or Roster's own.
pub const KNOWN_COMMANDS: &[&str] = &[
    "org.create",
    "admin_key.rotate",
    "provisioning.set",
    "provisioning.rotate_token",
    "settings.update",
    "mappings.set",
    "person.update",
    "person.delete",
    "org.delete",
    "org.set_retention",
    "user.create",
    "user.replace",
    "user.patch",
    "user.deactivate",
    "user.reactivate",
    "user.delete",
    "group.create",
    "group.replace",
    "group.patch",
    "group.delete",
    "invite.accept",
    "integration.create",
    "integration.revoke",
    "sso.set",
    "person.sign_in",
    "person.sign_out",
    "deprovision_guard.decide",
];

/// The worker's answer to a command, sent after commit and stored for redeliveries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Reply {
    Ok {
        status: u16,
        #[serde(default)]
        body: Value,
    },
    Error {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scim_type: Option<String>,
        detail: String,
    },
}

impl Reply {
    pub fn ok(status: u16, body: Value) -> Self {
        Reply::Ok { status, body }
    }
    pub fn error(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Reply::Error {
            status,
            scim_type: scim_type.map(str::to_owned),
            detail: detail.into(),
        }
    }
    pub fn status(&self) -> u16 {
        match self {
            Reply::Ok { status, .. } | Reply::Error { status, .. } => *status,
        }
    }
}

/// Payload of the `user.*` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserEvent {
    /// The user's id (the SCIM `id`).
    pub user_id: Uuid,
    /// Per-user, strictly increasing: the SCIM `meta.version`.
    pub version: i64,
    /// The user's `userName` (unique per org, case-insensitively).
    pub user_name: String,
    /// The fields this change set, with their new values (all of them on create; a removed
    /// field is `null`; empty on delete). When only the person's manager link changed
    /// (their manager arrived), it is `{"manager_id": …}`.
    pub changes: Map<String, Value>,
    /// The person's manager, resolved from the mapped `manager` value (docs/admin.md, "The
    /// org chart"): their Roster id, or `null` while there is none or none matched.
    #[serde(default)]
    pub manager_id: Option<Uuid>,
}

/// Payload of the `group.*` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupEvent {
    /// The group's id (the SCIM `id`).
    pub group_id: Uuid,
    /// Per-group, strictly increasing.
    pub version: i64,
    /// The group's `displayName`.
    pub display_name: String,
    /// What changed: `displayName`, `externalId`, `members_added` and `members_removed`
    /// (user ids); everything on create; empty on delete.
    pub changes: Map<String, Value>,
}

/// The type of the ingress's provisioning-log messages (on `<p>.provisioning-log`).
pub const PROVISIONING_LOG: &str = "provisioning_log.entries";

/// One SCIM request's outcome, as an org's admin sees it in the provisioning log. Never
/// a body, a query string or a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProvisioningLogEntry {
    /// Unique (a UUIDv7, so newest sorts last); a redelivered batch adds nothing twice.
    pub id: Uuid,
    pub org_id: Uuid,
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path under `/scim/v2`, e.g. `/Users/0190…` (no query string).
    pub path: String,
    /// `User`, `Group`, or absent (discovery, search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The person or group: from the path, or a create's `Location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<Uuid>,
    /// The HTTP status answered.
    pub status: u16,
    /// The SCIM error's `detail`, when the answer was an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Time to answer, in milliseconds.
    pub duration_ms: u32,
    /// The request's `X-Request-Id`.
    pub correlation_id: String,
}

/// Payload of `provisioning_log.entries`: what one ingress answered in a short while.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProvisioningLogEntries {
    pub entries: Vec<ProvisioningLogEntry>,
}

/// Event routing keys.
pub mod events {
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_DEACTIVATED: &str = "user.deactivated";
    pub const USER_REACTIVATED: &str = "user.reactivated";
    pub const USER_DELETED: &str = "user.deleted";
    pub const GROUP_CREATED: &str = "group.created";
    pub const GROUP_UPDATED: &str = "group.updated";
    pub const GROUP_DELETED: &str = "group.deleted";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_the_envelope() {
        let cmd = Command::CreateUser(CreateUser {
            resource: serde_json::json!({"userName": "a@b.c"}),
        });
        let org = Uuid::new_v4();
        let env = cmd.clone().into_envelope(Some(org), "req-1");
        assert_eq!(env.kind, "user.create");
        let back = Envelope::from_bytes(&env.to_bytes()).expect("decodes");
        assert_eq!(Command::from_envelope(&back).expect("a command"), cmd);
        assert_eq!(back.org_id, Some(org));
        assert_eq!(back.correlation_id, "req-1");
    }

    #[test]
    fn unknown_or_orgless_commands_are_refused() {
        let mut env = Command::AcceptInvite(AcceptInvite {
            token_hash: TokenHash("x".into()),
        })
        .into_envelope(None, "c");
        assert!(Command::from_envelope(&env).is_err());
        env.org_id = Some(Uuid::new_v4());
        env.kind = "user.explode".into();
        assert!(Command::from_envelope(&env).is_err());
        assert!(Envelope::from_bytes(b"not json").is_err());
    }

    #[test]
    fn a_credential_travels_but_never_prints() {
        let mut env = Command::DeactivateUser(SetUserActive {
            user_id: Uuid::new_v4(),
            if_match: None,
        })
        .into_envelope(Some(Uuid::new_v4()), "c");
        assert!(!String::from_utf8_lossy(&env.to_bytes()).contains("credential"));
        env.credential = Some("rst_int_sesame".into());
        let back = Envelope::from_bytes(&env.to_bytes()).expect("decodes");
        assert_eq!(back.credential.as_deref(), Some("rst_int_sesame"));
        assert!(!format!("{back:?}").contains("sesame"));
        assert_eq!(
            Command::from_envelope(&back).expect("a command").kind(),
            "user.deactivate"
        );
    }

    #[test]
    fn public_commands_are_known_commands() {
        for kind in PUBLIC_COMMANDS {
            assert!(Command::is_known(kind), "{kind}");
        }
        assert!(Command::is_known("provisioning.set"));
        assert!(!PUBLIC_COMMANDS.contains(&"provisioning.set"));
        assert!(!Command::is_known("user.explode"));
    }

    #[test]
    fn replies_serialise_with_an_outcome_tag() {
        let r = Reply::error(409, Some("uniqueness"), "taken");
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["outcome"], "error");
        assert_eq!(v["scim_type"], "uniqueness");
        assert_eq!(serde_json::from_value::<Reply>(v).expect("back"), r);
    }
}
