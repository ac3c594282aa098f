//! The admin operations behind both the JSON API (`admin::api`) and the integration page
//! (`admin::page`): reads from PostgreSQL, writes as commands. Secrets (SCIM tokens,
//! integration credentials) are generated here, returned once, and sent to the worker only
//! as digests.

use crate::{commands::execute, error::ApiError, request_id::RequestId, state::AppState};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::{
    db::{reads::org_mapping, stmt},
    mapping::{self, Mapping},
    messages::{
        Command, CreateIntegration, DeactivatedPeople, DecideGuard, DeleteOrg, DeletePerson,
        GuardDecision, NewToken, OidcClient, Reply, RevokeIntegration, RotateAdminKey,
        RotateScimToken, SetMappings, SetOrgRetention, SetProvisioning, SetSso, SignInClaim,
        UpdatePerson, UpdateSettings,
    },
    org_chart::{self, MatchKey},
    secret::{self, TokenKind},
};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// A reply as an admin API result: the body on success, `{"error"}` otherwise.
pub fn reply_body(reply: Reply) -> Result<(StatusCode, Value), ApiError> {
    match reply {
        Reply::Ok { status, body } => {
            Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
        }
        Reply::Error { status, detail, .. } => Err(ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail,
        )),
    }
}

async fn command(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    cmd: Command,
) -> Result<Value, ApiError> {
    Ok(reply_body(execute(state, Some(org), request, cmd).await?)?.1)
}

#[derive(Clone, Debug, Serialize)]
pub struct ProvisioningStatus {
    pub enabled: bool,
    /// `…` and the token's last four characters.
    pub token_hint: Option<String>,
    pub token_created_at: Option<DateTime<Utc>>,
    /// What to paste into Okta as the SCIM connector base URL.
    pub scim_base_url: String,
}

pub async fn provisioning(state: &AppState, org: Uuid) -> Result<ProvisioningStatus, ApiError> {
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT o.provisioning_enabled, t.hint, t.created_at FROM orgs o \
             LEFT JOIN scim_tokens t ON t.org_id = o.id AND t.revoked_at IS NULL \
             WHERE o.id = $1 ORDER BY t.created_at DESC LIMIT 1",
            [org.into()],
        ))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "organisation not found"))?;
    let hint: Option<String> = row.try_get("", "hint")?;
    Ok(ProvisioningStatus {
        enabled: row.try_get("", "provisioning_enabled")?,
        token_hint: hint.map(|h| format!("…{h}")),
        token_created_at: row.try_get("", "created_at")?,
        scim_base_url: state.scim_base(),
    })
}

/// Turns provisioning on or off. Returns the new token when switching on issued one
/// (switching on while already on keeps the token Okta holds).
pub async fn set_provisioning(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    enabled: bool,
) -> Result<Option<String>, ApiError> {
    let token = enabled.then(|| secret::issue(TokenKind::Scim));
    let cmd = Command::SetProvisioning(SetProvisioning {
        enabled,
        token: token.as_ref().map(|t| NewToken {
            hash: t.hash.clone(),
            hint: t.hint.clone(),
        }),
    });
    let body = command(state, org, request, cmd).await?;
    let issued = body["token_issued"].as_bool().unwrap_or(false);
    Ok(token.filter(|_| issued).map(|t| t.plain.expose().clone()))
}

/// Issues a new SCIM token; the old one stops working at once.
pub async fn rotate_token(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
) -> Result<String, ApiError> {
    let token = secret::issue(TokenKind::Scim);
    let cmd = Command::RotateScimToken(RotateScimToken {
        token: NewToken {
            hash: token.hash.clone(),
            hint: token.hint.clone(),
        },
    });
    command(state, org, request, cmd).await?;
    Ok(token.plain.expose().clone())
}

/// Issues a new admin key for the org; the old one stops working at once, and `/admin`
/// sessions signed in with it end. `by_operator`: the operator's reset of a leaked key.
pub async fn rotate_admin_key(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    by_operator: bool,
) -> Result<String, ApiError> {
    let key = secret::issue(TokenKind::AdminKey);
    let cmd = Command::RotateAdminKey(RotateAdminKey {
        admin_key_hash: key.hash.clone(),
        by_operator,
    });
    command(state, org, request, cmd).await?;
    Ok(key.plain.expose().clone())
}

/// A newly issued integration credential: the only time `credential` is shown.
#[derive(Clone, Debug, Serialize)]
pub struct NewIntegration {
    pub id: Uuid,
    pub name: String,
    pub credential: String,
    pub created_at: DateTime<Utc>,
}

