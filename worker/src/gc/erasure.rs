//! Erasure: people deactivated longer than their org's `erase_deactivated_after_days` are
//! deleted as the directory API's delete would, and what deleted people left in other
//! tables (published events, stored replies, activity and provisioning-log details) is
//! scrubbed once none of their events waits to be published.

use super::{
    Gc, Pruned,
    expired::{ago, days},
};
use crate::apply::apply;
use common::{
    db::reads::users_with_their_org,
    messages::{Command, DeletePerson, Reply},
};
use sea_orm::{
    ConnectionTrait, DbErr, TransactionTrait,
    sea_query::{
        Asterisk, Expr, ExprTrait, Func, LockBehavior, LockType, Order, Query, SelectStatement,
        UpdateStatement, extension::postgres::PgFunc,
    },
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Deleted people scrubbed per transaction.
const ERASURE_BATCH: u64 = 100;
/// Deactivated people erased per pass.
const POLICY_BATCH: u64 = 100;

/// The text a scrubbed error reply carries instead of its detail.
const ERASED_DETAIL: &str = "the details of this result were erased with the person they concerned";

/// Deactivated people past their org's window: `org_id`, `id` (`users u`, `orgs o`).
pub(super) fn due_for_erasure() -> SelectStatement {
    users_with_their_org()
        .columns([("u", "org_id"), ("u", "id")])
        .and_where(Expr::col(("u", "active")).not())
        .and_where(Expr::col(("o", "erase_deactivated_after_days")).is_not_null())
        .and_where(
            Expr::col(("u", "deactivated_at"))
                .lte(ago(days(Expr::col(("o", "erase_deactivated_after_days"))))),
        )
        .to_owned()
}

/// `SELECT count(*) FROM erasures`: deleted people still to be scrubbed.
pub(super) fn pending() -> SelectStatement {
    Query::select()
        .expr_as(Func::count(Expr::col(Asterisk)), "n")
        .from("erasures")
        .to_owned()
}

impl Gc {
    /// People deactivated longer than their org's `erase_deactivated_after_days`, deleted
    /// as the directory API's delete would (`person.delete`, actor `retention`): their
    /// event goes out, their activity shows it, and their data is erased.
    pub(super) async fn erase_deactivated(
        &self,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<u64, DbErr> {
        let due = due_for_erasure()
            .order_by(("u", "deactivated_at"), Order::Asc)
            .limit(POLICY_BATCH)
            .to_owned();
        let mut erased = 0;
        for row in self.db.query_all(&due).await? {
            if stop() {
                break;
            }
            let org_id: Uuid = row.try_get("", "org_id")?;
            let user_id: Uuid = row.try_get("", "id")?;
            let cmd = Command::DeletePerson(DeletePerson {
                user_id,
                by_policy: true,
            });
            let correlation = format!("retention-{}", Uuid::now_v7());
            let env = cmd.clone().into_envelope(Some(org_id), &correlation);
            if let Reply::Ok { .. } = apply(&self.db, &self.ctx, &env, &cmd).await?.reply {
                tracing::info!(%org_id, %user_id, "deactivated person erased by the org's policy");
                erased += 1;
            }
        }
        Ok(erased)
    }

    /// Scrubs what deleted people left in other tables, once none of their events waits
    /// to be published (integrators learn of the delete first): their published events go,
    /// stored replies about them keep only their status and id, and their activity entries
    /// keep only what happened (`user.deleted`, the person's id), not their name or email.
    pub(super) async fn scrub_erasures(
        &self,
        pruned: &mut Pruned,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), DbErr> {
        loop {
            if stop() {
                return Ok(());
            }
            let tx = self.db.begin().await?;
            let rows = tx.query_all(&scrubbable()).await?;
            let n = rows.len();
            // One scrub per org for the whole batch: the stored replies of an org are
            // read once however many of its people were deleted.
            let mut by_org: BTreeMap<Uuid, (Vec<String>, Vec<String>)> = BTreeMap::new();
            for row in rows {
                let user_id: Uuid = row.try_get("", "user_id")?;
                let org_id: Uuid = row.try_get("", "org_id")?;
                let needles: Vec<String> = row.try_get("", "needles")?;
                let entry = by_org.entry(org_id).or_default();
                entry.0.push(user_id.to_string());
                entry.1.extend(needles);
            }
            for (org_id, (ids, needles)) in by_org {
                let scrub = Scrub {
                    ids: &ids,
                    org_id,
                    needles: &needles,
                };
                for (table, done) in [
                    ("outbox", tx.execute(&scrub.outbox()).await?),
                    ("processed_commands", tx.execute(&scrub.replies()).await?),
                    ("audit_log", tx.execute(&scrub.activity()).await?),
                    (
                        "provisioning_log",
                        tx.execute(&scrub.provisioning_log()).await?,
                    ),
                    ("erasures", tx.execute(&scrub.done()).await?),
                ] {
                    self.count(pruned, table, done.rows_affected());
                }
            }
            tx.commit().await?;
            if n < ERASURE_BATCH as usize {
                break;
            }
        }
        let pending = self
            .db
            .query_one(&pending())
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        metrics::gauge!(common::metrics::ERASURES_PENDING, "prefix" => self.prefix.clone())
            .set(pending as f64);
        Ok(())
    }
}

/// The next erasures none of whose events waits to be published, locked (others skip
/// them): `user_id`, `org_id`, `needles`.
fn scrubbable() -> SelectStatement {
    let unpublished = Query::select()
        .expr(Expr::cust("1"))
        .from_as("outbox", "o")
        .and_where(
            Expr::cust("(o.envelope #>> '{payload,user_id}')")
                .eq(Expr::col(("e", "user_id")).cast_as("text")),
        )
        .and_where(Expr::col(("o", "published_at")).is_null())
        .to_owned();
    Query::select()
        .columns([("e", "user_id"), ("e", "org_id"), ("e", "needles")])
        .from_as("erasures", "e")
        .and_where(Expr::not_exists(unpublished))
        .order_by(("e", "requested_at"), Order::Asc)
        .limit(ERASURE_BATCH)
        .lock_with_tables_behavior(LockType::Update, ["e"], LockBehavior::SkipLocked)
        .to_owned()
}

/// The scrub of one org's deleted people: their ids, and their identifying strings
/// (userName, emails, names). Stored replies are matched by a person's id, or — for errors
/// (a `409` naming a userName) and group replies (members' names) — by those strings; a
/// reply already scrubbed is left alone.
struct Scrub<'a> {
    ids: &'a [String],
    org_id: Uuid,
    needles: &'a [String],
}

impl Scrub<'_> {
    fn outbox(&self) -> sea_orm::sea_query::DeleteStatement {
        Query::delete()
            .from_table("outbox")
            .and_where(Expr::cust("(envelope #>> '{payload,user_id}')").eq(self.any_id()))
            .and_where(Expr::col("org_id").eq(self.org_id))
            .to_owned()
    }

    /// An ok reply keeps its status and, if it had one, the resource's id; an error keeps
    /// its status and `scimType`, with `ERASED_DETAIL` for its detail.
    fn replies(&self) -> UpdateStatement {
        let scrubbed = format!(
            "CASE WHEN reply->>'outcome' = 'ok' \
                 THEN jsonb_build_object('outcome', 'ok', 'status', reply->'status', 'body', \
                     CASE WHEN reply #>> '{{body,id}}' IS NOT NULL \
                          THEN jsonb_build_object('id', reply #> '{{body,id}}', 'erased', true) \
                          ELSE 'null'::jsonb END) \
                 ELSE jsonb_strip_nulls(jsonb_build_object('outcome', 'error', 'status', reply->'status', \
                     'scim_type', reply->'scim_type', 'detail', '{ERASED_DETAIL}')) \
             END"
        );
        let names_them = Expr::cust("(reply->>'outcome' = 'error' OR command_type LIKE 'group.%')")
            .and(Expr::cust_with_exprs(
                "EXISTS (SELECT 1 FROM jsonb_path_query(reply, 'strict $.** ? (@.type() == \"string\")') v, \
                     unnest($1::text[]) n WHERE strpos(lower(v #>> '{}'), lower(n)) > 0)",
                [self.needles()],
            ));
        Query::update()
            .table("processed_commands")
            .value("reply", Expr::cust(scrubbed))
            .and_where(Expr::col("org_id").eq(self.org_id))
            .and_where(Expr::col("reply").is_not_null())
            .and_where(Expr::cust(
                "NOT COALESCE(reply->'body' = jsonb_build_object('id', reply #> '{body,id}', 'erased', true), false)",
            ))
            .and_where(Expr::cust(format!(
                "reply->>'detail' IS DISTINCT FROM '{ERASED_DETAIL}'"
            )))
            .and_where(
                Expr::cust("reply #>> '{body,id}'")
                    .eq(self.any_id())
                    .or(names_them),
            )
            .to_owned()
    }

    fn activity(&self) -> UpdateStatement {
        Query::update()
            .table("audit_log")
            .value("detail", Expr::cust("'{}'::jsonb"))
            .and_where(Expr::col("org_id").eq(self.org_id))
            .and_where(Expr::col("resource_type").eq("User"))
            .and_where(Expr::col("resource_id").eq(self.any_id()))
            .and_where(Expr::col("detail").ne(Expr::cust("'{}'::jsonb")))
            .to_owned()
    }

    /// The provisioning log keeps the request (method, path, status, time) but not an
    /// error's detail that concerned the person (a `409` names the userName).
    fn provisioning_log(&self) -> UpdateStatement {
        let mentions_them = Expr::cust_with_exprs(
            "EXISTS (SELECT 1 FROM unnest($1::text[]) n WHERE strpos(lower(detail), lower(n)) > 0)",
            [self.needles()],
        );
        Query::update()
            .table("provisioning_log")
            .value("detail", Expr::val(None::<String>))
            .and_where(Expr::col("org_id").eq(self.org_id))
            .and_where(Expr::col("detail").is_not_null())
            .and_where(
                Expr::col("resource_id")
                    .cast_as("text")
                    .eq(self.any_id())
                    .or(mentions_them),
            )
            .to_owned()
    }

    fn done(&self) -> sea_orm::sea_query::DeleteStatement {
        Query::delete()
            .from_table("erasures")
            .and_where(Expr::col("user_id").cast_as("text").eq(self.any_id()))
            .and_where(Expr::col("org_id").eq(self.org_id))
            .to_owned()
    }

    /// `ANY(<their ids, as text>)`.
    fn any_id(&self) -> Expr {
        PgFunc::any(Expr::val(text_array(self.ids))).into()
    }

    fn needles(&self) -> Expr {
        Expr::val(text_array(self.needles))
    }
}

