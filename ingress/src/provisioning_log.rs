//! The provisioning log's source: one entry per SCIM request of a known org — method,
//! path, resource, status, the SCIM error's `detail`, duration, correlation id; never a
//! body, a query string or a secret. A request with no valid token belongs to no org and
//! is not logged.
//!
//! The ingress does not write to the database (DESIGN invariant 2), and the log must never
//! slow or fail a SCIM request: the middleware hands each entry to a bounded in-process
//! buffer (full: the entry is dropped and counted), and one task per ingress publishes
//! what gathered every `FLUSH_EVERY` as one persistent, confirmed message to
//! `<p>.provisioning-log`, which the worker stores (`worker::provisioning_log`).

use crate::{request_id::RequestId, state::AppState};
use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use chrono::Utc;
use common::{
    amqp::{Publisher, Raw, Topology, link::Link},
    messages::{Envelope, PROVISIONING_LOG, ProvisioningLogEntries, ProvisioningLogEntry},
    metrics::PROVISIONING_LOG_DROPPED,
};
use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Entries waiting in memory at most; past this the newest are dropped (and counted).
pub const BUFFER: usize = 10_000;
/// How long entries gather before they are published together.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Most entries in one message.
pub const MAX_BATCH: usize = 500;

/// The org a request authenticated as, filled in by the `ScimOrg` extractor.
#[derive(Clone, Default, Debug)]
pub struct OrgSlot(Arc<OnceLock<Uuid>>);

impl OrgSlot {
    pub fn set(&self, org: Uuid) {
        let _ = self.0.set(org);
    }
}

/// A SCIM error's `detail`, carried on the error response for the log.
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub String);

enum Msg {
    Entry(Box<ProvisioningLogEntry>),
    Flush(oneshot::Sender<()>),
}

/// The handle the middleware records entries with. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    prefix: String,
}

impl Recorder {
    /// Starts the publishing task on `link`.
    pub fn start(link: Link, topology: &Topology) -> Self {
        let (tx, rx) = mpsc::channel(BUFFER);
        let prefix = common::metrics::prefix_of(topology);
        tokio::spawn(publish_loop(
            link,
            topology.provisioning_log_queue(),
            prefix.clone(),
            rx,
        ));
        Self { tx, prefix }
    }

    /// Hands an entry on without waiting; a full buffer drops it.
    pub fn record(&self, entry: ProvisioningLogEntry) {
        if self.tx.try_send(Msg::Entry(Box::new(entry))).is_err() {
            dropped(&self.prefix, 1);
        }
    }

    /// Publishes what is buffered (at shutdown), waiting at most `limit`.
    pub async fn flush(&self, limit: Duration) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(limit, wait).await;
        }
    }
}

fn dropped(prefix: &str, n: u64) {
    metrics::counter!(PROVISIONING_LOG_DROPPED, "prefix" => prefix.to_owned()).increment(n);
}

async fn publish_loop(link: Link, queue: String, prefix: String, mut rx: mpsc::Receiver<Msg>) {
    let mut publisher: Option<Publisher> = None;
    let mut batch = Vec::new();
    loop {
        // Wait for the first entry, then gather for `FLUSH_EVERY`.
        let mut flushed = None;
        match rx.recv().await {
            None => return,
            Some(Msg::Entry(e)) => batch.push(*e),
            Some(Msg::Flush(done)) => flushed = Some(done),
        }
        if flushed.is_none() {
            let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Msg::Entry(e))) => batch.push(*e),
                    Ok(Some(Msg::Flush(done))) => {
                        flushed = Some(done);
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        if !batch.is_empty() {
            let entries = std::mem::take(&mut batch);
            let n = entries.len() as u64;
            if let Err(e) = publish(&link, &mut publisher, &queue, entries).await {
                tracing::warn!(error = %e, entries = n, "provisioning-log entries not published; dropped");
                publisher = None;
                dropped(&prefix, n);
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

async fn publish(
    link: &Link,
    publisher: &mut Option<Publisher>,
    queue: &str,
    entries: Vec<ProvisioningLogEntry>,
) -> Result<(), String> {
    if publisher
        .as_ref()
        .is_none_or(|p| !p.channel().status().connected())
    {
        *publisher = Some(
            Publisher::open(&link.current())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let Some(p) = publisher.as_ref() else {
        return Err("no channel".into());
    };
    let env = Envelope::new(
        PROVISIONING_LOG,
        None,
        "",
        ProvisioningLogEntries { entries },
    );
    // `user_id` is checked by the broker: the worker stores only what Roster's own user sent.
    let props = common::amqp::publish::envelope_properties(&env).with_user_id(p.user().into());
    p.publish_raw(Raw {
        exchange: "",
        routing_key: queue,
        body: &env.to_bytes(),
        props,
        mandatory: true,
    })
    .await
    .map_err(|e| e.to_string())
}

/// The middleware on `/scim/v2`: after the answer, one entry if the request's org is known.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let at = Utc::now();
    let slot = OrgSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().to_string();
    let path = req.uri().path();
    let path = path.strip_prefix("/scim/v2").unwrap_or(path).to_owned();
    let correlation_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let res = next.run(req).await;
    if let Some(org_id) = slot.0.get().copied() {
        let (resource_type, mut resource_id) = resource_of(&path);
        if resource_id.is_none() && res.status().as_u16() == 201 {
            resource_id = res
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.rsplit('/').next())
                .and_then(|id| Uuid::parse_str(id).ok());
        }
        state.log.record(ProvisioningLogEntry {
            id: Uuid::now_v7(),
            org_id,
            at,
            method,
            path: truncate(&path, 200),
            resource_type,
            resource_id,
            status: res.status().as_u16(),
            detail: res
                .extensions()
                .get::<ErrorDetail>()
                .map(|d| truncate(&d.0, 1000)),
            duration_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
            correlation_id,
        });
    }
    res
}

/// `User`/`Group` and the id of a path under `/scim/v2` (`/Users/{id}`).
fn resource_of(path: &str) -> (Option<String>, Option<Uuid>) {
    let mut parts = path.trim_start_matches('/').split('/');
    let kind = match parts.next() {
        Some("Users") => Some("User".to_owned()),
        Some("Groups") => Some("Group".to_owned()),
        _ => None,
    };
    let id = parts.next().and_then(|id| Uuid::parse_str(id).ok());
    (kind, id)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_from_the_path() {
        let id = Uuid::now_v7();
        assert_eq!(
            resource_of(&format!("/Users/{id}")),
            (Some("User".into()), Some(id))
        );
        assert_eq!(resource_of("/Groups"), (Some("Group".into()), None));
        assert_eq!(resource_of("/Users/not-an-id"), (Some("User".into()), None));
        assert_eq!(resource_of("/ServiceProviderConfig"), (None, None));
    }

    #[test]
    fn long_text_is_cut() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