/// An integration as listed: never its credential, only a hint.
#[derive(Clone, Debug, Serialize)]
pub struct Integration {
    pub id: Uuid,
    pub name: String,
    /// `…` and the credential's last four characters.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Issues an integration credential for another service of the org.
pub async fn create_integration(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    name: String,
) -> Result<NewIntegration, ApiError> {
    let credential = secret::issue(TokenKind::Integration);
    let id = Uuid::now_v7();
    let cmd = Command::CreateIntegration(CreateIntegration {
        integration_id: id,
        name,
        credential: NewToken {
            hash: credential.hash.clone(),
            hint: credential.hint.clone(),
        },
    });
    let body = command(state, org, request, cmd).await?;
    let unreadable = |_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unreadable reply");
    Ok(NewIntegration {
        id,
        name: serde_json::from_value(body["name"].clone()).map_err(unreadable)?,
        credential: credential.plain.expose().clone(),
        created_at: serde_json::from_value(body["created_at"].clone()).map_err(unreadable)?,
    })
}

/// The org's integrations, newest first, revoked ones included.
pub async fn integrations(state: &AppState, org: Uuid) -> Result<Vec<Integration>, ApiError> {
    let rows = state
        .db
        .query_all_raw(stmt(
            "SELECT id, name, hint, created_at, revoked_at FROM integration_credentials \
             WHERE org_id = $1 ORDER BY created_at DESC, id DESC",
            [org.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let hint: String = r.try_get("", "hint")?;
            Ok(Integration {
                id: r.try_get("", "id")?,
                name: r.try_get("", "name")?,
                hint: format!("…{hint}"),
                created_at: r.try_get("", "created_at")?,
                revoked_at: r.try_get("", "revoked_at")?,
            })
        })
        .collect()
}

/// Revokes an integration's credential: commands carrying it are refused from now on.
pub async fn revoke_integration(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    id: Uuid,
) -> Result<(), ApiError> {
    let cmd = Command::RevokeIntegration(RevokeIntegration { integration_id: id });
    command(state, org, request, cmd).await.map(|_| ())
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Settings {
    pub send_invites: bool,
    pub lock_synced_fields: bool,
    /// Keep deactivated people, or erase them N days after deactivation.
    pub deactivated_people: DeactivatedPeople,
    pub deprovision_guard: GuardSettings,
    /// The keys a person's manager value is tried against, in order (docs/admin.md).
    pub manager_match: Vec<MatchKey>,
}

/// The mass-deprovisioning guard's settings (docs/admin.md).
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize)]
pub struct GuardSettings {
    pub enabled: bool,
    pub threshold_percent: i64,
    pub min_count: i64,
    pub window_minutes: i64,
}

pub async fn settings(state: &AppState, org: Uuid) -> Result<Settings, ApiError> {
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT o.send_invites, o.lock_synced_fields, o.erase_deactivated_after_days, \
                    to_jsonb(o.manager_match) AS manager_match, \
                    COALESCE(g.enabled, true) AS enabled, \
                    COALESCE(g.threshold_percent, 10)::bigint AS threshold_percent, \
                    COALESCE(g.min_count, 10)::bigint AS min_count, \
                    COALESCE(g.window_minutes, 60)::bigint AS window_minutes \
             FROM orgs o LEFT JOIN deprovision_guards g ON g.org_id = o.id WHERE o.id = $1",
            [org.into()],
        ))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "organisation not found"))?;
    let keys: Value = row.try_get("", "manager_match")?;
    Ok(Settings {
        send_invites: row.try_get("", "send_invites")?,
        lock_synced_fields: row.try_get("", "lock_synced_fields")?,
        deactivated_people: DeactivatedPeople::from_days(
            row.try_get("", "erase_deactivated_after_days")?,
        ),
        deprovision_guard: GuardSettings {
            enabled: row.try_get("", "enabled")?,
            threshold_percent: row.try_get("", "threshold_percent")?,
            min_count: row.try_get("", "min_count")?,
            window_minutes: row.try_get("", "window_minutes")?,
        },
        manager_match: org_chart::from_names(
            keys.as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_str),
        ),
    })
}

/// Deletes a person and erases their personal data.
pub async fn delete_person(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    id: Uuid,
) -> Result<(), ApiError> {
    let cmd = Command::DeletePerson(DeletePerson {
        user_id: id,
        by_policy: false,
    });
    command(state, org, request, cmd).await.map(|_| ())
}

