//! `/Users` (RFC 7644 §3.3 create, §3.4.1 retrieve, §3.4.2 query, §3.5 replace and
//! modify, §3.6 delete): what a User is to the shared handlers in `scim::resource`. A
//! page's users carry their groups, read in one query.

use crate::{
    error::ScimApiError,
    scim::{
        list::{ListParams, Table},
        resource::{self, Op, Resource},
    },
    state::AppState,
};
use axum::Router;
use common::{
    db::{
        entities::user,
        query::{users_sort_key, users_where},
        reads::user_groups,
    },
    messages::{Command, CreateUser, DeleteUser, PatchUser, ReplaceUser},
    scim::{
        ScimError, USER_SCHEMA,
        model::{UserInput, render_user, set_user_groups},
        patch, schema,
    },
};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    resource::router::<Users>()
}

/// The SCIM User.
pub(crate) struct Users;

impl Resource for Users {
    const KIND: &'static str = "User";
    const PATH: &'static str = "/Users";
    const SCHEMA: &'static str = USER_SCHEMA;
    const TABLE: Table = Table {
        name: "users",
        filter: users_where,
        sort_key: users_sort_key,
    };
    type Model = user::Model;
    /// Each user's groups: id and display name.
    type Related = HashMap<Uuid, Vec<(Uuid, String)>>;

    fn version(u: &user::Model) -> i64 {
        u.version
    }

    async fn related(
        state: &AppState,
        users: &[user::Model],
        _: &ListParams,
    ) -> Result<Self::Related, ScimApiError> {
        let ids: Vec<_> = users.iter().map(|u| u.id).collect();
        Ok(user_groups(&state.db, &ids).await?)
    }

    fn render(u: &user::Model, groups: &Self::Related, base: &str) -> Value {
        let mut body = render_user(&u.as_stored(), base);
        let groups = groups.get(&u.id).map_or(&[][..], Vec::as_slice);
        set_user_groups(&mut body, groups, base);
        body
    }

    fn resource(body: Value) -> Result<Value, ScimError> {
        Ok(Value::Object(UserInput::from_json(body)?.resource))
    }

    fn patch(body: Value) -> Result<Value, ScimError> {
        patch::parse_request(&body, &schema::USER)?;
        // POST and PUT drop it in `UserInput`: no password is ever published.
        let mut patch = body;
        patch::strip_write_only(&mut patch);
        Ok(patch)
    }

    fn command(op: Op, if_match: Option<i64>) -> Command {
        match op {
            Op::Create(resource) => Command::CreateUser(CreateUser { resource }),
            Op::Replace(user_id, resource) => Command::ReplaceUser(ReplaceUser {
                user_id,
                resource,
                if_match,
            }),
            Op::Patch(user_id, patch) => Command::PatchUser(PatchUser {
                user_id,
                patch,
                if_match,
            }),
            Op::Delete(user_id) => Command::DeleteUser(DeleteUser { user_id, if_match }),
        }
    }
}
