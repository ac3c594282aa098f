//! HTTP/1 serving on hyper directly, because `axum::serve` cannot set a header read
//! timeout. A client must send a request's headers within `HEADER_READ_TIMEOUT_MS` (a slow
//! client cannot hold connections open for free; an idle keep-alive connection closes after
//! as long); headers are capped in count and size (`431` past them); handlers see the
//! peer's address (`ConnectInfo`). On shutdown the listener closes, idle connections close,
//! and in-flight requests get up to the drain timeout before every connection is dropped.

use axum::{
    Router,
    extract::{ConnectInfo, Request},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use std::{future::Future, time::Duration};
use tokio::{net::TcpListener, task::JoinSet};
use tower::ServiceExt;

/// Most header fields in one request (hyper's own default, stated here to be documented).
pub const MAX_HEADERS: usize = 100;
/// Most bytes of a request's start line and headers together.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What a connection may cost.
pub struct Limits {
    /// `None` (a setting of 0) turns the timeout off.
    pub header_read_timeout: Option<Duration>,
}

impl Limits {
    pub fn from_settings(settings: &common::Settings) -> Self {
        Self {
            header_read_timeout: Some(settings.header_read_timeout).filter(|d| !d.is_zero()),
        }
    }

    fn builder(&self) -> http1::Builder {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_headers(MAX_HEADERS)
            .max_header_size(MAX_HEADER_BYTES);
        http
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) {
    let http = limits.builder();
    let graceful = GracefulShutdown::new();
    // Dropping the set aborts what is still running after the drain.
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: give connections time to close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %peer, "connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("in-flight requests did not finish in time; closing anyway");
        }
    }
}
