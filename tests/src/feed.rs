//! Following Roster's events as a consumer should (docs/messages.md, "Example consumer"):
//! delivery is at least once, so skip an envelope id already seen; order is per user (or
//! group) by `version`, so flag one that does not move forward. Used by the example
//! consumer (`examples/user_events.rs`) and by the harness's check of every test's events.

use common::messages::Envelope;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use uuid::Uuid;

/// How many envelope ids the feed remembers for deduplication. A redelivery comes soon
/// after the original (a consumer restart, an outbox relay re-publishing a batch), so a
/// bounded window is enough and memory stays flat.
pub const DEDUPE_WINDOW: usize = 100_000;

/// What one event meant to the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A new event, in order: `user.updated jane@example.com v3 {title: "CTO"}`.
    Fresh(String),
    /// The same envelope id again (at-least-once delivery): nothing to do.
    Duplicate(String),
    /// A new event whose version is not above the last one seen for its user or group.
    OutOfOrder { line: String, last: i64 },
}

impl Seen {
    /// The line a consumer prints.
    pub fn line(&self) -> String {
        match self {
            Seen::Fresh(line) => line.clone(),
            Seen::Duplicate(line) => format!("{line} (duplicate, skipped)"),
            Seen::OutOfOrder { line, last } => {
                format!("{line} (OUT OF ORDER: already saw v{last})")
            }
        }
    }
}

/// Why an event could not be followed: it names no user or group, or no version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Malformed {}

/// The consumer's memory: recent envelope ids and the last version per user or group.
#[derive(Debug, Default)]
pub struct Feed {
    seen: HashSet<Uuid>,
    recent: VecDeque<Uuid>,
    versions: HashMap<Uuid, i64>,
}

impl Feed {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event in delivery order and says what it was.
    pub fn observe(&mut self, env: &Envelope) -> Result<Seen, Malformed> {
        let subject = Subject::of(env)?;
        let line = subject.line(&env.kind);
        if self.seen.contains(&env.id) {
            return Ok(Seen::Duplicate(line));
        }
        self.remember(env.id);
        let last = self.versions.entry(subject.id).or_insert(i64::MIN);
        if subject.version <= *last {
            return Ok(Seen::OutOfOrder { line, last: *last });
        }
        *last = subject.version;
        Ok(Seen::Fresh(line))
    }

    fn remember(&mut self, id: Uuid) {
        self.seen.insert(id);
        self.recent.push_back(id);
        if self.recent.len() > DEDUPE_WINDOW
            && let Some(old) = self.recent.pop_front()
        {
            self.seen.remove(&old);
        }
    }
}

/// The user or group an event is about.
struct Subject<'a> {
    id: Uuid,
    name: &'a str,
    version: i64,
    changes: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> Subject<'a> {
    fn of(env: &'a Envelope) -> Result<Self, Malformed> {
        let p = &env.payload;
        let (id_field, name_field) = if env.kind.starts_with("group.") {
            ("group_id", "display_name")
        } else {
            ("user_id", "user_name")
        };
        let missing = |field: &str| Malformed(format!("{} {}: no {field}", env.kind, env.id));
        Ok(Self {
            id: p[id_field]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| missing(id_field))?,
            name: p[name_field].as_str().ok_or_else(|| missing(name_field))?,
            version: p["version"].as_i64().ok_or_else(|| missing("version"))?,
            changes: p["changes"].as_object(),
        })
    }

    /// `user.updated jane@example.com v3 {title: "CTO", active: false}`.
    fn line(&self, kind: &str) -> String {
        let changes = self
            .changes
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        format!("{kind} {} v{} {{{changes}}}", self.name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, user: Uuid, version: i64, changes: Value) -> Envelope {
        Envelope::new(
            kind,
            Some(Uuid::new_v4()),
            "c",
            json!({"user_id": user, "version": version, "user_name": "jane@example.com", "changes": changes}),
        )
    }

    #[test]
    fn prints_the_change_and_skips_a_redelivery() {
        let mut feed = Feed::new();
        let jane = Uuid::new_v4();
        let e = event("user.updated", jane, 3, json!({"title": "CTO"}));
        let seen = feed.observe(&e).expect("an event");
        assert_eq!(
            seen,
            Seen::Fresh(r#"user.updated jane@example.com v3 {title: "CTO"}"#.into())
        );
        let again = feed.observe(&e).expect("an event");
        assert!(matches!(again, Seen::Duplicate(_)));
        assert!(again.line().ends_with("(duplicate, skipped)"));
    }

    #[test]
    fn flags_a_version_that_does_not_move_forward_per_user() {
        let mut feed = Feed::new();
        let (jane, joe) = (Uuid::new_v4(), Uuid::new_v4());
        let v = |feed: &mut Feed, user, version| {
            feed.observe(&event("user.updated", user, version, json!({})))
                .expect("an event")
        };
        assert!(matches!(v(&mut feed, jane, 1), Seen::Fresh(_)));
        assert!(matches!(v(&mut feed, jane, 3), Seen::Fresh(_)));
        // Another user's versions are their own.
        assert!(matches!(v(&mut feed, joe, 1), Seen::Fresh(_)));
        let late = v(&mut feed, jane, 2);
        assert_eq!(
            late,
            Seen::OutOfOrder {
                line: "user.updated jane@example.com v2 {}".into(),
                last: 3
            }
        );
        assert!(late.line().contains("OUT OF ORDER: already saw v3"));
        // A second event with the same version is out of order too.
        assert!(matches!(v(&mut feed, jane, 3), Seen::OutOfOrder { .. }));
    }

    #[test]
    fn groups_are_followed_by_group_id_and_name() {
        let mut feed = Feed::new();
        let g = Envelope::new(
            "group.created",
            Some(Uuid::new_v4()),
            "c",
            json!({"group_id": Uuid::new_v4(), "version": 1, "display_name": "Eng", "changes": {"displayName": "Eng"}}),
        );
        assert_eq!(
            feed.observe(&g).expect("an event"),
            Seen::Fresh(r#"group.created Eng v1 {displayName: "Eng"}"#.into())
        );
    }

    #[test]
    fn an_event_without_its_subject_is_malformed() {
        let mut feed = Feed::new();
        let e = Envelope::new("user.updated", None, "c", json!({"version": 1}));
        let err = feed.observe(&e).expect_err("malformed");
        assert!(err.0.contains("no user_id"), "{err}");
    }

    #[test]
    fn the_dedupe_window_is_bounded() {
        let mut feed = Feed::new();
        for _ in 0..DEDUPE_WINDOW + 10 {
            feed.remember(Uuid::new_v4());
        }
        assert_eq!(feed.seen.len(), DEDUPE_WINDOW);
        assert_eq!(feed.recent.len(), DEDUPE_WINDOW);
    }
}