/// Removes an org and every row it owns (the operator).
pub async fn delete_org(state: &AppState, org: Uuid, request: &RequestId) -> Result<(), ApiError> {
    let cmd = Command::DeleteOrg(DeleteOrg { org_id: org });
    reply_body(execute(state, None, request, cmd).await?).map(|_| ())
}

/// How long an org's activity entries are kept.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Retention {
    /// The operator's override, in days; `null`: the default.
    pub activity_days: Option<u32>,
    /// `ACTIVITY_RETENTION`, in days (rounded down).
    pub default_activity_days: u64,
}

pub async fn retention(state: &AppState, org: Uuid) -> Result<Retention, ApiError> {
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT activity_retention_days FROM orgs WHERE id = $1",
            [org.into()],
        ))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "organisation not found"))?;
    let days: Option<i32> = row.try_get("", "activity_retention_days")?;
    Ok(Retention {
        activity_days: days.and_then(|d| u32::try_from(d).ok()),
        default_activity_days: state.settings.activity_retention.as_secs() / 86_400,
    })
}

pub async fn set_retention(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    activity_days: Option<u32>,
) -> Result<Retention, ApiError> {
    let cmd = Command::SetOrgRetention(SetOrgRetention { activity_days });
    command(state, org, request, cmd).await?;
    retention(state, org).await
}

pub async fn update_settings(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    change: UpdateSettings,
) -> Result<Settings, ApiError> {
    if let Some(Err(e)) = change.deprovision_guard.as_ref().map(|g| g.validate()) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, e));
    }
    if let Some(keys) = &change.manager_match {
        org_chart::validate(keys).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    }
    let body = command(state, org, request, Command::UpdateSettings(change)).await?;
    serde_json::from_value(body)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unreadable reply"))
}

/// The org's mapping (the defaults until it saves one).
pub async fn mappings(state: &AppState, org: Uuid) -> Result<Vec<Mapping>, ApiError> {
    Ok(org_mapping(&state.db, org).await?)
}

/// Replaces the org's mapping; unknown fields or attributes are a `400` naming them.
pub async fn set_mappings(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    rows: Vec<Mapping>,
) -> Result<Vec<Mapping>, ApiError> {
    mapping::validate(&rows).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    command(
        state,
        org,
        request,
        Command::SetMappings(SetMappings { mappings: rows }),
    )
    .await?;
    mappings(state, org).await
}

/// One entry of the provisioning log.
#[derive(Clone, Debug, Serialize)]
pub struct Activity {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `scim` (Okta), `admin`, `operator`, `invitee`, `employee`, `integration`, `retention`
    /// (the org's policy for deactivated people).
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub detail: Value,
    /// The request that caused it (`X-Request-Id`).
    pub correlation_id: String,
}

/// Newest first; `before` (an activity id) pages back.
pub async fn activity(
    state: &AppState,
    org: Uuid,
    limit: u64,
    before: Option<i64>,
) -> Result<Vec<Activity>, ApiError> {
    let limit = i64::try_from(limit.clamp(1, 200)).unwrap_or(50);
    let rows = state
        .db
        .query_all_raw(stmt(
            "SELECT id, created_at, actor, action, resource_type, resource_id, detail, correlation_id FROM audit_log \
             WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            [org.into(), before.unwrap_or(i64::MAX).into(), limit.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Activity {
                id: r.try_get("", "id")?,
                at: r.try_get("", "created_at")?,
                actor: r.try_get("", "actor")?,
                action: r.try_get("", "action")?,
                resource_type: r.try_get("", "resource_type")?,
                resource_id: r.try_get("", "resource_id")?,
                detail: r.try_get("", "detail")?,
                correlation_id: r.try_get("", "correlation_id")?,
            })
        })
        .collect()
}

/// A person in the directory.
#[derive(Clone, Debug, Serialize)]
pub struct Person {
    pub id: Uuid,
    pub user_name: String,
    pub active: bool,
    /// Directory fields (`first_name`, `job_title`, `custom.…`).
    pub fields: Map<String, Value>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Who they report to, or `null`; `active: false` is a vacancy.
    pub manager: Option<Manager>,
    /// The raw manager value while it names no one (yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_ref: Option<String>,
}

/// A person's manager as the directory shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Manager {
    pub id: Uuid,
    pub name: String,
    /// `false`: the manager was deactivated and the position is vacant.
    pub active: bool,
}

