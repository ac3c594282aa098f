//! Discovery (RFC 7644 §4): `/ServiceProviderConfig` (RFC 7643 §5), `/ResourceTypes`
//! (§6) and `/Schemas` (§7), rendered from the schema definitions in
//! `common::scim::schema`. Every endpoint requires the SCIM token, as any SCIM call does.

use crate::{
    auth::ScimOrg,
    error::ScimApiError,
    scim::{list::MAX_PAGE, scim_json},
    state::AppState,
};
use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::get,
};
use common::scim::{
    GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, ScimError, USER_SCHEMA,
    schema::{self, Schema},
};
use serde_json::{Value, json};

const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// A resource type Roster serves (RFC 7643 §6).
pub struct ResourceType {
    pub id: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static str,
    /// Extension schemas; none is required.
    pub extensions: &'static [&'static Schema],
}

pub static RESOURCE_TYPES: [ResourceType; 2] = [
    ResourceType {
        id: "User",
        endpoint: "/Users",
        description: "User Account",
        schema: USER_SCHEMA,
        extensions: &schema::USER_EXTENSIONS,
    },
    ResourceType {
        id: "Group",
        endpoint: "/Groups",
        description: "Group",
        schema: GROUP_SCHEMA,
        extensions: &[],
    },
];

impl ResourceType {
    /// The resource type as `/ResourceTypes/{id}` returns it; `base` is the SCIM base URL.
    pub fn to_json(&self, base: &str) -> Value {
        let mut v = json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.id,
            "name": self.id,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema,
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base}/ResourceTypes/{}", self.id),
            },
        });
        if !self.extensions.is_empty() {
            let ext = self.extensions.iter();
            v["schemaExtensions"] = ext
                .map(|s| json!({"schema": s.id, "required": false}))
                .collect();
        }
        v
    }
}

/// What Roster supports (RFC 7643 §5); `base` is the SCIM base URL.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_PAGE},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The SCIM token Roster issues when an admin enables provisioning, \
                            sent as `Authorization: Bearer <token>`.",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

/// A ListResponse (RFC 7644 §3.4.2) holding every resource, on one page.
pub fn list_response(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

/// A resource type by id, case-insensitively.
pub fn resource_type(id: &str) -> Option<&'static ResourceType> {
    RESOURCE_TYPES
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(id))
}

/// A schema by its URN, case-insensitively.
pub fn schema(id: &str) -> Option<&'static Schema> {
    schema::ALL
        .iter()
        .copied()
        .find(|s| s.id.eq_ignore_ascii_case(id))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(get_service_provider_config))
        .route("/ResourceTypes", get(list_resource_types))
        .route("/ResourceTypes/{id}", get(get_resource_type))
        .route("/Schemas", get(list_schemas))
        .route("/Schemas/{id}", get(get_schema))
}

fn ok(body: Value) -> Response {
    scim_json(StatusCode::OK, body)
}

fn not_found(what: &str, id: &str) -> ScimApiError {
    ScimError::not_found(format!("{what} {id} not found")).into()
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn get_service_provider_config(State(state): State<AppState>, org: ScimOrg) -> Response {
    ok(service_provider_config(&state.scim_base()))
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn list_resource_types(State(state): State<AppState>, org: ScimOrg) -> Response {
    let base = state.scim_base();
    ok(list_response(
        RESOURCE_TYPES.iter().map(|r| r.to_json(&base)).collect(),
    ))
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn get_resource_type(
    State(state): State<AppState>,
    org: ScimOrg,
    Path(id): Path<String>,
) -> Result<Response, ScimApiError> {
    let rt = resource_type(&id).ok_or_else(|| not_found("ResourceType", &id))?;
    Ok(ok(rt.to_json(&state.scim_base())))
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn list_schemas(State(state): State<AppState>, org: ScimOrg) -> Response {
    let base = state.scim_base();
    ok(list_response(
        schema::ALL.iter().map(|s| s.to_json(&base)).collect(),
    ))
}

#[tracing::instrument(skip_all, fields(org_id = %org.0))]
async fn get_schema(
    State(state): State<AppState>,
    org: ScimOrg,
    Path(id): Path<String>,
) -> Result<Response, ScimApiError> {
    let s = schema(&id).ok_or_else(|| not_found("Schema", &id))?;
    Ok(ok(s.to_json(&state.scim_base())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::scim::{ENTERPRISE_USER_SCHEMA, ROSTER_USER_SCHEMA};

    #[test]
    fn user_resource_type_names_both_optional_extensions() {
        let v = resource_type("user")
            .expect("User")
            .to_json("http://x/scim/v2");
        assert_eq!(v["endpoint"], "/Users");
        assert_eq!(v["schema"], USER_SCHEMA);
        assert_eq!(
            v["schemaExtensions"],
            json!([
                {"schema": ENTERPRISE_USER_SCHEMA, "required": false},
                {"schema": ROSTER_USER_SCHEMA, "required": false},
            ])
        );
        assert_eq!(v["meta"]["location"], "http://x/scim/v2/ResourceTypes/User");
        let g = resource_type("Group").expect("Group").to_json("b");
        assert_eq!(
            (g["endpoint"].as_str(), g["schema"].as_str()),
            (Some("/Groups"), Some(GROUP_SCHEMA))
        );
        assert!(g.get("schemaExtensions").is_none());
        assert!(resource_type("Device").is_none());
    }

    #[test]
    fn every_schema_is_found_by_its_urn() {
        for s in schema::ALL {
            assert_eq!(schema(&s.id.to_ascii_uppercase()).map(|f| f.id), Some(s.id));
        }
        assert!(schema("urn:example:nope").is_none());
    }

    #[test]
    fn service_provider_config_advertises_what_roster_does() {
        let v = service_provider_config("http://x/scim/v2");
        assert_eq!(v["filter"], json!({"supported": true, "maxResults": 200}));
        assert_eq!(v["bulk"]["supported"], false);
        assert_eq!(v["changePassword"]["supported"], false);
        assert_eq!(v["authenticationSchemes"][0]["type"], "oauthbearertoken");
        assert_eq!(v["meta"]["resourceType"], "ServiceProviderConfig");
    }

    #[test]
    fn list_response_counts_its_resources() {
        let v = list_response(vec![json!({}), json!({})]);
        assert_eq!(
            (&v["totalResults"], &v["itemsPerPage"], &v["startIndex"]),
            (&json!(2), &json!(2), &json!(1))
        );
        assert_eq!(v["Resources"].as_array().map(Vec::len), Some(2));
    }
}
