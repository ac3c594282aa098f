//! sea-orm entities of the tables read or written through sea-orm (see `m0001_initial.sql`).
//! The other tables (outbox, audit log, invites, processed commands, …) are reached by
//! sea-query statements on their names or by the hand-written hot path (`worker`'s
//! `hot_sql`), so they have no entity: one nothing used would drift from its table unseen.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod org {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "orgs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub name: String,
        pub admin_key_hash: String,
        pub provisioning_enabled: bool,
        pub send_invites: bool,
        pub lock_synced_fields: bool,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod scim_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "scim_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub token_hash: String,
        pub hint: String,
        pub created_at: DateTimeUtc,
        pub revoked_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub user_name: String,
        pub external_id: Option<String>,
        pub active: bool,
        pub display_name: Option<String>,
        pub given_name: Option<String>,
        pub family_name: Option<String>,
        pub email: Option<String>,
        pub resource: Json,
        /// The directory fields (see `mapping`).
        pub profile: Json,
        pub version: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// The raw manager value the current link (or the wait for one) came from
        /// (`m0005_org_chart.sql`).
        pub manager_ref: Option<String>,
        /// The person `manager_ref` resolved to, if anyone.
        pub manager_id: Option<Uuid>,
    }
    no_relations!();

    impl Model {
        /// The row as `scim::model::render_user` takes it.
        pub fn as_stored(&self) -> crate::scim::model::StoredUser<'_> {
            crate::scim::model::StoredUser {
                id: self.id,
                user_name: &self.user_name,
                external_id: self.external_id.as_deref(),
                active: self.active,
                resource: &self.resource,
                version: self.version,
                created_at: self.created_at,
                updated_at: self.updated_at,
            }
        }
    }
}

pub mod group {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub display_name: String,
        pub external_id: Option<String>,
        pub resource: Json,
        pub version: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();

    impl Model {
        /// The row as `scim::model::render_group` takes it.
        pub fn as_stored(&self) -> crate::scim::model::StoredGroup<'_> {
            crate::scim::model::StoredGroup {
                id: self.id,
                display_name: &self.display_name,
                external_id: self.external_id.as_deref(),
                resource: &self.resource,
                version: self.version,
                created_at: self.created_at,
                updated_at: self.updated_at,
            }
        }
    }
}

pub mod group_member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "group_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub org_id: Uuid,
        pub added_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod field_mapping {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "field_mappings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub field: String,
        pub scim_attribute: String,
        pub policy: String,
        pub position: i32,
    }
    no_relations!();
}
