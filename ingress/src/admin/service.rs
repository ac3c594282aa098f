//! The admin operations behind both the JSON API (`admin::api`) and the integration page
//! (`admin::page`): reads from PostgreSQL, writes as commands. Secrets (SCIM tokens,
//! integration credentials) are generated here, returned once, and sent to the worker only
//! as digests.

use crate::{commands::execute, error::ApiError, request_id::RequestId, state::AppState, store};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::{
    db::reads::org_mapping,
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
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use crate::store::admin::{Activity, HeldChange, LogEntry};

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

fn org_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "organisation not found")
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
    let row = store::admin::provisioning(&state.db, org)
        .await?
        .ok_or_else(org_not_found)?;
    Ok(ProvisioningStatus {
        enabled: row.provisioning_enabled,
        token_hint: row.hint.map(|h| format!("…{h}")),
        token_created_at: row.created_at,
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
    let rows = store::admin::integrations(&state.db, org).await?;
    Ok(rows
        .into_iter()
        .map(|r| Integration {
            id: r.id,
            name: r.name,
            hint: format!("…{}", r.hint),
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
        .collect())
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
    let row = store::admin::settings(&state.db, org)
        .await?
        .ok_or_else(org_not_found)?;
    Ok(Settings {
        send_invites: row.send_invites,
        lock_synced_fields: row.lock_synced_fields,
        deactivated_people: DeactivatedPeople::from_days(row.erase_deactivated_after_days),
        deprovision_guard: GuardSettings {
            enabled: row.enabled,
            threshold_percent: row.threshold_percent,
            min_count: row.min_count,
            window_minutes: row.window_minutes,
        },
        manager_match: org_chart::from_names(
            row.manager_match
                .as_array()
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
    let days = store::admin::retention_days(&state.db, org)
        .await?
        .ok_or_else(org_not_found)?;
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

/// Newest first; `before` (an activity id) pages back.
pub async fn activity(
    state: &AppState,
    org: Uuid,
    limit: u64,
    before: Option<i64>,
) -> Result<Vec<Activity>, ApiError> {
    let limit = limit.clamp(1, 200);
    Ok(store::admin::activity(&state.db, org, before.unwrap_or(i64::MAX), limit).await?)
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

impl From<store::directory::PersonRow> for Person {
    fn from(r: store::directory::PersonRow) -> Self {
        let manager = match (r.manager_id, r.manager_name, r.manager_active) {
            (Some(id), Some(name), Some(active)) => Some(Manager { id, name, active }),
            _ => None,
        };
        Self {
            id: r.id,
            user_name: r.user_name,
            active: r.active,
            fields: r.profile.as_object().cloned().unwrap_or_default(),
            version: r.version,
            updated_at: r.updated_at,
            manager_ref: r.manager_ref.filter(|_| manager.is_none()),
            manager,
        }
    }
}

/// The directory: active people (all with `include_inactive`), by name.
pub async fn people(
    state: &AppState,
    org: Uuid,
    include_inactive: bool,
    limit: u64,
    offset: u64,
) -> Result<Vec<Person>, ApiError> {
    let rows = store::directory::people(
        &state.db,
        org,
        include_inactive,
        limit.clamp(1, 500),
        offset,
    )
    .await?;
    Ok(rows.into_iter().map(Person::from).collect())
}

/// One person of the org (inactive ones included), or `404`.
pub async fn person_by_id(state: &AppState, org: Uuid, id: Uuid) -> Result<Person, ApiError> {
    store::directory::person(&state.db, org, id)
        .await?
        .map(Person::from)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "person not found"))
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
    let row = store::admin::sso(&state.db, org)
        .await?
        .ok_or_else(org_not_found)?;
    Ok(Sso {
        enabled: row.oidc_issuer.is_some(),
        issuer: row.oidc_issuer,
        client_id: row.oidc_client_id,
        client_secret_set: row.has_secret,
        claim: if row.oidc_claim == SignInClaim::PreferredUsername.as_str() {
            SignInClaim::PreferredUsername
        } else {
            SignInClaim::Email
        },
        updated_at: row.oidc_updated_at,
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
    let (tripped_at, refused_until) = store::admin::guard_state(&state.db, org)
        .await?
        .map_or((None, None), |g| (g.tripped_at, g.refused_until));
    let changes = store::admin::held_changes(&state.db, org).await?;
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
    let limit = q.limit.clamp(1, 200);
    let mut entries =
        store::admin::provisioning_log(&state.db, org, q.failed, q.person, q.cursor, limit + 1)
            .await?;
    let more = entries.len() as u64 > limit;
    entries.truncate(usize::try_from(limit).unwrap_or(50));
    let next = more.then(|| entries.last().map(|e| e.id)).flatten();
    Ok((entries, next))
}
