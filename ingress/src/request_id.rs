//! The correlation id of a request: the caller's `X-Request-Id` when it is sane, else the
//! trace id of a W3C `traceparent`, else a new one (32 hex digits, itself a valid trace
//! id). It rides on the command, the reply, the events and the invite's logs (AMQP
//! `correlation_id`/`x-correlation-id` and a `traceparent` header), and is echoed back. One
//! access-log line per request carries it with the status and latency.

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};

pub const HEADER: &str = "x-request-id";
pub const TRACEPARENT: &str = "traceparent";

/// The correlation id, in the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn sane(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// The trace id of a `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if it is valid.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace != "0".repeat(32)
        && hex(parent, 16)
        && parent != "0".repeat(16)
        && hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    valid.then_some(trace)
}

/// The path as logged: an invite link's token, and any segment that looks like one of
/// Roster's tokens, is replaced, so no secret reaches the access log.
fn logged_path(path: &str) -> String {
    let mut after_invite = false;
    path.split('/')
        .map(|segment| {
            let secret = after_invite || segment.starts_with("rst_");
            after_invite = segment == "invite";
            if secret && !segment.is_empty() {
                "[redacted]"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub async fn layer(mut req: Request, next: Next) -> Response {
    let id = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        header(HEADER)
            .filter(|v| sane(v))
            .or_else(|| header(TRACEPARENT).and_then(trace_id))
            .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    let path = logged_path(req.uri().path());
    let span =
        tracing::info_span!("request", correlation_id = %id, method = %req.method(), path = %path);
    let started = std::time::Instant::now();
    let mut res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = res.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "request"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_paths_are_not_logged() {
        assert_eq!(logged_path("/invite/rst_inv_abc123"), "/invite/[redacted]");
        assert_eq!(logged_path("/invite/anything"), "/invite/[redacted]");
        assert_eq!(logged_path("/x/rst_scim_abc/y"), "/x/[redacted]/y");
        assert_eq!(logged_path("/scim/v2/Users/42"), "/scim/v2/Users/42");
        assert_eq!(logged_path("/"), "/");
    }

    #[test]
    fn traceparents_are_validated() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(t), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(trace_id(bad), None, "{bad}");
        }
    }
}
