//! JSON Schemas of the AMQP messages, generated from the Rust types in [`crate::messages`]
//! with schemars, so the published contract cannot say something the code does not do.
//!
//! Each message type gets the schema of its *whole envelope*: the envelope with `type`
//! fixed to that type, `schema_version` fixed to [`SCHEMA_VERSION`] and `payload` the
//! payload's own schema. `cargo run -p tests --bin schemas` writes them to `docs/schemas/`,
//! and a test below fails when the checked-in files differ from what the code generates.

use crate::messages::{
    Audience, COMMANDS, Envelope, GroupEvent, PROVISIONING_LOG, ProvisioningLogEntries, Reply,
    SCHEMA_VERSION, Scope, UserEvent, events,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Value, json};

/// Which way a message travels, which decides what its schema describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Published by Roster (events, replies): the schema describes what Roster *writes*,
    /// so a field Roster always sends is `required`.
    Out,
    /// Consumed by Roster (commands): the schema describes what Roster *accepts*, so a
    /// field with a default is optional.
    In,
}

/// One message type's contract.
#[derive(Clone, Debug)]
pub struct MessageSchema {
    /// The envelope `type`, which is also the routing key.
    pub kind: &'static str,
    pub direction: Direction,
    /// The schema of the whole envelope carrying this type.
    pub schema: Value,
}

/// Every event type with its envelope schema.
pub fn events() -> Vec<MessageSchema> {
    use Direction::Out;
    vec![
        message::<UserEvent>(
            events::USER_CREATED,
            Out,
            "A user was provisioned; `changes` holds every attribute it was created with.",
        ),
        message::<UserEvent>(
            events::USER_UPDATED,
            Out,
            "A user changed; `changes` holds the top-level attributes that changed (`null` when removed).",
        ),
        message::<UserEvent>(
            events::USER_DEACTIVATED,
            Out,
            "A user's `active` became false: they leave the directory.",
        ),
        message::<UserEvent>(
            events::USER_REACTIVATED,
            Out,
            "A user's `active` became true again: they return to the directory.",
        ),
        message::<UserEvent>(
            events::USER_DELETED,
            Out,
            "A user was deleted; `changes` is empty.",
        ),
        message::<GroupEvent>(
            events::GROUP_CREATED,
            Out,
            "A group was created; `changes.members_added` lists its initial members.",
        ),
        message::<GroupEvent>(
            events::GROUP_UPDATED,
            Out,
            "A group's name or members changed.",
        ),
        message::<GroupEvent>(
            events::GROUP_DELETED,
            Out,
            "A group was deleted; `changes` is empty.",
        ),
    ]
}

/// Every command type with its envelope schema, from the catalogue
/// ([`crate::messages::command`]).
pub fn commands() -> Vec<MessageSchema> {
    COMMANDS
        .iter()
        .map(|c| {
            message_of(
                c.kind,
                Direction::In,
                c.about,
                Contract {
                    audience: c.audience,
                    scope: c.scope,
                },
                c.payload_schema,
            )
        })
        .collect()
}

/// Messages between Roster's own services that are neither commands nor events: the
/// ingress's provisioning-log entries for the worker (`<p>.provisioning-log`).
pub fn internal() -> Vec<MessageSchema> {
    vec![message::<ProvisioningLogEntries>(
        PROVISIONING_LOG,
        Direction::In,
        "SCIM requests' outcomes, for the org admins' provisioning log; the ingress publishes them, the worker stores them.",
    )]
}

/// The envelope in general: any `type`, any payload.
pub fn envelope() -> Value {
    settings(Direction::In)
        .into_generator()
        .into_root_schema_for::<Envelope>()
        .to_value()
}

/// The worker's reply to a command that had `reply_to`.
pub fn reply() -> Value {
    settings(Direction::Out)
        .into_generator()
        .into_root_schema_for::<Reply>()
        .to_value()
}

/// The envelope schema of one event or command type, if Roster knows it.
pub fn schema_for(kind: &str) -> Option<Value> {
    events()
        .into_iter()
        .chain(commands())
        .chain(internal())
        .find(|m| m.kind == kind)
        .map(|m| m.schema)
}

