//! Okta as a SCIM client: its headers and the exact bodies it sends (../shared/OKTA.md).

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

pub const USER_AGENT: &str = "Okta SCIM Client 1.0.0";

/// A SCIM client holding a bearer token, sending Okta's headers.
#[derive(Clone)]
pub struct ScimClient {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl ScimClient {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/scim/v2{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("User-Agent", USER_AGENT)
            .header("Accept", "application/scim+json")
    }

    pub async fn post_user(&self, body: &Value) -> Response {
        self.request(Method::POST, "/Users")
            .header("Content-Type", "application/scim+json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /Users")
    }

    /// Creates a user with Okta's body ([`create_user_body`]), which must be answered `201`.
    pub async fn create_user_201(&self, user_name: &str, given: &str, family: &str) {
        let res = self
            .post_user(&create_user_body(user_name, given, family))
            .await;
        assert_eq!(res.status(), 201, "POST /Users {user_name}");
    }

    /// `POST path` with a raw body and the given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.request(Method::POST, path)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    /// `method path` with a JSON body, as Okta sends it.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .header("Content-Type", "application/scim+json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// `GET path` with `If-None-Match: etag`.
    pub async fn get_if_none_match(&self, path: &str, etag: &str) -> Response {
        self.request(Method::GET, path)
            .header("If-None-Match", etag)
            .send()
            .await
            .expect("GET")
    }

    /// `PATCH path` with `body` and `If-Match: etag`.
    pub async fn patch_if_match(&self, path: &str, etag: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path)
            .header("Content-Type", "application/scim+json")
            .header("If-Match", etag)
            .body(body.to_string())
            .send()
            .await
            .expect("PATCH")
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("DELETE")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    pub async fn get_user(&self, id: &str) -> Response {
        self.get(&format!("/Users/{id}")).await
    }

    /// `GET /Users?filter=userName eq "…"&startIndex=1&count=100`, as Okta looks a user up.
    pub async fn find_by_user_name(&self, user_name: &str) -> Value {
        let res = self
            .request(Method::GET, "/Users")
            .query(&[
                ("filter", format!("userName eq \"{user_name}\"")),
                ("startIndex", "1".to_owned()),
                ("count", "100".to_owned()),
            ])
            .send()
            .await
            .expect("GET /Users?filter");
        assert_eq!(res.status(), 200, "filter lookup failed");
        res.json().await.expect("ListResponse JSON")
    }
}

/// The body Okta sends to create a user, password placeholder included.
pub fn create_user_body(user_name: &str, given: &str, family: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": format!("00u{}", &uuid::Uuid::new_v4().simple().to_string()[..17]),
        "groups": [],
        "password": PASSWORD_PLACEHOLDER,
        "active": true
    })
}

/// What Okta puts in `password`; it must never be stored or returned.
pub const PASSWORD_PLACEHOLDER: &str = "P4ssw0rd-placeholder-9f8e7d";

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
