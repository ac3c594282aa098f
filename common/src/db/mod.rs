//! PostgreSQL: connecting (retrying), migrations, entities, filter-to-SQL translation, and
//! the classification of database errors into transient and permanent.

pub mod entities;
pub mod migration;
pub mod query;
pub mod reads;
pub mod sql;

use backon::Retryable;
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, SqlErr, Statement,
    Value,
};
use std::time::Duration;

/// A PostgreSQL statement with bound `$n` parameters.
pub fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A `uuid[]` parameter (for `= ANY($n)`).
pub fn uuid_array(ids: &[uuid::Uuid]) -> Value {
    Value::Array(
        sea_orm::sea_query::ArrayType::Uuid,
        Some(Box::new(
            ids.iter().map(|i| Value::Uuid(Some(*i))).collect(),
        )),
    )
}

/// Connects a pool, retrying until PostgreSQL answers.
pub async fn connect(url: &str, max_connections: u32) -> DatabaseConnection {
    let attempt = || async {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        Database::connect(opts).await
    };
    let retry = attempt
        .retry(crate::retry::until_reachable())
        .notify(|err: &DbErr, after: Duration| {
            tracing::warn!(error = %redact(err), retry_in_ms = after.as_millis() as u64, "cannot reach PostgreSQL");
        });
    match retry.await {
        Ok(db) => db,
        Err(e) => panic!("PostgreSQL connection retries ended: {}", redact(&e)),
    }
}

/// A database error as text, without anything that could be a connection secret.
pub fn redact(err: &DbErr) -> String {
    // sqlx never prints the URL, but be certain no `scheme://user:pass@` survives.
    crate::secret::redact_urls(&err.to_string())
}

/// Whether retrying the same operation later may succeed: lost connections, pool
/// exhaustion, serialization failures, deadlocks, and a database that is starting up or
/// shutting down.
pub fn is_transient(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            use sea_orm::sqlx::Error as E;
            match e.as_ref() {
                E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => {
                    true
                }
                E::Database(db) => db.code().is_some_and(|c| {
                    // 40001 serialization_failure, 40P01 deadlock_detected, class 08
                    // connection exceptions, 57P0x admin/crash shutdown, 53300 too many connections.
                    c == "40001"
                        || c == "40P01"
                        || c.starts_with("08")
                        || c.starts_with("57P")
                        || c == "53300"
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether the error is a unique constraint violation.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_credentials() {
        let e = DbErr::Custom("failed for postgres://u:secret@host/db".into());
        assert!(!redact(&e).contains("secret"));
        // Every URL, not only the first.
        let e = DbErr::Custom("postgres://a:one@h/db, postgres://b:two@k/db".into());
        let text = redact(&e);
        assert!(!text.contains("one") && !text.contains("two"), "{text}");
    }

    #[test]
    fn custom_errors_are_permanent() {
        assert!(!is_transient(&DbErr::Custom("x".into())));
        assert!(!is_transient(&DbErr::RecordNotFound("x".into())));
    }
}