/// A person's name in SQL, for the users row aliased `t`: first and last name when
/// known, else the display name, else the user name.
pub fn name_sql(t: &str) -> String {
    format!(
        "COALESCE(NULLIF(btrim(concat_ws(' ', {t}.profile->>'first_name', {t}.profile->>'last_name')), ''), \
         NULLIF(btrim({t}.display_name), ''), {t}.user_name)"
    )
}

/// The columns `person` reads, for `users u LEFT JOIN users m ON m.id = u.manager_id`.
fn person_columns() -> String {
    format!(
        "u.id, u.user_name, u.active, u.profile, u.version, u.updated_at, u.manager_ref, \
         m.id AS manager_id, m.active AS manager_active, {} AS manager_name",
        name_sql("m")
    )
}

pub(crate) fn person(r: &QueryResult) -> Result<Person, ApiError> {
    let fields: Value = r.try_get("", "profile")?;
    let manager_id: Option<Uuid> = r.try_get("", "manager_id")?;
    let manager = match manager_id {
        Some(id) => Some(Manager {
            id,
            name: r.try_get("", "manager_name")?,
            active: r.try_get("", "manager_active")?,
        }),
        None => None,
    };
    let manager_ref: Option<String> = r.try_get("", "manager_ref")?;
    Ok(Person {
        id: r.try_get("", "id")?,
        user_name: r.try_get("", "user_name")?,
        active: r.try_get("", "active")?,
        fields: fields.as_object().cloned().unwrap_or_default(),
        version: r.try_get("", "version")?,
        updated_at: r.try_get("", "updated_at")?,
        manager_ref: manager_ref.filter(|_| manager.is_none()),
        manager,
    })
}

/// The directory: active people (all with `include_inactive`), by name.
pub async fn people(
    state: &AppState,
    org: Uuid,
    include_inactive: bool,
    limit: u64,
    offset: u64,
) -> Result<Vec<Person>, ApiError> {
    let rows = state
        .db
        .query_all_raw(stmt(
            &format!(
                "SELECT {} FROM users u LEFT JOIN users m ON m.id = u.manager_id \
                 WHERE u.org_id = $1 AND (u.active OR $2) \
                 ORDER BY lower(COALESCE(u.profile->>'last_name', '')), lower(COALESCE(u.profile->>'first_name', '')), lower(u.user_name), u.id \
                 LIMIT $3 OFFSET $4",
                person_columns()
            ),
            [
                org.into(),
                include_inactive.into(),
                i64::try_from(limit.clamp(1, 500)).unwrap_or(100).into(),
                i64::try_from(offset).unwrap_or(0).into(),
            ],
        ))
        .await?;
    rows.iter().map(person).collect()
}

/// One person of the org (inactive ones included), or `404`.
pub async fn person_by_id(state: &AppState, org: Uuid, id: Uuid) -> Result<Person, ApiError> {
    let row = state
        .db
        .query_one_raw(stmt(
            &format!(
                "SELECT {} FROM users u LEFT JOIN users m ON m.id = u.manager_id \
                 WHERE u.org_id = $1 AND u.id = $2",
                person_columns()
            ),
            [org.into(), id.into()],
        ))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "person not found"))?;
    person(&row)
}

/// An employee's edit of their fields. With "lock synced fields" on, fields Okta
/// overwrites are refused with `409` naming them.
pub async fn update_person(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    id: Uuid,
    fields: Map<String, Value>,
) -> Result<Person, ApiError> {
    if fields.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "send {\"fields\": {\"<field>\": \"<value>\"}}",
        ));
    }
    let cmd = Command::UpdatePerson(UpdatePerson {
        user_id: id,
        fields,
    });
    command(state, org, request, cmd).await?;
    person_by_id(state, org, id).await
}

/// The field labels people see, for every mapped field.
pub fn field_labels(rows: &[Mapping]) -> Vec<(String, String)> {
    rows.iter()
        .map(|m| (m.field.clone(), mapping::label(&m.field)))
        .collect()
}

/// The org's employee sign-in (OpenID Connect) as the admin sees it: never the secret.
#[derive(Clone, Debug, Serialize)]
pub struct Sso {
    pub enabled: bool,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// Whether a client secret is stored (it is never shown again).
    pub client_secret_set: bool,
    pub claim: SignInClaim,
    pub updated_at: Option<DateTime<Utc>>,
    /// What to paste into Okta's app as the sign-in redirect URI.
    pub redirect_uri: String,
    /// Where employees start signing in.
    pub sign_in_url: String,
    /// Whether the ingress has `ROSTER_SECRETS_KEY`, without which sign-in cannot be set up.
    pub configurable: bool,
}

