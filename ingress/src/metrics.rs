//! The ingress's metrics: `/metrics` (Prometheus text, no authentication: expose it only
//! to the scraper) and a middleware that counts and times every request by method, route
//! pattern and status. Names and labels: `common::metrics`.

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{Method, header},
    middleware::{Next, from_fn_with_state},
    response::Response,
    routing::get,
};
use common::{
    Settings,
    metrics::{HTTP_REQUEST_DURATION, HTTP_REQUESTS},
};
use std::{sync::Arc, time::Instant};

/// The label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Adds `/metrics` to the finished router and wraps every route (and the fallback) in the
/// request metrics. Installs the process's recorder, so commands are counted from the start.
pub fn instrument(router: Router, settings: &Settings) -> Router {
    let handle = common::metrics::install();
    let prefix: Arc<str> = Arc::from(settings.amqp_prefix.as_str());
    router
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, common::metrics::CONTENT_TYPE)],
                    common::metrics::render(&handle),
                )
            }),
        )
        .layer(from_fn_with_state(prefix, track))
}

/// Records one request: `route` is the matched pattern (`/scim/v2/Users/{id}`), never
/// the path itself, so ids do not become series.
async fn track(State(prefix): State<Arc<str>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
        ("prefix", prefix.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(start.elapsed().as_secs_f64());
    response
}

/// The standard methods by name; anything else is `other` (a client cannot make series up).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"BREW").expect("a method");
        assert_eq!(method_label(&made_up), "other");
    }
}
