//! `/Groups` (RFC 7644 §3.3–§3.6), as Okta's Push Groups and Entra use it: create, get,
//! list with `displayName eq` filters and `excludedAttributes=members`, replace, patch
//! (answered `204`), delete — what a Group is to the shared handlers in `scim::resource`.
//! A page's groups carry their members, read in one query, unless the projection drops them.

use crate::{
    error::ScimApiError,
    scim::{
        list::{ListParams, Table},
        resource::{self, Op, Resource},
    },
    state::AppState,
    store,
};
use axum::Router;
use common::{
    db::{
        entities::group,
        query::{groups_sort_key, groups_where},
    },
    messages::{Command, CreateGroup, DeleteGroup, PatchGroup, ReplaceGroup},
    scim::{
        GROUP_SCHEMA, ScimError,
        model::{GroupInput, MemberRef, render_group},
        patch,
        projection::project,
        schema,
    },
};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    resource::router::<Groups>()
}

/// Whether the projection keeps `members` (Entra excludes them on every lookup; then
/// they are not even read).
fn members_wanted(params: &ListParams) -> bool {
    let mut probe = serde_json::json!({"id": "", "members": []});
    project(
        &mut probe,
        GROUP_SCHEMA,
        &params.attributes,
        &params.excluded,
    );
    probe.get("members").is_some()
}

/// The SCIM Group.
pub(crate) struct Groups;

impl Resource for Groups {
    const KIND: &'static str = "Group";
    const PATH: &'static str = "/Groups";
    const SCHEMA: &'static str = GROUP_SCHEMA;
    const TABLE: Table = Table {
        name: "groups",
        filter: groups_where,
        sort_key: groups_sort_key,
    };
    type Model = group::Model;
    /// Each group's members, when the projection keeps them (`None`: not read).
    type Related = Option<HashMap<Uuid, Vec<MemberRef>>>;

    fn version(g: &group::Model) -> i64 {
        g.version
    }

    async fn related(
        state: &AppState,
        groups: &[group::Model],
        params: &ListParams,
    ) -> Result<Self::Related, ScimApiError> {
        if !members_wanted(params) {
            return Ok(None);
        }
        let ids: Vec<_> = groups.iter().map(|g| g.id).collect();
        Ok(Some(store::scim::group_members(&state.db, &ids).await?))
    }

    fn render(g: &group::Model, members: &Self::Related, base: &str) -> Value {
        let members = members
            .as_ref()
            .map(|m| m.get(&g.id).map_or(&[][..], Vec::as_slice));
        render_group(&g.as_stored(), members, base)
    }

    fn resource(body: Value) -> Result<Value, ScimError> {
        GroupInput::from_json(body.clone())?;
        Ok(body)
    }

    fn patch(body: Value) -> Result<Value, ScimError> {
        patch::parse_request(&body, &schema::GROUP)?;
        Ok(body)
    }

    fn command(op: Op, if_match: Option<i64>) -> Command {
        match op {
            Op::Create(resource) => Command::CreateGroup(CreateGroup { resource }),
            Op::Replace(group_id, resource) => Command::ReplaceGroup(ReplaceGroup {
                group_id,
                resource,
                if_match,
            }),
            Op::Patch(group_id, patch) => Command::PatchGroup(PatchGroup {
                group_id,
                patch,
                if_match,
            }),
            Op::Delete(group_id) => Command::DeleteGroup(DeleteGroup { group_id, if_match }),
        }
    }
}
