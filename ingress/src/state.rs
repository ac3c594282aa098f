//! `AppState`: what every handler can reach (the database pool, the command RPC client,
//! settings, rate limiters, the SSO state and the provisioning-log recorder). Its own
//! module so handlers depend on it, not on the router in `app` that imports them all.

use common::{
    Settings,
    amqp::{link::Link, rpc::RpcClient},
};
use sea_orm::DatabaseConnection;
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub rpc: RpcClient,
    pub amqp: Link,
    pub settings: Arc<Settings>,
    /// Per-org SCIM request rate.
    pub limiter: Arc<crate::ratelimit::OrgLimiter>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<crate::ratelimit::AuthFailures>,
    /// Employee sign-in: the OpenID provider's HTTP client and the cookie key.
    pub sso: crate::sso::SsoState,
    /// Hands SCIM requests' outcomes to the worker (`provisioning_log`).
    pub log: crate::provisioning_log::Recorder,
    /// The SCIM tokens checked lately (`tokens`).
    pub tokens: Arc<crate::tokens::TokenCache>,
}

impl AppState {
    /// The SCIM base URL as clients see it, for `meta.location`.
    pub fn scim_base(&self) -> String {
        format!("{}/scim/v2", self.settings.public_url)
    }
}
