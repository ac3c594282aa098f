//! Invites reach only people in the directory (docs/reliability.md, "Invites"): none for a
//! person created inactive until they are activated; none for one deactivated before the
//! send until they are reactivated; accepting needs an active person; and a send the SMTP
//! server took but whose answer was lost is sent again with the same link and Message-ID;
//! a greylisted one is tried again without holding up the invites behind it.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tests::{
    harness::{Tenant, TestApp},
    okta::create_user_body,
    proxy::{DropAfterData, Greylist},
};

const MAIL_WAIT: Duration = Duration::from_secs(20);

fn set_active(active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": active}}]
    })
}

async fn create(t: &Tenant, user_name: &str, active: bool) -> String {
    let mut body = create_user_body(user_name, "Ines", "Okafor");
    body["active"] = json!(active);
    let res = t.scim.post_user(&body).await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.expect("user JSON");
    v["id"].as_str().expect("id").to_owned()
}

async fn activate(t: &Tenant, id: &str, active: bool) {
    let res = t
        .scim
        .send_json(Method::PATCH, &format!("/Users/{id}"), &set_active(active))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_created_inactive_is_invited_once_when_activated() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let ann = app.email("ann");
    let id = create(&acme, &ann, false).await;
    // A marker that the mailer is working: an active person's invite arrives.
    let bob = app.email("bob");
    create(&acme, &bob, true).await;
    assert_eq!(app.maildev.wait_for(&bob, 1, MAIL_WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        app.maildev.to(&ann).await.is_empty(),
        "an inactive person got an invite"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM invites").await,
        1,
        "no invite is due to an inactive person"
    );

    activate(&acme, &id, true).await;
    let mails = app.maildev.wait_for(&ann, 1, MAIL_WAIT).await;
    assert_eq!(mails.len(), 1);
    // Deactivating and reactivating again sends nothing more.
    activate(&acme, &id, false).await;
    activate(&acme, &id, true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.maildev.to(&ann).await.len(), 1, "exactly one invite");
    let link = mails[0].invite_link().expect("link");
    let res = app.http.post(&link).send().await.expect("accept");
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_deactivated_before_the_send_gets_the_invite_only_when_reactivated() {
    let mut app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    app.stop_mailer().await;
    let cy = app.email("cy");
    let id = create(&acme, &cy, true).await;
    activate(&acme, &id, false).await;
    app.start_mailer().await;
    // The mailer reads the created event, finds the person inactive and sends nothing.
    app.wait_count(
        "SELECT count(*) FROM invites WHERE sent_at IS NULL",
        1,
        Duration::from_secs(5),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        app.maildev.to(&cy).await.is_empty(),
        "an inactive person got an invite"
    );

    activate(&acme, &id, true).await;
    let mails = app.maildev.wait_for(&cy, 1, MAIL_WAIT).await;
    assert_eq!(mails.len(), 1);
    let link = mails[0].invite_link().expect("link");

    // Deactivated again, the link shows why it cannot be accepted, and accepts nothing.
    activate(&acme, &id, false).await;
    let res = app.http.post(&link).send().await.expect("accept");
    assert_eq!(res.status(), 403);
    app.assert_none("SELECT count(*) FROM invites WHERE accepted_at IS NOT NULL")
        .await;
    activate(&acme, &id, true).await;
    let res = app.http.post(&link).send().await.expect("accept");
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_whose_smtp_answer_was_lost_is_resent_with_the_same_link() {
    let mut app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    app.stop_mailer().await;
    let relay = DropAfterData::start(&app.smtp_upstream()).await;
    app.start_mailer_via(&relay.url()).await;

    let dee = app.email("dee");
    create(&acme, &dee, true).await;
    // The server took the first copy; the mailer saw a reset and sent again.
    let mails = app.maildev.wait_for(&dee, 2, MAIL_WAIT).await;
    assert_eq!(mails.len(), 2, "the first send and its retry");
    let first = mails[0].invite_link().expect("first link");
    let second = mails[1].invite_link().expect("second link");
    assert_eq!(first, second, "a resend carries the first link");
    let mut ids = Vec::new();
    let all: Vec<Value> = app
        .http
        .get(format!("{}/api/email", app.maildev.base()))
        .send()
        .await
        .expect("MailDev")
        .json()
        .await
        .expect("MailDev JSON");
    for m in all.iter().filter(|m| m["to"].to_string().contains(&dee)) {
        let source = app
            .http
            .get(format!(
                "{}/api/email/{}/source",
                app.maildev.base(),
                m["id"].as_str().unwrap_or_default()
            ))
            .send()
            .await
            .expect("MailDev source")
            .text()
            .await
            .expect("source");
        let id = source
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID:").map(|v| v.trim().to_owned()));
        ids.push(id.expect("a Message-ID header"));
    }
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "the same Message-ID on every send");
    let res = app.http.post(&first).send().await.expect("accept");
    assert_eq!(res.status(), 200, "the first mail's link works");
    app.stop().await;
}

/// A recipient's server answers `451` (greylisting): the mailer tries that invite again
/// after pauses, in a task of its own, so the invites created meanwhile go out at once
/// rather than after its pauses (the tests' mailer has one sender); once the greylisting
/// lifts, the person gets their one mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greylisted_invite_is_tried_again_without_holding_up_the_others() {
    let mut app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    app.stop_mailer().await;
    let grey = app.email("grey");
    let relay = Greylist::start(&app.smtp_upstream(), &grey).await;
    app.start_mailer_via(&relay.url()).await;

    create(&acme, &grey, true).await;
    let start = Instant::now();
    while relay.refused() == 0 {
        assert!(
            start.elapsed() < MAIL_WAIT,
            "the greylisted invite was never tried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its tries in process: this one, then four more after pauses of at least 0.2, 0.4,
    // 0.8 and 1.6 s (`common::retry::smtp_transient`), so the fifth comes 3 s or more
    // after the first. A sender held by them would send the others only after it.
    let others: Vec<String> = (0..4).map(|n| app.email(&format!("next{n}"))).collect();
    futures_util::future::join_all(others.iter().map(|p| create(&acme, p, true))).await;
    // Timed at the relay, as each message passes it: how quickly MailDev lists what it
    // holds (every test's mail, in CI) is no part of this.
    let start = Instant::now();
    while relay.forwarded().len() < others.len() {
        assert!(
            start.elapsed() < MAIL_WAIT,
            "the others' invites never went out: {:?}",
            relay.forwarded()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let forwarded = relay.forwarded();
    assert!(
        forwarded.iter().all(|&refused| refused < 5),
        "the others went out only after the greylisted invite's tries: refusals by each: {forwarded:?}"
    );
    for p in &others {
        assert_eq!(app.maildev.wait_for(p, 1, MAIL_WAIT).await.len(), 1, "{p}");
    }
    assert!(app.maildev.to(&grey).await.is_empty());

    relay.lift();
    assert_eq!(app.maildev.wait_for(&grey, 1, MAIL_WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        app.maildev.to(&grey).await.len(),
        1,
        "one mail, once lifted"
    );
    for p in &others {
        assert_eq!(app.maildev.to(p).await.len(), 1, "{p}: one mail");
    }
    app.stop().await;
}
