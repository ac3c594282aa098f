//! Who may have a command applied (docs/messages.md, "Who may publish commands"), decided
//! for every delivery before anything is applied:
//! - a command carrying an integration `credential` is another service's: the credential
//!   must be a live one of the envelope's org, and the type one of `PUBLIC_COMMANDS`;
//! - a command without one is Roster's own only if its AMQP `user_id` is the worker's broker
//!   user. RabbitMQ refuses a `user_id` other than the publishing connection's user, so
//!   only services sharing Roster's broker user can publish one.
//!
//! Every refusal names its reason in the same words whatever the cause behind it: an
//! unknown credential, a revoked one and another org's are all "integration credential
//! refused", so a refusal does not tell whether an org exists.

use common::{
    messages::{Command, Envelope, PUBLIC_COMMANDS, Reply},
    secret::TokenHash,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr,
    sea_query::{Expr, ExprTrait, Query, SelectStatement},
};
use uuid::Uuid;

/// The reason of every credential refusal.
pub const CREDENTIAL_REFUSED: &str = "integration credential refused";
/// The reason for a command with neither a credential nor Roster's broker user.
pub const UNAUTHENTICATED: &str =
    "unauthenticated: commands from other services need an integration credential";

/// Who published an authorised command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// One of Roster's own services (its broker user).
    Roster,
    /// Another service, with a live integration credential of the command's org.
    Integration,
}

/// Why a command is not applied: the reply status, the `reason` metrics label, and the
/// text that goes into the dead-letter headers and the error reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub class: &'static str,
    pub reason: String,
}

impl Refusal {
    pub fn credential() -> Self {
        Self {
            status: 401,
            class: "credential",
            reason: CREDENTIAL_REFUSED.to_owned(),
        }
    }

    pub fn unauthenticated() -> Self {
        Self {
            status: 401,
            class: "unauthenticated",
            reason: UNAUTHENTICATED.to_owned(),
        }
    }

    /// An envelope or payload that cannot be decoded (or names no known type).
    pub fn undecodable(kind: Option<&str>, error: impl std::fmt::Display) -> Self {
        let unknown = kind.is_some_and(|k| !Command::is_known(k));
        Self {
            status: 400,
            class: if unknown { "unknown_type" } else { "invalid" },
            reason: error.to_string(),
        }
    }

    /// The error reply a publisher waiting on `reply_to` gets.
    pub fn reply(&self) -> Reply {
        Reply::error(self.status, None, self.reason.clone())
    }
}

/// Decides whether the command may be applied. `user_id` is the delivery's AMQP
/// `user_id` property, `own_user` the worker's broker user. Only database errors escape.
pub async fn authorize(
    db: &DatabaseConnection,
    env: &Envelope,
    user_id: Option<&str>,
    own_user: &str,
) -> Result<Result<Caller, Refusal>, DbErr> {
    let Some(credential) = env.credential.as_deref() else {
        return Ok(if user_id == Some(own_user) {
            Ok(Caller::Roster)
        } else {
            Err(Refusal::unauthenticated())
        });
    };
    let Some(org_id) = env.org_id else {
        return Ok(Err(Refusal::credential()));
    };
    if !credential_is_live(db, org_id, &TokenHash::of(credential)).await? {
        return Ok(Err(Refusal::credential()));
    }
    Ok(open_to_integrations(&env.kind).map(|()| Caller::Integration))
}

/// Whether an integration may publish a command of type `kind`.
pub fn open_to_integrations(kind: &str) -> Result<(), Refusal> {
    if PUBLIC_COMMANDS.contains(&kind) {
        return Ok(());
    }
    if Command::is_known(kind) {
        return Err(Refusal {
            status: 403,
            class: "not_public",
            reason: format!("{kind} is not open to integrations"),
        });
    }
    Err(Refusal {
        status: 400,
        class: "unknown_type",
        reason: format!("unknown command type {kind:?}"),
    })
}

/// Whether `hash` is an unrevoked integration credential of `org_id`. Looked up by digest
/// and org together, so another org's credential is simply not found.
async fn credential_is_live(
    db: &DatabaseConnection,
    org_id: Uuid,
    hash: &TokenHash,
) -> Result<bool, DbErr> {
    let row = db.query_one(&live_credential(org_id, hash)).await?;
    Ok(row.is_some())
}

/// A row (`one`) if `hash` is an unrevoked credential of `org_id`.
fn live_credential(org_id: Uuid, hash: &TokenHash) -> SelectStatement {
    Query::select()
        .expr_as(Expr::cust("1"), "one")
        .from("integration_credentials")
        .and_where(Expr::col("token_hash").eq(hash.as_str()))
        .and_where(Expr::col("org_id").eq(org_id))
        .and_where(Expr::col("revoked_at").is_null())
        .to_owned()
}

/// The dead-letter reason of an integration's command that was applied and failed (a 4xx
/// reply) when nobody waits for the reply: the failure must be visible somewhere.
pub fn failed_outcome(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Error {
            status: status @ 400..=499,
            scim_type,
            detail,
        } => Some(match scim_type {
            Some(t) => format!("command failed: {status} {t}: {detail}"),
            None => format!("command failed: {status}: {detail}"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_types_are_open_to_integrations() {
        assert!(open_to_integrations("user.deactivate").is_ok());
        assert!(open_to_integrations("group.delete").is_ok());
        let admin = open_to_integrations("provisioning.set").expect_err("admin command");
        assert_eq!(admin.reason, "provisioning.set is not open to integrations");
        assert_eq!((admin.status, admin.class), (403, "not_public"));
        let unknown = open_to_integrations("user.explode").expect_err("unknown");
        assert!(unknown.reason.starts_with("unknown command type"));
        assert_eq!((unknown.status, unknown.class), (400, "unknown_type"));
    }

    #[test]
    fn only_client_errors_are_failed_outcomes() {
        let conflict = Reply::error(409, Some("uniqueness"), "taken");
        assert_eq!(
            failed_outcome(&conflict).as_deref(),
            Some("command failed: 409 uniqueness: taken")
        );
        assert_eq!(
            failed_outcome(&Reply::error(404, None, "User x not found")).as_deref(),
            Some("command failed: 404: User x not found")
        );
        assert_eq!(failed_outcome(&Reply::ok(201, serde_json::json!({}))), None);
        assert_eq!(failed_outcome(&Reply::error(500, None, "x")), None);
    }

    #[test]
    fn a_credential_is_looked_up_by_digest_and_org_together() {
        use sea_orm::sea_query::PostgresQueryBuilder;
        let (sql, values) =
            live_credential(Uuid::nil(), &TokenHash("digest".into())).build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT 1 AS "one" FROM "integration_credentials" WHERE "token_hash" = $1 AND "org_id" = $2 AND "revoked_at" IS NULL"#
        );
        assert_eq!(values.0.len(), 2);
    }

    #[test]
    fn undecodable_commands_are_classed_by_their_type() {
        assert_eq!(
            Refusal::undecodable(Some("user.create"), "bad").class,
            "invalid"
        );
        assert_eq!(
            Refusal::undecodable(Some("nope.nope"), "bad").class,
            "unknown_type"
        );
        assert_eq!(Refusal::undecodable(None, "bad").class, "invalid");
    }
}
