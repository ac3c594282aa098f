//! The statements that write a user's or a group's row, built with sea-query. Both tables
//! hold a versioned SCIM resource whose name (`userName`, a group's `displayName`) is unique
//! per org in any case, by an index on `(org_id, lower(<name>))`.

use common::db::{reads::org_row, sql::now};
use sea_orm::sea_query::{
    DeleteStatement, Expr, ExprTrait, Func, InsertStatement, LockType, OnConflict, Query,
    SelectStatement, UpdateStatement,
};
use uuid::Uuid;

/// A column and the value written to it.
pub(super) type Field = (&'static str, Expr);

/// A table of SCIM resources.
pub(super) struct Table {
    pub name: &'static str,
    /// The column unique per org in any case.
    pub unique: &'static str,
}

pub(super) const USERS: Table = Table {
    name: "users",
    unique: "user_name",
};

pub(super) const GROUPS: Table = Table {
    name: "groups",
    unique: "display_name",
};

impl Table {
    /// The row, locked for the transaction.
    pub fn lock(&self, org_id: Uuid, id: Uuid) -> SelectStatement {
        org_row(self.name, org_id, id)
            .lock(LockType::Update)
            .to_owned()
    }

    /// A new row at version 1 with `fields`, returned; no row when the org already has
    /// the name in any case (the conflict target is the unique index).
    pub fn insert(
        &self,
        id: Uuid,
        org_id: Uuid,
        fields: impl IntoIterator<Item = Field>,
    ) -> InsertStatement {
        let (mut columns, mut values): (Vec<&str>, Vec<Expr>) =
            (vec!["id", "org_id"], vec![id.into(), org_id.into()]);
        let stamps = [
            ("version", Expr::val(1i64)),
            ("created_at", now()),
            ("updated_at", now()),
        ];
        for (column, value) in fields.into_iter().chain(stamps) {
            columns.push(column);
            values.push(value);
        }
        Query::insert()
            .into_table(self.name)
            .columns(columns)
            .values_panic(values)
            .on_conflict(
                OnConflict::new()
                    .exprs([
                        Expr::col("org_id"),
                        Func::lower(Expr::col(self.unique)).into(),
                    ])
                    .do_nothing()
                    .to_owned(),
            )
            .returning_all()
            .to_owned()
    }

    /// Whether a row of the org other than `except` has `name`, in any case.
    pub fn name_taken(&self, org_id: Uuid, name: &str, except: Uuid) -> SelectStatement {
        Query::select()
            .expr_as(Expr::val(1), "one")
            .from(self.name)
            .and_where(Expr::col("org_id").eq(org_id))
            .and_where(Func::lower(Expr::col(self.unique)).eq(Func::lower(Expr::val(name))))
            .and_where(Expr::col("id").ne(except))
            .to_owned()
    }

    /// The row with `fields` replaced and its version one higher, returned.
    pub fn update(
        &self,
        org_id: Uuid,
        id: Uuid,
        fields: impl IntoIterator<Item = Field>,
    ) -> UpdateStatement {
        Query::update()
            .table(self.name)
            .values(fields)
            .value("version", Expr::col("version").add(1))
            .value("updated_at", now())
            .and_where(Expr::col("org_id").eq(org_id))
            .and_where(Expr::col("id").eq(id))
            .returning_all()
            .to_owned()
    }

    /// The row removed.
    pub fn delete(&self, org_id: Uuid, id: Uuid) -> DeleteStatement {
        Query::delete()
            .from_table(self.name)
            .and_where(Expr::col("org_id").eq(org_id))
            .and_where(Expr::col("id").eq(id))
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    fn name(n: &str) -> Vec<Field> {
        vec![("display_name", n.into())]
    }

    #[test]
    fn a_create_inserts_version_1_unless_the_name_is_taken_in_any_case() {
        let (sql, values) = GROUPS
            .insert(Uuid::nil(), Uuid::nil(), name("Eng"))
            .build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"INSERT INTO "groups" ("id", "org_id", "display_name", "version", "created_at", "updated_at") VALUES ($1, $2, $3, $4, now(), now()) ON CONFLICT ("org_id", LOWER("display_name")) DO NOTHING RETURNING *"#
        );
        assert_eq!(values.0.len(), 4);
    }

    #[test]
    fn a_replace_raises_the_version_of_the_orgs_row() {
        let (sql, _) = USERS
            .update(Uuid::nil(), Uuid::nil(), [("user_name", "ada".into())])
            .build(PostgresQueryBuilder);
        assert_eq!(
            sql,
            r#"UPDATE "users" SET "user_name" = $1, "version" = "version" + $2, "updated_at" = now() WHERE "org_id" = $3 AND "id" = $4 RETURNING *"#
        );
    }

    #[test]
    fn names_compare_in_any_case_and_rows_lock_within_their_org() {
        let (taken, _) = USERS
            .name_taken(Uuid::nil(), "Ada", Uuid::nil())
            .build(PostgresQueryBuilder);
        assert_eq!(
            taken,
            r#"SELECT $1 AS "one" FROM "users" WHERE "org_id" = $2 AND LOWER("user_name") = LOWER($3) AND "id" <> $4"#
        );
        let (lock, _) = GROUPS
            .lock(Uuid::nil(), Uuid::nil())
            .build(PostgresQueryBuilder);
        assert_eq!(
            lock,
            r#"SELECT * FROM "groups" WHERE "org_id" = $1 AND "id" = $2 FOR UPDATE"#
        );
        let (delete, _) = USERS
            .delete(Uuid::nil(), Uuid::nil())
            .build(PostgresQueryBuilder);
        assert_eq!(
            delete,
            r#"DELETE FROM "users" WHERE "org_id" = $1 AND "id" = $2"#
        );
    }
}