/// Every file of `docs/schemas/`: `<type>.json` per message type, `envelope.json` and
/// `reply.json`, with their contents.
pub fn files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = events()
        .into_iter()
        .chain(commands())
        .chain(internal())
        .map(|m| (format!("{}.json", m.kind), render(&m.schema)))
        .collect();
    files.push(("envelope.json".into(), render(&envelope())));
    files.push(("reply.json".into(), render(&reply())));
    files.sort();
    files
}

/// How a schema is written to disk: pretty JSON with a final newline, so diffs stay small.
pub fn render(schema: &Value) -> String {
    // Serialising a `Value` cannot fail.
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// JSON Schema draft-07: the dialect AsyncAPI 3.0 names for message payloads
/// (`application/schema+json;version=draft-07`), so `docs/asyncapi.yaml` can refer to
/// these files as they are.
fn settings(direction: Direction) -> SchemaSettings {
    match direction {
        Direction::Out => SchemaSettings::draft07().for_serialize(),
        Direction::In => SchemaSettings::draft07().for_deserialize(),
    }
}

/// What the description and the `org_id` of a message's schema depend on.
#[derive(Clone, Copy)]
struct Contract {
    audience: Audience,
    scope: Scope,
}

/// Events and Roster's internal messages: sent by Roster, always for an org.
const ROSTER_IN_ORG: Contract = Contract {
    audience: Audience::Own,
    scope: Scope::Org,
};

/// The envelope schema with `type`, `schema_version` and `payload` narrowed to one type.
fn message<P: JsonSchema>(
    kind: &'static str,
    direction: Direction,
    about: &'static str,
) -> MessageSchema {
    message_of(kind, direction, about, ROSTER_IN_ORG, |g| {
        g.subschema_for::<P>()
    })
}

/// [`message`], with the payload's schema and the contract given.
fn message_of(
    kind: &'static str,
    direction: Direction,
    about: &'static str,
    contract: Contract,
    payload_schema: fn(&mut SchemaGenerator) -> Schema,
) -> MessageSchema {
    let mut generator = settings(direction).into_generator();
    // The payload's definitions stay in the generator and land in the root's `$defs`.
    let payload = payload_schema(&mut generator).to_value();
    let mut schema = generator.into_root_schema_for::<Envelope>().to_value();
    narrow(&mut schema, kind, direction, about, contract, payload);
    MessageSchema {
        kind,
        direction,
        schema,
    }
}

fn narrow(
    schema: &mut Value,
    kind: &str,
    direction: Direction,
    about: &str,
    contract: Contract,
    payload: Value,
) {
    schema["title"] = json!(kind);
    schema["description"] = json!(match (direction, contract.audience) {
        (Direction::Out, _) => about.to_owned(),
        (Direction::In, Audience::Public) => {
            format!("{about} Other services may publish it with an integration credential.")
        }
        (Direction::In, Audience::Own) => {
            format!("{about} Roster's own: refused from other services.")
        }
    });
    let props = &mut schema["properties"];
    props["type"] =
        json!({ "description": "The message type; also its routing key.", "const": kind });
    props["schema_version"] = json!({
        "description": "The version of this schema; a breaking change publishes a new one alongside.",
        "const": SCHEMA_VERSION,
    });
    props["payload"] = payload;
    if direction == Direction::Out {
        // Events carry no credential; only commands from other services do.
        if let Some(props) = props.as_object_mut() {
            props.remove("credential");
        }
    }
    // Every message but the catalogue's global commands (`org.create`, `org.delete`)
    // belongs to an org.
    if contract.scope == Scope::Org {
        props["org_id"] =
            json!({ "description": "The tenant.", "type": "string", "format": "uuid" });
        if let Some(required) = schema["required"].as_array_mut() {
            required.push(json!("org_id"));
            required.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::BTreeSet, path::PathBuf};

    fn docs() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
    }

    #[test]
    fn checked_in_schemas_match_the_code() {
        let dir = docs().join("schemas");
        let regenerate = "regenerate them with `cargo run -p tests --bin schemas`";
        let generated = files();
        for (name, text) in &generated {
            let on_disk = std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("docs/schemas/{name}: {e}; {regenerate}"));
            assert!(
                &on_disk == text,
                "docs/schemas/{name} differs from the Rust types; {regenerate}"
            );
        }
        let expected: BTreeSet<_> = generated.iter().map(|(n, _)| n.clone()).collect();
        let stale: Vec<_> = std::fs::read_dir(&dir)
            .expect("docs/schemas")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json") && !expected.contains(n))
            .collect();
        assert!(
            stale.is_empty(),
            "docs/schemas has files no message type generates: {stale:?}; {regenerate}"
        );
    }

    /// The AsyncAPI document names its message schemas by `$ref`; each must exist, and
    /// every message type must be in it. A text scan: no YAML parser needed for this.
    #[test]
    fn asyncapi_refers_to_existing_schemas_and_names_every_type() {
        let text = std::fs::read_to_string(docs().join("asyncapi.yaml")).expect("asyncapi.yaml");
        let refs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("$ref:"))
            .map(|r| r.trim().trim_matches(|c| c == '\'' || c == '"'))
            .filter(|r| !r.starts_with('#'))
            .collect();
        assert!(!refs.is_empty(), "asyncapi.yaml refers to no schema file");
        for r in &refs {
            let path = docs().join(r.split('#').next().unwrap_or(r));
            assert!(
                path.is_file(),
                "asyncapi.yaml refers to {r}, which does not exist"
            );
        }
        for m in events().into_iter().chain(commands()).chain(internal()) {
            let file = format!("schemas/{}.json", m.kind);
            assert!(
                refs.contains(&file.as_str()),
                "asyncapi.yaml does not describe {} ({file})",
                m.kind
            );
        }
    }

    #[test]
    fn every_command_and_event_type_has_a_schema() {
        let kinds: BTreeSet<&str> = commands().iter().map(|m| m.kind).collect();
        let known: BTreeSet<&str> = crate::messages::KNOWN_COMMANDS.iter().copied().collect();
        assert_eq!(kinds, known, "commands() must list every command type");
        let event_kinds: Vec<&str> = events().iter().map(|m| m.kind).collect();
        for kind in [
            "user.created",
            "user.deleted",
            "group.created",
            "group.deleted",
        ] {
            assert!(event_kinds.contains(&kind), "{kind}");
        }
        assert_eq!(event_kinds.len(), 8);
    }

    #[test]
    fn event_schemas_pin_the_type_and_require_the_org() {
        let s = schema_for("user.updated").expect("a schema");
        assert_eq!(s["properties"]["type"]["const"], "user.updated");
        assert_eq!(s["properties"]["schema_version"]["const"], SCHEMA_VERSION);
        let required: Vec<_> = s["required"].as_array().expect("required").clone();
        for field in [
            "id",
            "type",
            "org_id",
            "payload",
            "schema_version",
            "occurred_at",
        ] {
            assert!(required.contains(&json!(field)), "{field} is required");
        }
        assert!(s["properties"].get("credential").is_none());
        // The payload is the user event, with its definition carried along.
        assert_eq!(
            s["properties"]["payload"]["$ref"],
            "#/definitions/UserEvent"
        );
        assert!(s["definitions"]["UserEvent"]["properties"]["version"].is_object());
        assert!(schema_for("user.explode").is_none());
    }

    #[test]
    fn command_schemas_accept_a_credential_and_only_org_create_has_no_org() {
        let create = schema_for("user.create").expect("a schema");
        assert!(create["properties"]["credential"].is_object());
        assert!(
            create["required"]
                .as_array()
                .expect("required")
                .contains(&json!("org_id"))
        );
        let org = schema_for("org.create").expect("a schema");
        assert!(
            !org["required"]
                .as_array()
                .expect("required")
                .contains(&json!("org_id"))
        );
    }
}