/// A change of the org's sign-in settings; `client_secret` absent keeps the stored one,
/// `claim` absent keeps the current claim.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoChange {
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub claim: Option<SignInClaim>,
}

/// By hand, so the client secret never reaches a log line.
impl std::fmt::Debug for SsoChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoChange")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("claim", &self.claim)
            .finish()
    }
}

pub async fn sso(state: &AppState, org: Uuid) -> Result<Sso, ApiError> {
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT oidc_issuer, oidc_client_id, oidc_client_secret IS NOT NULL AS has_secret, \
             oidc_claim, oidc_updated_at FROM orgs WHERE id = $1",
            [org.into()],
        ))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "organisation not found"))?;
    let issuer: Option<String> = row.try_get("", "oidc_issuer")?;
    let claim: String = row.try_get("", "oidc_claim")?;
    Ok(Sso {
        enabled: issuer.is_some(),
        issuer,
        client_id: row.try_get("", "oidc_client_id")?,
        client_secret_set: row.try_get("", "has_secret")?,
        claim: if claim == SignInClaim::PreferredUsername.as_str() {
            SignInClaim::PreferredUsername
        } else {
            SignInClaim::Email
        },
        updated_at: row.try_get("", "oidc_updated_at")?,
        redirect_uri: crate::sso::redirect_uri(&state.settings, org),
        sign_in_url: crate::sso::sign_in_url(&state.settings, org),
        configurable: state.settings.secrets_key.is_some(),
    })
}

/// Sets the org's sign-in: the secret is sealed here (`common::sealed`, bound to the org)
/// and only its sealed form travels and is stored. Every change ends every employee
/// session of the org.
pub async fn set_sso(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    change: SsoChange,
) -> Result<Sso, ApiError> {
    let Some(key) = &state.settings.secrets_key else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "employee sign-in cannot be set up: the operator has not set ROSTER_SECRETS_KEY",
        ));
    };
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, e);
    let issuer = change.issuer.trim().trim_end_matches('/').to_owned();
    common::sso::validate_issuer(&issuer).map_err(bad)?;
    let client_id = change.client_id.trim().to_owned();
    common::sso::validate_client_value("client_id", &client_id).map_err(bad)?;
    let secret = change.client_secret.as_deref().map(str::trim);
    if let Some(s) = secret {
        common::sso::validate_client_value("client_secret", s).map_err(bad)?;
    }
    let claim = match change.claim {
        Some(c) => c,
        None => sso(state, org).await?.claim,
    };
    let cmd = Command::SetSso(SetSso {
        oidc: Some(OidcClient {
            issuer,
            client_id,
            client_secret_sealed: secret.map(|s| key.seal(&crate::sso::seal_context(org), s)),
            claim,
        }),
    });
    command(state, org, request, cmd).await?;
    sso(state, org).await
}

/// Turns employee sign-in off: the settings are forgotten and every session ends.
pub async fn disable_sso(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
) -> Result<Sso, ApiError> {
    command(state, org, request, Command::SetSso(SetSso { oidc: None })).await?;
    sso(state, org).await
}

/// One person whose deactivation or deletion the guard holds (or refused after a rejection,
/// or was approved and awaits the identity provider's retry).
#[derive(Clone, Debug, Serialize)]
pub struct HeldChange {
    pub user_id: Uuid,
    pub user_name: Option<String>,
    /// `deactivate` or `delete`.
    pub action: String,
    pub held_at: DateTime<Utc>,
    pub last_attempt_at: DateTime<Utc>,
    pub attempts: i32,
    /// `held`, `approved` (passes on the next retry) or `rejected`.
    pub state: String,
}

/// The guard's state: its settings, whether it is tripped, and what it holds.
#[derive(Clone, Debug, Serialize)]
pub struct GuardStatus {
    #[serde(flatten)]
    pub settings: GuardSettings,
    /// `armed`, `tripped` (changes are held) or `rejected` (refused until `refused_until`).
    pub state: String,
    pub tripped_at: Option<DateTime<Utc>>,
    pub refused_until: Option<DateTime<Utc>>,
    /// How many people's deactivation or deletion is held now.
    pub held: i64,
    pub changes: Vec<HeldChange>,
}