fn text_array(values: &[String]) -> sea_orm::Value {
    sea_orm::Value::Array(
        sea_orm::sea_query::ArrayType::String,
        Some(Box::new(
            values
                .iter()
                .map(|v| sea_orm::Value::String(Some(v.clone())))
                .collect(),
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    fn scrub() -> (Vec<String>, Vec<String>) {
        (vec!["u-1".into()], vec!["jane@example.com".into()])
    }

    #[test]
    fn erasures_wait_for_their_events_and_are_shared_between_workers() {
        let (sql, _) = scrubbable().build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "e"."user_id", "e"."org_id", "e"."needles" FROM "erasures" AS "e" WHERE NOT EXISTS(SELECT 1 FROM "outbox" AS "o" WHERE ((o.envelope #>> '{payload,user_id}')) = CAST("e"."user_id" AS text) AND "o"."published_at" IS NULL) ORDER BY "e"."requested_at" ASC LIMIT $1 FOR UPDATE OF "e" SKIP LOCKED"#
        );
    }

    #[test]
    fn due_for_erasure_is_the_sql_it_always_was() {
        let (sql, _) = due_for_erasure().build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"SELECT "u"."org_id", "u"."id" FROM "users" AS "u" INNER JOIN "orgs" AS "o" ON "o"."id" = "u"."org_id" WHERE (NOT "u"."active") AND "o"."erase_deactivated_after_days" IS NOT NULL AND "u"."deactivated_at" <= (now() - make_interval(days => "o"."erase_deactivated_after_days"))"#
        );
    }

    #[test]
    fn a_scrub_binds_ids_org_and_needles_where_they_belong() {
        let (ids, needles) = scrub();
        let s = Scrub {
            ids: &ids,
            org_id: Uuid::nil(),
            needles: &needles,
        };
        let (sql, values) = s.provisioning_log().build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"UPDATE "provisioning_log" SET "detail" = $1 WHERE "org_id" = $2 AND "detail" IS NOT NULL AND (CAST("resource_id" AS text) = ANY($3) OR (EXISTS (SELECT 1 FROM unnest($4::text[]) n WHERE strpos(lower(detail), lower(n)) > 0)))"#
        );
        assert_eq!(values.0.len(), 4);
        let (sql, values) = s.replies().build(PostgresQueryBuilder);
        assert!(sql.contains("strict $.** ?"), "{sql}");
        assert!(sql.contains("'{body,id}'"), "{sql}");
        assert!(
            sql.contains(r#"(reply #>> '{body,id}') = ANY($2) OR"#),
            "{sql}"
        );
        assert!(sql.contains("unnest($3::text[])"), "{sql}");
        assert_eq!(values.0.len(), 3);
    }
}
