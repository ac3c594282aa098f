//! The `Application`: the router (SCIM, admin, invites, health merged in one place) and
//! serving with graceful shutdown. Tests build it on port 0. The state every handler
//! reaches is `crate::state`, so no handler imports this file.

mod serve;

pub use crate::state::AppState;
use crate::{admin, health, invite, request_id, scim, sso};
use anyhow::Context;
use axum::{Router, extract::DefaultBodyLimit};
use common::{
    Settings,
    amqp::{Topology, link::Link, rpc::RpcClient},
};
use std::{future::Future, net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;

/// How long in-flight requests get after SIGTERM (commands wait at most
/// `COMMAND_TIMEOUT_MS` for their reply, and this is longer than the default of that).
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the provisioning-log entries still buffered get to be published at shutdown.
const LOG_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

pub fn router(state: AppState) -> Router {
    let limit = state.settings.max_body_bytes;
    Router::new()
        .nest(
            "/scim/v2",
            scim::router().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::provisioning_log::layer,
            )),
        )
        .merge(admin::router())
        .merge(invite::router())
        .merge(sso::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Stops the listener of token announcements (`tokens::listen`).
    stop_tokens: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Binds `INGRESS_ADDR` and connects to PostgreSQL and RabbitMQ (retrying until both answer).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.ingress_addr)
            .await
            .with_context(|| format!("binding {}", settings.ingress_addr))?;
        Self::with_listener(settings, listener).await
    }

    /// Like `build`, on a listener the caller bound (tests bind port 0).
    pub async fn with_listener(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let db = common::db::connect(
            settings.database_url.expose(),
            settings.db_max_connections.max(2),
        )
        .await;
        let amqp = Link::connect(settings.amqp_url.expose(), "roster-ingress").await;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let rpc = RpcClient::start(
            amqp.clone(),
            &Topology::from_settings(&settings),
            &instance,
            settings.command_timeout,
            settings.max_in_flight,
        )
        .await
        .context("declaring the AMQP topology and reply queue")?;
        let log = crate::provisioning_log::Recorder::start(
            amqp.clone(),
            &Topology::from_settings(&settings),
        );
        let tokens = Arc::new(crate::tokens::TokenCache::default());
        let (stop_tokens, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(crate::tokens::listen(
            tokens.clone(),
            settings.database_url.clone(),
            db.clone(),
            stopped,
        ));
        Ok(Self {
            listener,
            stop_tokens,
            state: AppState {
                tokens,
                log,
                db,
                rpc,
                amqp,
                limiter: Arc::new(crate::ratelimit::OrgLimiter::new(settings.scim_rate_limit)),
                auth_failures: Arc::new(crate::ratelimit::AuthFailures::new(
                    settings.auth_failures_per_minute,
                    settings.auth_failures_global_per_minute,
                )),
                sso: crate::sso::SsoState::default(),
                settings: Arc::new(settings),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, then gives in-flight requests up to
    /// `DRAIN_TIMEOUT` to finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = crate::metrics::instrument(router(self.state.clone()), &self.state.settings);
        let limits = serve::Limits::from_settings(&self.state.settings);
        serve::serve(self.listener, app, limits, shutdown, DRAIN_TIMEOUT).await;
        let _ = self.stop_tokens.send(true);
        self.state.log.flush(LOG_FLUSH_TIMEOUT).await;
        self.state.amqp.close("ingress shutting down").await;
        common::shutdown::close_db(&self.state.db).await;
        tracing::info!("ingress stopped");
        Ok(())
    }
}