pub async fn guard(state: &AppState, org: Uuid) -> Result<GuardStatus, ApiError> {
    let settings = settings(state, org).await?.deprovision_guard;
    let row = state
        .db
        .query_one_raw(stmt(
            "SELECT tripped_at, CASE WHEN rejected_until > now() THEN rejected_until END AS refused_until \
             FROM deprovision_guards WHERE org_id = $1",
            [org.into()],
        ))
        .await?;
    let (tripped_at, refused_until) = match &row {
        Some(r) => (
            r.try_get("", "tripped_at")?,
            r.try_get("", "refused_until")?,
        ),
        None => (None, None),
    };
    let rows = state
        .db
        .query_all_raw(stmt(
            "SELECT h.user_id, u.user_name, h.action, h.held_at, h.last_attempt_at, h.attempts, \
                    COALESCE(h.decision, 'held') AS state \
             FROM deprovision_holds h LEFT JOIN users u ON u.org_id = h.org_id AND u.id = h.user_id \
             WHERE h.org_id = $1 ORDER BY h.held_at DESC LIMIT 500",
            [org.into()],
        ))
        .await?;
    let changes = rows
        .iter()
        .map(|r| {
            Ok(HeldChange {
                user_id: r.try_get("", "user_id")?,
                user_name: r.try_get("", "user_name")?,
                action: r.try_get("", "action")?,
                held_at: r.try_get("", "held_at")?,
                last_attempt_at: r.try_get("", "last_attempt_at")?,
                attempts: r.try_get("", "attempts")?,
                state: r.try_get("", "state")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let held = changes.iter().filter(|c| c.state == "held").count() as i64;
    let state_name = if tripped_at.is_some() {
        "tripped"
    } else if refused_until.is_some() {
        "rejected"
    } else {
        "armed"
    };
    Ok(GuardStatus {
        settings,
        state: state_name.to_owned(),
        tripped_at,
        refused_until,
        held,
        changes,
    })
}

/// Approves or rejects what the guard holds; `409` when it holds nothing.
pub async fn decide_guard(
    state: &AppState,
    org: Uuid,
    request: &RequestId,
    decision: GuardDecision,
) -> Result<GuardStatus, ApiError> {
    command(
        state,
        org,
        request,
        Command::DecideGuard(DecideGuard { decision }),
    )
    .await?;
    guard(state, org).await
}

/// One provisioning-log entry as the admin API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub status: i16,
    pub detail: Option<String>,
    pub duration_ms: i32,
    pub correlation_id: String,
}

/// What to list: `failed` (status 400 and up) or `succeeded` only, one person's, before
/// the cursor (an entry id).
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub failed: Option<bool>,
    pub person: Option<Uuid>,
    pub cursor: Option<Uuid>,
    pub limit: u64,
}

/// Newest first; the page and the cursor of the next one (`None` at the end).
pub async fn provisioning_log(
    state: &AppState,
    org: Uuid,
    q: &LogQuery,
) -> Result<(Vec<LogEntry>, Option<Uuid>), ApiError> {
    let limit = i64::try_from(q.limit.clamp(1, 200)).unwrap_or(50);
    let rows = state
        .db
        .query_all_raw(stmt(
            "SELECT id, at, method, path, resource_type, resource_id, status, detail, duration_ms, \
                    correlation_id FROM provisioning_log \
             WHERE org_id = $1 AND ($2::uuid IS NULL OR id < $2) \
               AND ($3::uuid IS NULL OR resource_id = $3) \
               AND ($4::boolean IS NULL OR (status >= 400) = $4) \
             ORDER BY id DESC LIMIT $5",
            [
                org.into(),
                q.cursor.into(),
                q.person.into(),
                q.failed.into(),
                (limit + 1).into(),
            ],
        ))
        .await?;
    let mut entries = rows
        .iter()
        .map(|r| {
            Ok(LogEntry {
                id: r.try_get("", "id")?,
                at: r.try_get("", "at")?,
                method: r.try_get("", "method")?,
                path: r.try_get("", "path")?,
                resource_type: r.try_get("", "resource_type")?,
                resource_id: r.try_get("", "resource_id")?,
                status: r.try_get("", "status")?,
                detail: r.try_get("", "detail")?,
                duration_ms: r.try_get("", "duration_ms")?,
                correlation_id: r.try_get("", "correlation_id")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let more = entries.len() as i64 > limit;
    entries.truncate(usize::try_from(limit).unwrap_or(50));
    let next = more.then(|| entries.last().map(|e| e.id)).flatten();
    Ok((entries, next))
}
