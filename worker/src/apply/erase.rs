//! Deleting a person so that nothing personal stays (docs/data-lifecycle.md): the rows the
//! person owns (their user row, and by cascade their invite and group memberships) go in
//! the delete's own transaction, with an `erasures` row naming them; the background pass
//! (`crate::gc`) scrubs the rest — their published events, stored replies and activity
//! details — once their last events are out.

use super::Tx;
use super::users;
use common::{
    db::stmt,
    messages::{DeletePerson, DeleteUser, Envelope, Reply},
};
use sea_orm::{ConnectionTrait, DbErr, Value};
use uuid::Uuid;

/// The shortest identifying string worth searching other rows for: shorter ones (an
/// initial, a two-letter name) would match other people's rows.
pub const MIN_NEEDLE: usize = 4;

/// `user.delete` (SCIM `DELETE /Users/{id}`, an integration's delete): the delete as
/// `users::delete` does it, plus the erasure of what the person leaves elsewhere.
pub(super) async fn delete_user(
    tx: &Tx<'_>,
    ctx: &super::ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &DeleteUser,
) -> Result<Reply, DbErr> {
    let needles = lock_needles(tx, org_id, cmd.user_id).await?;
    let reply = users::delete(tx, ctx, env, org_id, cmd).await?;
    if let (Reply::Ok { .. }, Some(needles)) = (&reply, needles) {
        record(tx, org_id, cmd.user_id, needles).await?;
    }
    Ok(reply)
}

/// `person.delete`: the directory API's delete, or the org's policy for deactivated people
/// (only if the person is still deactivated and past the org's window: a reactivation
/// since the pass looked wins).
pub(super) async fn delete_person(
    tx: &Tx<'_>,
    ctx: &super::ApplyContext,
    env: &Envelope,
    org_id: Uuid,
    cmd: &DeletePerson,
) -> Result<Reply, DbErr> {
    if cmd.by_policy {
        let due = tx
            .query_one_raw(stmt(
                "SELECT 1 AS one FROM users u JOIN orgs o ON o.id = u.org_id \
                 WHERE u.org_id = $1 AND u.id = $2 AND NOT u.active \
                 AND o.erase_deactivated_after_days IS NOT NULL \
                 AND u.deactivated_at <= now() - make_interval(days => o.erase_deactivated_after_days) \
                 FOR UPDATE OF u",
                [org_id.into(), cmd.user_id.into()],
            ))
            .await?;
        if due.is_none() {
            return Ok(Reply::error(
                409,
                None,
                "the person is no longer due for erasure (reactivated, or the policy changed)",
            ));
        }
    }
    let delete = DeleteUser {
        user_id: cmd.user_id,
        if_match: None,
    };
    delete_user(tx, ctx, env, org_id, &delete).await
}

/// The person's identifying strings, with their row locked; `None` if there is no such
/// person in the org.
async fn lock_needles(
    tx: &Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Vec<String>>, DbErr> {
    let row = tx
        .query_one_raw(stmt(
            "SELECT user_name, email, display_name, external_id, \
                 ARRAY(SELECT e->>'value' FROM jsonb_array_elements(\
                     CASE WHEN jsonb_typeof(resource->'emails') = 'array' THEN resource->'emails' ELSE '[]' END) e \
                   WHERE jsonb_typeof(e->'value') = 'string') AS emails \
             FROM users WHERE org_id = $1 AND id = $2 FOR UPDATE",
            [org_id.into(), user_id.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut found: Vec<Option<String>> = Vec::new();
    for column in ["user_name", "email", "display_name", "external_id"] {
        found.push(row.try_get("", column)?);
    }
    let emails: Vec<String> = row.try_get("", "emails")?;
    Ok(Some(needles(found.into_iter().flatten().chain(emails))))
}

/// Distinct, trimmed, long enough to identify someone.
pub fn needles(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let v = v.trim().to_owned();
        if v.chars().count() >= MIN_NEEDLE && !out.iter().any(|o| o.eq_ignore_ascii_case(&v)) {
            out.push(v);
        }
    }
    out
}

/// Records the erasure for the background pass.
async fn record(
    tx: &Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
    needles: Vec<String>,
) -> Result<(), DbErr> {
    let array = Value::Array(
        sea_orm::sea_query::ArrayType::String,
        Some(Box::new(
            needles
                .into_iter()
                .map(|n| Value::String(Some(n)))
                .collect(),
        )),
    );
    tx.execute_raw(stmt(
        "INSERT INTO erasures (user_id, org_id, needles) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO NOTHING",
        [user_id.into(), org_id.into(), array],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needles_are_distinct_and_long_enough() {
        let got = needles(
            [
                "jo@x.io",
                "JO@X.IO",
                "Al",
                "  Alexandra Marsh ",
                "00u123",
                "",
            ]
            .map(str::to_owned),
        );
        assert_eq!(got, ["jo@x.io", "Alexandra Marsh", "00u123"]);
    }
}
