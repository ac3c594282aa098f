//! Other services integrate through the queue (docs/messages.md): a test service publishes
//! commands straight on the broker with an integration credential issued in the admin API,
//! with and without `reply_to`, and gets the state, events and replies an Okta call gets;
//! a message id has one effect however often it is published; anything unauthorised or
//! undecodable is dead-lettered with its reason and changes nothing; a consumer bound to
//! `user.*` sees each user's events in version order.

use common::{
    amqp::{Publisher, Raw, Topology, publish::envelope_properties},
    messages::{Command, Envelope, Reply},
};
use futures_util::future::join_all;
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{BasicGetOptions, QueueBindOptions},
    types::FieldTable,
};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};
use tests::{
    harness::{Tenant, TestApp},
    okta::{ScimClient, create_user_body},
};
use uuid::Uuid;
use worker::{
    apply::{ApplyContext, Item},
    dlq,
};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const WAIT: Duration = Duration::from_secs(30);

/// Another team's service on the broker: its own connection (as a plain client, not
/// through any Roster helper that would mark it as Roster's), a reply queue and a queue
/// bound to the events exchange.
struct Service {
    conn: Connection,
    publisher: Publisher,
    channel: Channel,
    topology: Topology,
    replies: String,
    events: String,
    /// Replies that arrived while another was awaited.
    early: HashMap<String, Reply>,
}

impl Service {
    /// Connects and binds its events queue to `events_key` (`#`, `user.*` …).
    async fn connect(app: &TestApp, events_key: &str) -> Self {
        let conn = Connection::connect(
            &app.settings_amqp_direct(),
            ConnectionProperties::default().with_connection_name("hr-sync".into()),
        )
        .await
        .expect("connecting to RabbitMQ");
        let publisher = Publisher::open(&conn).await.expect("publisher");
        let channel = conn.create_channel().await.expect("channel");
        let topology = Topology::from_settings(&app.settings);
        let replies = exclusive_queue(&channel).await;
        let events = exclusive_queue(&channel).await;
        channel
            .queue_bind(
                events.as_str().into(),
                topology.events_exchange().as_str().into(),
                events_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("binding the events queue");
        Self {
            conn,
            publisher,
            channel,
            topology,
            replies,
            events,
            early: HashMap::new(),
        }
    }

    /// Publishes a command as another service does: the envelope's properties, no
    /// `user_id`; with `reply_to` when `reply` (correlation id = the envelope id).
    async fn send(&self, env: &Envelope, reply: bool) {
        let mut props = envelope_properties(env);
        if reply {
            props = props
                .with_reply_to(self.replies.as_str().into())
                .with_correlation_id(env.id.to_string().as_str().into());
        }
        self.send_raw(&env.kind, &env.to_bytes(), props).await;
    }

    async fn send_raw(&self, key: &str, body: &[u8], props: lapin::BasicProperties) {
        assert!(
            props.user_id().is_none(),
            "a foreign service sets no user_id"
        );
        self.publisher
            .publish_raw(Raw {
                exchange: &self.topology.commands_exchange(),
                routing_key: key,
                body,
                props,
                mandatory: true,
            })
            .await
            .expect("the broker accepts the command");
    }

    /// Takes (acknowledged) the next message from `queue`, if one is waiting.
    async fn take(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        self.channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
    }

    /// Publishes and waits for the reply.
    async fn call(&mut self, env: &Envelope) -> Reply {
        self.send(env, true).await;
        self.reply(&env.id.to_string()).await
    }

    /// The reply correlated to `id`.
    async fn reply(&mut self, id: &str) -> Reply {
        let start = Instant::now();
        loop {
            if let Some(r) = self.early.remove(id) {
                return r;
            }
            let got = self.take(&self.replies).await;
            match got {
                Some(m) => {
                    let cid = m.delivery.properties.correlation_id().clone();
                    let cid = cid.map(|c| c.to_string()).unwrap_or_default();
                    let reply = serde_json::from_slice(&m.delivery.data).expect("a reply");
                    self.early.insert(cid, reply);
                }
                None => {
                    assert!(start.elapsed() < WAIT, "no reply to {id}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The next `n` events from its queue, in arrival order.
    async fn events(&self, n: usize) -> Vec<Envelope> {
        let mut out = Vec::new();
        let start = Instant::now();
        while out.len() < n {
            let got = self.take(&self.events).await;
            match got {
                Some(m) => out.push(Envelope::from_bytes(&m.delivery.data).expect("an event")),
                None => {
                    assert!(
                        start.elapsed() < WAIT,
                        "{} of {n} events arrived",
                        out.len()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        out
    }

    /// Whether more events are waiting (after the expected ones were taken).
    async fn no_more_events(&self) -> bool {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = self.take(&self.events).await;
        got.is_none()
    }

    async fn close(self) {
        let _ = self.conn.close(200, "done".into()).await;
    }
}

async fn exclusive_queue(channel: &Channel) -> String {
    tests::events::exclusive_queue(channel)
        .await
        .expect("an exclusive queue")
}

/// A command envelope as another service builds it.
pub(crate) fn command(kind: &str, org: &str, payload: Value, credential: Option<&str>) -> Envelope {
    let org: Uuid = org.parse().expect("org id");
    let mut env = Envelope::new(kind, Some(org), &format!("hr-{}", Uuid::new_v4()), payload);
    env.credential = credential.map(str::to_owned);
    env
}

/// A `user.create` of `user_name` in `tenant`'s org, with an integration credential.
fn user_create(tenant: &Tenant, user_name: &str, credential: &str) -> Envelope {
    command(
        "user.create",
        &tenant.org_id,
        json!({"resource": create_user_body(user_name, "Id", "Em")}),
        Some(credential),
    )
}

/// `POST /admin/v1/integrations`; returns (id, credential).
async fn issue_credential(app: &TestApp, tenant: &Tenant, name: &str) -> (String, String) {
    let res = app
        .admin(
            Method::POST,
            "/admin/v1/integrations",
            &tenant.admin_key,
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(res.status(), 201, "issuing a credential");
    let body: Value = res.json().await.expect("JSON");
    (
        body["id"].as_str().expect("id").to_owned(),
        body["credential"].as_str().expect("credential").to_owned(),
    )
}

async fn text(app: &TestApp, sql: &str, values: Vec<sea_orm::Value>) -> Option<String> {
    let row = app
        .db
        .query_one_raw(common::db::stmt(sql, values))
        .await
        .expect("query")?;
    row.try_get_by_index::<Option<String>>(0).expect("text")
}

/// The org's users and groups as stored, ids and timestamps left out, as JSON text.
async fn stored_state(app: &TestApp, org: &str) -> String {
    let org: Uuid = org.parse().expect("org id");
    let users = text(
        app,
        "SELECT coalesce(json_agg(u ORDER BY u.user_name), '[]')::text FROM ( \
           SELECT user_name, external_id, active, display_name, given_name, family_name, email, \
                  resource, profile, version FROM users WHERE org_id = $1) u",
        vec![org.into()],
    )
    .await;
    let groups = text(
        app,
        "SELECT coalesce(json_agg(g ORDER BY g.display_name), '[]')::text FROM ( \
           SELECT display_name, external_id, resource, version, \
                  (SELECT count(*) FROM group_members m WHERE m.group_id = groups.id) AS members \
           FROM groups WHERE org_id = $1) g",
        vec![org.into()],
    )
    .await;
    format!(
        "users {} groups {}",
        users.unwrap_or_default(),
        groups.unwrap_or_default()
    )
}

/// A body or payload with this org's ids replaced by names, and creation and modification
/// times (which differ by nature) removed.
fn normalise(v: &Value, ids: &[(&str, &str)]) -> Value {
    let mut s = v.to_string();
    for (id, name) in ids {
        s = s.replace(id, name);
    }
    let mut v: Value = serde_json::from_str(&s).expect("JSON");
    strip_times(&mut v);
    v
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("created");
            m.remove("lastModified");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// One step of the lifecycle, sent by Okta over SCIM or by the service as a command.
#[derive(Clone, Copy, Debug)]
enum Step {
    CreateUser,
    ReplaceUser,
    PatchUser,
    CreateGroup,
    ReplaceGroup,
    PatchGroup,
    DeleteGroup,
    Deactivate,
    Reactivate,
    DeleteUser,
}

const STEPS: [Step; 10] = [
    Step::CreateUser,
    Step::ReplaceUser,
    Step::PatchUser,
    Step::CreateGroup,
    Step::ReplaceGroup,
    Step::PatchGroup,
    Step::DeleteGroup,
    Step::Deactivate,
    Step::Reactivate,
    Step::DeleteUser,
];

/// The bodies every path sends (built once: the Okta body has a random externalId).
struct Bodies {
    create: Value,
    replace: Value,
}

impl Bodies {
    fn new(user_name: &str) -> Self {
        let create = create_user_body(user_name, "Dee", "Ell");
        let mut replace = create.clone();
        replace["name"]["givenName"] = json!("Dana");
        replace["displayName"] = json!("Dana Ell");
        replace.as_object_mut().expect("object").remove("password");
        Self { create, replace }
    }
}

/// What a step sends: (SCIM method, SCIM path, SCIM body) and (command type, payload).
fn step_messages(
    step: Step,
    b: &Bodies,
    user: &str,
    group: &str,
) -> ((Method, String, Option<Value>), (&'static str, Value)) {
    let users = format!("/Users/{user}");
    let groups = format!("/Groups/{group}");
    let active = |on: bool| json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": on}}]});
    let family = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "name.familyName", "value": "Elle"}]});
    let group_body = |name: &str| json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": [{"value": user}]});
    let remove_member = json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": format!("members[value eq \"{user}\"]")}]});
    match step {
        Step::CreateUser => (
            (Method::POST, "/Users".into(), Some(b.create.clone())),
            ("user.create", json!({"resource": b.create})),
        ),
        Step::ReplaceUser => (
            (Method::PUT, users, Some(b.replace.clone())),
            (
                "user.replace",
                json!({"user_id": user, "resource": b.replace}),
            ),
        ),
        Step::PatchUser => (
            (Method::PATCH, users, Some(family.clone())),
            ("user.patch", json!({"user_id": user, "patch": family})),
        ),
        Step::CreateGroup => (
            (
                Method::POST,
                "/Groups".into(),
                Some(group_body("Engineering")),
            ),
            (
                "group.create",
                json!({"resource": group_body("Engineering")}),
            ),
        ),
        Step::ReplaceGroup => (
            (Method::PUT, groups, Some(group_body("Platform"))),
            (
                "group.replace",
                json!({"group_id": group, "resource": group_body("Platform")}),
            ),
        ),
        Step::PatchGroup => (
            (Method::PATCH, groups, Some(remove_member.clone())),
            (
                "group.patch",
                json!({"group_id": group, "patch": remove_member}),
            ),
        ),
        Step::DeleteGroup => (
            (Method::DELETE, groups, None),
            ("group.delete", json!({"group_id": group})),
        ),
        Step::Deactivate => (
            (Method::PATCH, users, Some(active(false))),
            ("user.deactivate", json!({"user_id": user})),
        ),
        Step::Reactivate => (
            (Method::PATCH, users, Some(active(true))),
            ("user.reactivate", json!({"user_id": user})),
        ),
        Step::DeleteUser => (
            (Method::DELETE, users, None),
            ("user.delete", json!({"user_id": user})),
        ),
    }
}

/// How a path answered a step: status and body (`None` for fire-and-forget).
type Answer = Option<(u16, Value)>;

async fn via_okta(
    okta: &ScimClient,
    (method, path, body): (Method, String, Option<Value>),
) -> Answer {
    let res = match body {
        Some(b) => okta.send_json(method, &path, &b).await,
        None => okta.request(method, &path).send().await.expect("SCIM call"),
    };
    let status = res.status().as_u16();
    let body = if status == 204 {
        Value::Null
    } else {
        res.json().await.expect("SCIM JSON")
    };
    Some((status, body))
}

/// The id a create made: from the answer, or (fire-and-forget) from the database.
async fn created_id(app: &TestApp, org: &str, answer: &Answer, table: &str, name: &str) -> String {
    if let Some((_, body)) = answer {
        return body["id"].as_str().expect("an id").to_owned();
    }
    let column = if table == "users" {
        "user_name"
    } else {
        "display_name"
    };
    let org: Uuid = org.parse().expect("org id");
    text(
        app,
        &format!("SELECT id::text FROM {table} WHERE org_id = $1 AND {column} = $2"),
        vec![org.into(), name.into()],
    )
    .await
    .expect("the created row")
}

/// One org's run of the lifecycle: the answers, the stored state after each step, and the
/// ids (to normalise with).
struct Run {
    answers: Vec<Answer>,
    states: Vec<String>,
    user: String,
    group: String,
}

impl Run {
    fn ids(&self) -> [(&str, &str); 2] {
        [
            (self.user.as_str(), "<user>"),
            (self.group.as_str(), "<group>"),
        ]
    }
}

/// Runs every step for one org: over SCIM (`okta`), or as commands with or without
/// `reply_to` (`bus`).
async fn run_lifecycle(
    app: &TestApp,
    org: &str,
    bodies: &Bodies,
    user_name: &str,
    okta: Option<&ScimClient>,
    bus: Option<(&mut Service, &str, bool)>,
) -> Run {
    let mut bus = bus;
    let mut run = Run {
        answers: Vec::new(),
        states: Vec::new(),
        user: Uuid::nil().to_string(),
        group: Uuid::nil().to_string(),
    };
    for step in STEPS {
        let (scim, (kind, payload)) = step_messages(step, bodies, &run.user, &run.group);
        let answer = match (okta, bus.as_mut()) {
            (Some(okta), _) => via_okta(okta, scim).await,
            (None, Some((service, credential, reply))) => {
                let env = command(kind, org, payload, Some(*credential));
                if *reply {
                    match service.call(&env).await {
                        Reply::Ok { status, body } => Some((status, body)),
                        Reply::Error { status, detail, .. } => {
                            panic!("{step:?} failed with {status}: {detail}")
                        }
                    }
                } else {
                    service.send(&env, false).await;
                    let done = format!(
                        "SELECT count(*) FROM processed_commands WHERE command_id = '{}'",
                        env.id
                    );
                    assert_eq!(app.wait_count(&done, 1, WAIT).await, 1, "{step:?} applied");
                    None
                }
            }
            (None, None) => unreachable!("a path"),
        };
        match step {
            Step::CreateUser => {
                run.user = created_id(app, org, &answer, "users", user_name).await;
            }
            Step::CreateGroup => {
                run.group = created_id(app, org, &answer, "groups", "Engineering").await;
            }
            _ => {}
        }
        let mut state = stored_state(app, org).await;
        for (id, name) in run.ids() {
            state = state.replace(id, name);
        }
        run.states.push(state);
        run.answers.push(answer);
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_another_service_match_oktas_calls() {
    let app = TestApp::spawn().await;
    let mut service = Service::connect(&app, "#").await;
    let okta = app.tenant("Okta").await;
    let rpc = app.tenant("Rpc").await;
    let fire = app.tenant("Fire").await;
    let (_, rpc_credential) = issue_credential(&app, &rpc, "HR sync").await;
    let (_, fire_credential) = issue_credential(&app, &fire, "HR sync").await;
    let user_name = app.email("dee");
    let bodies = Bodies::new(&user_name);

    let by_okta = run_lifecycle(
        &app,
        &okta.org_id,
        &bodies,
        &user_name,
        Some(&okta.scim),
        None,
    )
    .await;
    let by_rpc = run_lifecycle(
        &app,
        &rpc.org_id,
        &bodies,
        &user_name,
        None,
        Some((&mut service, &rpc_credential, true)),
    )
    .await;
    let by_fire = run_lifecycle(
        &app,
        &fire.org_id,
        &bodies,
        &user_name,
        None,
        Some((&mut service, &fire_credential, false)),
    )
    .await;

    for (i, step) in STEPS.iter().enumerate() {
        // The reply is what the HTTP answer was.
        let (okta_status, okta_body) = by_okta.answers[i].clone().expect("an HTTP answer");
        let (rpc_status, rpc_body) = by_rpc.answers[i].clone().expect("a reply");
        assert_eq!(rpc_status, okta_status, "{step:?}: status");
        assert_eq!(
            normalise(&rpc_body, &by_rpc.ids()),
            normalise(&okta_body, &by_okta.ids()),
            "{step:?}: reply body"
        );
        // The stored state after each step is the same on all three paths.
        assert_eq!(
            by_rpc.states[i], by_okta.states[i],
            "{step:?}: state (reply_to)"
        );
        assert_eq!(
            by_fire.states[i], by_okta.states[i],
            "{step:?}: state (no reply_to)"
        );
    }
    assert!(
        by_okta.states[8].contains("\"active\":true"),
        "{}",
        by_okta.states[8]
    );
    assert!(
        by_okta.states[7].contains("\"active\":false"),
        "{}",
        by_okta.states[7]
    );

    // The same events, in the same order, on every path.
    let total = app.count("SELECT count(*) FROM outbox").await;
    assert_eq!(total, 30, "ten events per org");
    let events = service.events(30).await;
    assert!(service.no_more_events().await);
    let of = |org: &str, run: &Run| -> Vec<(String, Value)> {
        events
            .iter()
            .filter(|e| e.org_id.map(|o| o.to_string()).as_deref() == Some(org))
            .map(|e| (e.kind.clone(), normalise(&e.payload, &run.ids())))
            .collect()
    };
    let okta_events = of(&okta.org_id, &by_okta);
    let kinds: Vec<&str> = okta_events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user.created",
            "user.updated",
            "user.updated",
            "group.created",
            "group.updated",
            "group.updated",
            "group.deleted",
            "user.deactivated",
            "user.reactivated",
            "user.deleted"
        ]
    );
    assert_eq!(of(&rpc.org_id, &by_rpc), okta_events, "events (reply_to)");
    assert_eq!(
        of(&fire.org_id, &by_fire),
        okta_events,
        "events (no reply_to)"
    );
    // The activity log names who did it.
    let integration_actions = app
        .count("SELECT count(*) FROM audit_log WHERE actor = 'integration'")
        .await;
    assert_eq!(integration_actions, 20);
    service.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_has_one_effect() {
    let app = TestApp::spawn().await;
    let mut service = Service::connect(&app, "user.*").await;
    let hr = app.tenant("Acme").await;
    let (_, credential) = issue_credential(&app, &hr, "HR sync").await;
    let create = |name: &str| user_create(&hr, name, &credential);

    // With reply_to, twice: the second reply is the stored first one.
    let first = create(&app.email("twice"));
    let a = service.call(&first).await;
    let b = service.call(&first).await;
    assert_eq!(a.status(), 201);
    assert_eq!(a, b, "the stored reply");
    // Without reply_to, twice (even at once); then once more with reply_to, which is
    // answered from the stored result.
    let second = create(&app.email("fire"));
    service.send(&second, false).await;
    service.send(&second, false).await;
    let c = service.call(&second).await;
    let Reply::Ok { status: 201, body } = &c else {
        panic!("stored create reply: {c:?}")
    };
    let id = body["id"].as_str().expect("id");
    // A deactivation published twice bumps the version once.
    let off = command(
        "user.deactivate",
        &hr.org_id,
        json!({"user_id": id}),
        Some(&credential),
    );
    service.send(&off, false).await;
    assert_eq!(service.call(&off).await.status(), 200);

    for name in ["twice", "fire"] {
        assert_eq!(users_named(&app, name).await, 1, "one {name} user");
    }
    let version = format!("SELECT version FROM users WHERE id = '{id}'");
    assert_eq!(app.count(&version).await, 2);
    let events = service.events(3).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["user.created", "user.created", "user.deactivated"]);
    assert!(service.no_more_events().await, "no second effect");
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 3);
    service.close().await;
    app.stop().await;
}

/// A message published twice at once can come twice in one batch: its id is claimed
/// once, it is applied once, and both deliveries get the first one's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_twice_in_one_batch_is_applied_once() {
    let (app, hr, credential) = app_with_hr_sync().await;
    let create = |name: &str| user_create(&hr, name, &credential);
    let twice = create(&app.email("twice"));
    let envs = [twice.clone(), create(&app.email("other")), twice.clone()];
    let batch = apply_as_one_batch(&app, &envs).await;
    assert!(batch.error.is_none(), "{:?}", batch.error);
    let statuses: Vec<u16> = batch.settled.iter().map(|a| a.reply.status()).collect();
    assert_eq!(statuses, [201, 201, 201]);
    assert_eq!(
        batch.settled[0].reply, batch.settled[2].reply,
        "the stored reply"
    );
    assert_eq!(users_named(&app, "twice").await, 1, "one user");
    let claims = format!(
        "SELECT count(*) FROM processed_commands WHERE command_id = '{}' AND reply IS NOT NULL",
        twice.id
    );
    assert_eq!(app.count(&claims).await, 1, "one claim, with its reply");
    assert_eq!(
        user_created_events(&app, &hr.org_id).await,
        2,
        "one event each"
    );
    app.stop().await;
}

/// A command that meets a database error mid-batch: nothing of it or the commands after
/// it is committed (they are left to be applied one by one), and the commands before it
/// are applied and answered. Creates that came one after another are written together
/// (`users::create_run`): those of its run that came before it are left with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_mid_batch_keeps_only_the_commands_before_it() {
    let (app, hr, credential) = app_with_hr_sync().await;
    // This test's own database refuses one user name with an error (not a refusal).
    for sql in [
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.user_name LIKE 'boom%' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER boom BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION boom()",
    ] {
        app.db.execute_unprepared(sql).await.expect("trigger");
    }
    let envs = [
        user_create(&hr, &app.email("before"), &credential),
        command(
            "group.create",
            &hr.org_id,
            json!({"resource": {"schemas": [GROUP_SCHEMA], "displayName": "Before"}}),
            Some(&credential),
        ),
        user_create(&hr, &app.email("ahead"), &credential),
        user_create(&hr, &app.email("boom"), &credential),
        user_create(&hr, &app.email("after"), &credential),
    ];
    let batch = apply_as_one_batch(&app, &envs).await;
    let statuses: Vec<u16> = batch.settled.iter().map(|a| a.reply.status()).collect();
    assert_eq!(statuses, [201, 201], "only the commands before its run");
    let error = batch.error.expect("the error of the run").to_string();
    assert!(error.contains("boom"), "{error}");
    for (name, n) in [("before", 1), ("ahead", 0), ("boom", 0), ("after", 0)] {
        assert_eq!(users_named(&app, name).await, n, "{name}");
    }
    let ids: Vec<String> = envs.iter().map(|e| format!("'{}'", e.id)).collect();
    let claims = format!(
        "SELECT count(*) FROM processed_commands WHERE command_id IN ({})",
        ids.join(", ")
    );
    assert_eq!(
        app.count(&claims).await,
        2,
        "only the applied commands' ids"
    );
    assert_eq!(
        user_created_events(&app, &hr.org_id).await,
        1,
        "only its event"
    );
    app.stop().await;
}

/// A fresh app, its tenant "Acme" and that tenant's "HR sync" integration credential.
async fn app_with_hr_sync() -> (TestApp, Tenant, String) {
    let app = TestApp::spawn().await;
    let hr = app.tenant("Acme").await;
    let (_, credential) = issue_credential(&app, &hr, "HR sync").await;
    (app, hr, credential)
}

/// How many users are named `app.email(local)`.
async fn users_named(app: &TestApp, local: &str) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM users WHERE user_name = '{}'",
        app.email(local)
    );
    app.count(&sql).await
}

/// How many `user.created` events the outbox holds for the organisation `org`.
async fn user_created_events(app: &TestApp, org: &str) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM outbox WHERE org_id = '{org}' AND routing_key = 'user.created'"
    );
    app.count(&sql).await
}

/// Applies `envs` as one batch straight through the worker's library (no broker).
pub(crate) async fn apply_as_one_batch(app: &TestApp, envs: &[Envelope]) -> worker::apply::Batch {
    let cmds: Vec<Command> = envs
        .iter()
        .map(|e| Command::from_envelope(e).expect("decodes"))
        .collect();
    let items: Vec<Item> = envs
        .iter()
        .zip(&cmds)
        .map(|(env, cmd)| Item { env, cmd })
        .collect();
    let ctx = ApplyContext {
        scim_base: format!("{}/scim/v2", app.base),
        prefix: app.settings.amqp_prefix.clone(),
    };
    worker::apply::apply_batch(&app.db, &ctx, &items)
        .await
        .expect("the batch ends")
}

/// The reasons of the dead-lettered messages, by message id.
async fn dead_letters(service: &Service, n: usize) -> HashMap<String, String> {
    let start = Instant::now();
    loop {
        let listing = dlq::list(&service.conn, &service.topology, 100)
            .await
            .expect("dlq list");
        if listing.messages.len() >= n || start.elapsed() > WAIT {
            return listing
                .messages
                .into_iter()
                .map(|m| (m.id, m.reason))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a refused command could have changed.
async fn footprint(app: &TestApp) -> [i64; 4] {
    [
        app.count("SELECT count(*) FROM users").await,
        app.count("SELECT count(*) FROM outbox").await,
        app.count("SELECT count(*) FROM audit_log").await,
        app.count("SELECT coalesce(sum(version), 0)::bigint FROM users")
            .await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorised_or_invalid_commands_are_dead_lettered_with_their_reason() {
    let app = TestApp::spawn().await;
    let mut service = Service::connect(&app, "#").await;
    let acme = app.tenant("Acme").await;
    let globex = app.tenant("Globex").await;
    let (_, acme_credential) = issue_credential(&app, &acme, "HR sync").await;
    let (revoked_id, revoked) = issue_credential(&app, &acme, "old badge system").await;
    let res = app
        .admin_delete(
            &format!("/admin/v1/integrations/{revoked_id}"),
            &acme.admin_key,
        )
        .await;
    assert_eq!(res.status(), 204);
    // A user of Globex that Acme's service will try to reach.
    let res = globex
        .scim
        .post_user(&create_user_body(&app.email("globex"), "Glo", "Bex"))
        .await;
    assert_eq!(res.status(), 201);
    let globex_user = res.json::<Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = footprint(&app).await;

    let new_user = |name: &str| json!({"resource": create_user_body(&app.email(name), "N", "O")});
    let acme_org = acme.org_id.as_str();
    let cases: Vec<(Envelope, &str)> = vec![
        (
            command(
                "user.create",
                acme_org,
                new_user("bad"),
                Some("rst_int_not-a-credential"),
            ),
            "integration credential refused",
        ),
        (
            command("user.create", acme_org, new_user("revoked"), Some(&revoked)),
            "integration credential refused",
        ),
        (
            command(
                "user.create",
                &globex.org_id,
                new_user("cross"),
                Some(&acme_credential),
            ),
            "integration credential refused",
        ),
        (
            command("user.create", acme_org, new_user("anon"), None),
            "unauthenticated: commands from other services need an integration credential",
        ),
        (
            command(
                "provisioning.set",
                acme_org,
                json!({"enabled": false}),
                Some(&acme_credential),
            ),
            "provisioning.set is not open to integrations",
        ),
        (
            command(
                "user.explode",
                acme_org,
                new_user("boom"),
                Some(&acme_credential),
            ),
            "unknown command type \"user.explode\"",
        ),
        (
            command(
                "user.create",
                acme_org,
                json!({"resource": 5}),
                Some(&acme_credential),
            ),
            "command failed: 400 invalidSyntax: a User must be a JSON object",
        ),
        (
            command(
                "user.create",
                acme_org,
                json!({"resourse": {}}),
                Some(&acme_credential),
            ),
            "undecodable message: user.create payload: missing field `resource`",
        ),
        (
            command(
                "user.create",
                acme_org,
                json!({"resource": {"name": {"givenName": "No"}}}),
                Some(&acme_credential),
            ),
            "command failed: 400 invalidValue: userName is required",
        ),
        (
            // PostgreSQL cannot store a NUL: refused as invalid, not a database failure.
            command(
                "user.create",
                acme_org,
                json!({"resource": {"userName": "nul\u{0}@example.com"}}),
                Some(&acme_credential),
            ),
            "command failed: 400 invalidValue: a NUL character",
        ),
        (
            command(
                "user.deactivate",
                acme_org,
                json!({"user_id": globex_user}),
                Some(&acme_credential),
            ),
            "command failed: 404: User",
        ),
    ];
    for (env, _) in &cases {
        service.send(env, false).await;
    }
    // A body that is not even an envelope.
    let junk_props = lapin::BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id("junk-1".into());
    service
        .send_raw("user.create", b"{\"not\": \"an envelope\"", junk_props)
        .await;

    let reasons = dead_letters(&service, cases.len() + 1).await;
    assert_eq!(reasons.len(), cases.len() + 1, "{reasons:#?}");
    for (env, reason) in &cases {
        let got = reasons.get(&env.id.to_string()).map(String::as_str);
        assert!(
            got.is_some_and(|r| r.starts_with(reason)),
            "{}: {got:?} should start with {reason:?}",
            env.kind
        );
    }
    assert!(
        reasons["junk-1"].starts_with("undecodable message: envelope"),
        "{}",
        reasons["junk-1"]
    );
    // A dead letter keeps no credential, live or not: only its hint, in a header.
    for (env, _) in &cases {
        let shown = dlq::show(&service.conn, &service.topology, &env.id.to_string())
            .await
            .expect("dlq show")
            .expect("dead-lettered");
        let body = String::from_utf8_lossy(&shown.body);
        assert!(!body.contains("rst_int_"), "{}: {body}", env.kind);
    }
    // And Roster does not replay another service's command as its own.
    let credentialed = cases
        .iter()
        .find(|(env, _)| env.credential.is_some())
        .map(|(env, _)| env.id.to_string())
        .expect("a case with a credential");
    let report = dlq::replay(
        &service.conn,
        &service.topology,
        &dlq::Selection::Id(credentialed.clone()),
    )
    .await
    .expect("dlq replay");
    assert!(report.replayed.is_empty(), "{:?}", report.replayed);
    assert!(
        report
            .skipped
            .iter()
            .any(|(id, why)| *id == credentialed && why.contains("integration")),
        "{:?}",
        report.skipped
    );

    // With reply_to, the publisher hears why at once.
    let anon = command("user.create", acme_org, new_user("anon2"), None);
    let Reply::Error { status, detail, .. } = service.call(&anon).await else {
        panic!("refused")
    };
    assert_eq!(
        (status, detail.as_str()),
        (
            401,
            "unauthenticated: commands from other services need an integration credential"
        )
    );
    let cross = command(
        "user.create",
        &globex.org_id,
        new_user("cross2"),
        Some(&acme_credential),
    );
    let Reply::Error { status, detail, .. } = service.call(&cross).await else {
        panic!("refused")
    };
    assert_eq!(
        (status, detail.as_str()),
        (401, "integration credential refused")
    );
    let admin = command(
        "settings.update",
        acme_org,
        json!({"send_invites": false}),
        Some(&acme_credential),
    );
    assert_eq!(service.call(&admin).await.status(), 403);
    // Another org's user id is simply not found.
    let reach = command(
        "user.patch",
        acme_org,
        json!({"user_id": globex_user, "patch": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Owned"}]}}),
        Some(&acme_credential),
    );
    assert_eq!(service.call(&reach).await.status(), 404);
    // An answered failure is not dead-lettered: the publisher has it.
    assert_eq!(dead_letters(&service, 0).await.len(), cases.len() + 1 + 3);

    // A refused command whose reply_to names one of Roster's own queues is not answered
    // there: the reply would be published as Roster's broker user.
    let sneaky = command("user.create", acme_org, new_user("sneaky"), None);
    let props = lapin::BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(sneaky.id.to_string().into())
        .with_reply_to(service.topology.dead_letter_queue().into());
    service
        .send_raw("user.create", &sneaky.to_bytes(), props)
        .await;
    dead_letters(&service, cases.len() + 1 + 3 + 1).await;
    // A reply would follow the dead letter at once (it is sent once that is confirmed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let letters = dead_letters(&service, 0).await;
    assert_eq!(
        letters.len(),
        cases.len() + 1 + 3 + 1,
        "the refused command, and no reply beside it: {letters:#?}"
    );

    // Nothing changed: no user, event or audit entry; Globex's user untouched.
    assert_eq!(footprint(&app).await, before);
    let globex_after = globex.scim.get_user(&globex_user).await;
    let globex_after: Value = globex_after.json().await.expect("JSON");
    assert_eq!(globex_after["active"], true);
    assert_eq!(globex_after["displayName"], "Glo Bex");
    assert_eq!(globex_after["meta"]["version"], "W/\"1\"");

    // Refusals are counted by reason.
    let handle = common::metrics::install();
    let metrics = common::metrics::render(&handle);
    let prefix = format!("prefix=\"{}\"", app.settings.amqp_prefix);
    let refused = |reason: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("roster_commands_refused_total{"))
            .filter(|l| l.contains(&prefix) && l.contains(&format!("reason=\"{reason}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(refused("credential"), 4.0, "{metrics}");
    assert_eq!(refused("unauthenticated"), 3.0);
    assert_eq!(refused("not_public"), 2.0);
    assert_eq!(refused("unknown_type"), 1.0);
    assert_eq!(refused("invalid"), 2.0);
    service.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_users_events_arrive_in_version_order_under_concurrent_commands() {
    let app = TestApp::spawn().await;
    let mut service = Service::connect(&app, "user.*").await;
    let hr = app.tenant("Acme").await;
    // Twelve deactivations of six people at once: churn, not a mass deprovisioning.
    let res = app
        .put_settings(
            &hr.admin_key,
            json!({"deprovision_guard": {"enabled": false}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, credential) = issue_credential(&app, &hr, "HR sync").await;
    let mut users = Vec::new();
    for i in 0..6 {
        let env = command(
            "user.create",
            &hr.org_id,
            json!({"resource": create_user_body(&app.email(&format!("u{i}")), "U", &format!("N{i}"))}),
            Some(&credential),
        );
        let Reply::Ok { body, .. } = service.call(&env).await else {
            panic!("created")
        };
        users.push(body["id"].as_str().expect("id").to_owned());
    }
    // Eight rounds of mixed changes to every user, all published at once.
    let mut load = Vec::new();
    for round in 0..8 {
        for user in &users {
            let (kind, payload) = match round % 4 {
                0 => ("user.deactivate", json!({"user_id": user})),
                1 => ("user.reactivate", json!({"user_id": user})),
                2 => (
                    "user.patch",
                    json!({"user_id": user, "patch": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": format!("T{round}")}]}}),
                ),
                _ => (
                    "user.patch",
                    json!({"user_id": user, "patch": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "nickName", "value": format!("N{round}")}]}}),
                ),
            };
            load.push(command(kind, &hr.org_id, payload, Some(&credential)));
        }
    }
    join_all(load.iter().map(|env| service.send(env, true))).await;
    for env in &load {
        let reply = service.reply(&env.id.to_string()).await;
        assert_eq!(reply.status(), 200, "{}", env.kind);
    }
    let total = app
        .count("SELECT count(*) FROM outbox WHERE routing_key LIKE 'user.%'")
        .await;
    assert!(total > 6 + 6 * 4, "{total} events");
    let events = service.events(usize::try_from(total).expect("count")).await;
    let mut last: HashMap<String, i64> = HashMap::new();
    for e in &events {
        let user = e.payload["user_id"].as_str().expect("user_id").to_owned();
        let version = e.payload["version"].as_i64().expect("version");
        let prev = last.insert(user.clone(), version).unwrap_or(0);
        assert!(version > prev, "{user}: version {version} after {prev}");
    }
    for user in &users {
        let stored = app
            .count(&format!("SELECT version FROM users WHERE id = '{user}'"))
            .await;
        assert_eq!(last[user], stored, "the last event has the stored version");
    }
    service.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_issue_list_and_revoke_integration_credentials() {
    let app = TestApp::spawn().await;
    let mut service = Service::connect(&app, "user.*").await;
    let acme = app.tenant("Acme").await;
    let globex = app.tenant("Globex").await;
    let (id, credential) = issue_credential(&app, &acme, "HR sync").await;
    assert!(credential.starts_with("rst_int_"), "{credential}");
    let (other_id, _) = issue_credential(&app, &acme, "Badges").await;

    // Listed newest first, with a hint and never the credential.
    let res = app
        .admin(Method::GET, "/admin/v1/integrations", &acme.admin_key, None)
        .await;
    assert_eq!(res.status(), 200);
    let listed = res.text().await.expect("body");
    assert!(!listed.contains(&credential), "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed[0]["id"], other_id.as_str());
    assert_eq!(listed[1]["id"], id.as_str());
    assert_eq!(listed[1]["name"], "HR sync");
    assert_eq!(
        listed[1]["hint"],
        format!("…{}", &credential[credential.len() - 4..])
    );
    assert!(listed[1]["revoked_at"].is_null());
    assert!(listed[1].get("credential").is_none());
    // Another org sees none of them, and cannot revoke them.
    let res = app
        .admin(
            Method::GET,
            "/admin/v1/integrations",
            &globex.admin_key,
            None,
        )
        .await;
    assert_eq!(res.json::<Value>().await.expect("JSON"), json!([]));
    let res = app
        .admin_delete(&format!("/admin/v1/integrations/{id}"), &globex.admin_key)
        .await;
    assert_eq!(res.status(), 404);
    for bad in ["not-a-uuid", &Uuid::new_v4().to_string()] {
        let res = app
            .admin_delete(&format!("/admin/v1/integrations/{bad}"), &acme.admin_key)
            .await;
        assert_eq!(res.status(), 404, "{bad}");
    }
    for body in [
        json!({"name": ""}),
        json!({"name": "x", "extra": 1}),
        json!({}),
    ] {
        let res = app
            .admin(
                Method::POST,
                "/admin/v1/integrations",
                &acme.admin_key,
                Some(body.clone()),
            )
            .await;
        assert_eq!(res.status(), 400, "{body}");
    }
    let res = app
        .admin(
            Method::GET,
            "/admin/v1/integrations",
            &acme.scim.token,
            None,
        )
        .await;
    assert_eq!(res.status(), 401, "a SCIM token is not an admin key");

    // Stored only as a digest.
    let rows = text(
        &app,
        "SELECT json_agg(c)::text FROM integration_credentials c",
        vec![],
    )
    .await
    .expect("rows");
    assert!(!rows.contains(&credential), "{rows}");
    assert!(rows.contains(common::secret::TokenHash::of(&credential).as_str()));

    // The credential works; revoked, it is refused at once.
    let create = |name: &str| {
        command(
            "user.create",
            &acme.org_id,
            json!({"resource": create_user_body(&app.email(name), "R", "V")}),
            Some(&credential),
        )
    };
    assert_eq!(service.call(&create("before")).await.status(), 201);
    let res = app
        .admin_delete(&format!("/admin/v1/integrations/{id}"), &acme.admin_key)
        .await;
    assert_eq!(res.status(), 204);
    let Reply::Error { status, detail, .. } = service.call(&create("after")).await else {
        panic!("a revoked credential is refused")
    };
    assert_eq!(
        (status, detail.as_str()),
        (401, "integration credential refused")
    );
    assert_eq!(users_named(&app, "after").await, 0);
    // Revoking again is harmless; the list shows when it was revoked.
    let res = app
        .admin_delete(&format!("/admin/v1/integrations/{id}"), &acme.admin_key)
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .admin(Method::GET, "/admin/v1/integrations", &acme.admin_key, None)
        .await;
    let listed: Value = res.json().await.expect("JSON");
    assert!(listed[1]["revoked_at"].is_string(), "{listed}");
    assert!(listed[0]["revoked_at"].is_null(), "{listed}");
    // The activity log shows both, with the hint and never the credential.
    let res = app
        .admin(Method::GET, "/admin/v1/activity", &acme.admin_key, None)
        .await;
    let activity = res.text().await.expect("body");
    assert!(!activity.contains(&credential));
    assert!(activity.contains("integration.created"));
    assert!(activity.contains("integration.revoked"));
    service.close().await;
    app.stop().await;
}
