//! Exactly one invite per created person, a link that accepts it once and expires, none
//! for a 409 and none when the org turned invites off (DESIGN invariant 9); names and
//! addresses that try to inject headers or markup into the email get nowhere.

use common::{
    amqp::{Publisher, Topology},
    messages::Envelope,
};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use std::time::Duration;
use tests::{harness::TestApp, okta::create_user_body};

const MAIL_WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_created_person_gets_exactly_one_invite_that_accepts() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme Corp").await;
    let people: Vec<String> = (0..3).map(|i| app.email(&format!("person{i}"))).collect();
    for p in &people {
        acme.scim.create_user_201(p, "Pat", "Lee").await;
    }
    // A duplicate sends nothing.
    assert_eq!(
        acme.scim
            .post_user(&create_user_body(&people[0].to_uppercase(), "Pat", "Lee"))
            .await
            .status(),
        409
    );

    for p in &people {
        let mails = app.maildev.wait_for(p, 1, MAIL_WAIT).await;
        assert_eq!(mails.len(), 1, "invites to {p}");
        let mail = &mails[0];
        assert!(
            mail.subject.contains("Acme Corp"),
            "subject {:?}",
            mail.subject
        );
        assert!(mail.html.contains("/invite/"), "HTML part has the link");
        let link = mail.invite_link().expect("a link in the text part");
        assert!(
            link.starts_with(&format!("{}/invite/rst_inv_", app.base)),
            "{link}"
        );

        // Opening the link only shows a button; pressing it (a POST) accepts.
        let res = app.http.get(&link).send().await.expect("GET invite");
        assert_eq!(res.status(), 200);
        assert!(
            res.text()
                .await
                .expect("page")
                .contains("Accept the invite")
        );
        let res = app.http.post(&link).send().await.expect("POST invite");
        assert_eq!(res.status(), 200);
        assert!(res.text().await.expect("page").contains("Invite accepted"));
    }
    assert_eq!(
        app.count("SELECT count(*) FROM invites WHERE accepted_at IS NOT NULL")
            .await,
        3
    );
    assert_eq!(
        app.count("SELECT count(*) FROM invites WHERE sent_at IS NOT NULL")
            .await,
        3
    );
    // Accepting went through the worker (an audited command).
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'invite.accepted'")
            .await,
        3
    );

    // Give a stray second invite time to show up, then check there is none.
    let late = app.email("sentinel");
    acme.scim.create_user_201(&late, "S", "T").await;
    assert_eq!(app.maildev.wait_for(&late, 1, MAIL_WAIT).await.len(), 1);
    for p in &people {
        assert_eq!(
            app.maildev.to(p).await.len(),
            1,
            "exactly one invite to {p}"
        );
    }
    let bogus = app
        .http
        .get(format!("{}/invite/rst_inv_bogus", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(bogus.status(), 404);
    // Invite tokens are stored only as digests.
    app.assert_none("SELECT count(*) FROM invites WHERE token_hash LIKE 'rst_%'")
        .await;
    app.stop().await;
}

/// The mailer sends a backlog in batches (one transaction locks a batch's invites across
/// its SMTP exchanges): each person gets one mail, even when a copy of their event (as a
/// redelivery brings) is in the same batch or a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_goes_out_in_batches_with_one_mail_each_despite_copies_of_its_events() {
    let mut app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    app.stop_mailer().await;
    let people: Vec<String> = (0..9).map(|i| app.email(&format!("backlog{i}"))).collect();
    for p in &people {
        acme.scim.create_user_201(p, "Pat", "Lee").await;
    }
    app.wait_count(
        "SELECT count(*) FROM outbox WHERE routing_key = 'user.created' AND published_at IS NOT NULL",
        9,
        MAIL_WAIT,
    )
    .await;
    // The queue holds each event twice in a row, as a redelivery right behind its
    // original would: most batches hold both copies of an event, later ones find it sent.
    let rows = app
        .db
        .query_all_raw(common::db::stmt(
            "SELECT envelope FROM outbox WHERE routing_key = 'user.created' ORDER BY id",
            [],
        ))
        .await
        .expect("events");
    assert_eq!(rows.len(), 9);
    let conn = common::amqp::connect(&app.settings_amqp_direct(), "invites-test").await;
    let queue = Topology::from_settings(&app.settings).mailer_queue();
    let channel = conn.create_channel().await.expect("channel");
    let purged = channel
        .queue_purge(queue.as_str().into(), Default::default())
        .await
        .expect("purge");
    assert_eq!(purged, 9, "the relay had queued each event once");
    let publisher = Publisher::open(&conn).await.expect("publisher");
    for row in &rows {
        let json: Value = row.try_get("", "envelope").expect("envelope");
        let env: Envelope = serde_json::from_value(json).expect("an envelope");
        for _ in 0..2 {
            tests::events::publish_to_queue(&publisher, &queue, &env).await;
        }
    }
    app.start_mailer().await;
    assert_eq!(
        app.wait_count(
            "SELECT count(*) FROM invites WHERE sent_at IS NOT NULL",
            9,
            MAIL_WAIT
        )
        .await,
        9
    );
    // Stopped, the mailer settles what it holds: every copy was read and acknowledged
    // (none waits to send later), and none sent a second mail.
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.stop_mailer().await;
    assert_eq!(app.messages(&queue).await, 0, "every copy was settled");
    for p in &people {
        assert_eq!(
            app.maildev.to(p).await.len(),
            1,
            "exactly one invite to {p}"
        );
    }
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_invite_when_the_org_turned_invites_off() {
    let mut app = TestApp::spawn().await;
    // With the mailer away, its queue shows what reaches it.
    app.stop_mailer().await;
    let mailer_queue = Topology::from_settings(&app.settings).mailer_queue();
    let quiet = app.tenant("Quiet").await;
    let res = app
        .put_settings(&quiet.admin_key, json!({"send_invites": false}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.expect("JSON")["send_invites"],
        false
    );

    let silent = app.email("silent");
    quiet.scim.create_user_201(&silent, "S", "P").await;

    // A person created afterwards in an org with invites on is invited.
    let loud = app.tenant("Loud").await;
    let sentinel = app.email("sentinel");
    loud.scim.create_user_201(&sentinel, "S", "T").await;
    let published = "SELECT count(*) FROM outbox WHERE routing_key = 'user.created' AND published_at IS NOT NULL";
    assert_eq!(app.wait_count(published, 2, MAIL_WAIT).await, 2);
    // Only the event with an invite pending reached the mailer's queue.
    assert_eq!(app.messages(&mailer_queue).await, 1, "the mailer's queue");
    app.start_mailer().await;
    assert_eq!(app.maildev.wait_for(&sentinel, 1, MAIL_WAIT).await.len(), 1);
    assert!(
        app.maildev.to(&silent).await.is_empty(),
        "an invite went out with invites off"
    );
    assert_eq!(
        app.messages(&mailer_queue).await,
        0,
        "the invite's event was handled"
    );
    app.stop().await;
}

/// The invite link sent to `address` (waiting for the email).
async fn link_to(app: &TestApp, address: &str) -> String {
    let mails = app.maildev.wait_for(address, 1, MAIL_WAIT).await;
    assert_eq!(mails.len(), 1, "one invite to {address}");
    mails[0].invite_link().expect("a link in the text part")
}

/// `(status, page)` of a GET or POST of an invite link.
async fn open(app: &TestApp, method: Method, link: &str) -> (u16, String) {
    let res = app
        .http
        .request(method, link)
        .send()
        .await
        .expect("invite link");
    let status = res.status().as_u16();
    (status, res.text().await.expect("page"))
}

async fn accepted_at(app: &TestApp, address: &str) -> Option<String> {
    let row = app
        .db
        .query_one_raw(common::db::stmt(
            "SELECT accepted_at::text AS at FROM invites WHERE email = $1",
            [address.into()],
        ))
        .await
        .expect("query")
        .expect("an invite row");
    row.try_get("", "at").expect("accepted_at")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_links_are_random_confirmed_by_post_used_once_and_expire() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme Secret Project").await;
    let (once, late) = (app.email("once"), app.email("late"));
    for who in [&once, &late] {
        let res = acme
            .scim
            .post_user(&create_user_body(who, "Pat", "Quartermaine"))
            .await;
        assert_eq!(res.status(), 201);
    }
    let link = link_to(&app, &once).await;
    let token = link.rsplit('/').next().expect("a token");
    let random = token.strip_prefix("rst_inv_").expect("the invite prefix");
    assert_eq!(random.len(), 43, "256 bits, base64url: {token}");
    assert!(
        random
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );

    // A mail scanner fetching the link changes nothing; the page shows the first name
    // and a button, and nothing else of the person.
    for _ in 0..2 {
        let (status, page) = open(&app, Method::GET, &link).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Hello Pat,"), "{page}");
        assert!(page.contains("<form method=\"post\">"), "{page}");
        assert!(
            !page.contains("Quartermaine"),
            "the family name leaked: {page}"
        );
        assert!(!page.contains(&once), "the address leaked: {page}");
    }
    assert_eq!(
        accepted_at(&app, &once).await,
        None,
        "GET accepted the invite"
    );

    // The button accepts, once.
    let (status, page) = open(&app, Method::POST, &link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Invite accepted"), "{page}");
    let first = accepted_at(&app, &once).await.expect("accepted");
    let audited = "SELECT count(*) FROM audit_log WHERE action = 'invite.accepted'";
    assert_eq!(app.count(audited).await, 1);

    // Again: "already used", and no second effect.
    for method in [Method::POST, Method::GET] {
        let (status, page) = open(&app, method.clone(), &link).await;
        assert_eq!(status, 409, "{method} {page}");
        assert!(page.contains("already used"), "{page}");
    }
    assert_eq!(accepted_at(&app, &once).await, Some(first));
    assert_eq!(app.count(audited).await, 1);

    // An expired link: 410, nothing about the org, and accepting does nothing.
    let expired = link_to(&app, &late).await;
    app.db
        .execute_raw(common::db::stmt(
            "UPDATE invites SET expires_at = now() - interval '1 minute' WHERE email = $1",
            [late.clone().into()],
        ))
        .await
        .expect("expiring the invite");
    for method in [Method::GET, Method::POST] {
        let (status, page) = open(&app, method.clone(), &expired).await;
        assert_eq!(status, 410, "{method} {page}");
        assert!(page.contains("expired"), "{page}");
        assert!(!page.contains("Acme"), "the org leaked: {page}");
        assert!(!page.contains("Pat"), "the name leaked: {page}");
    }
    assert_eq!(accepted_at(&app, &late).await, None);

    // Unknown tokens, well-formed or not: 404, nothing about any org.
    let unknown = format!("rst_inv_{}", "A".repeat(43));
    for path in [unknown.as_str(), "rst_inv_bogus", &"x".repeat(500)] {
        for method in [Method::GET, Method::POST] {
            let url = format!("{}/invite/{path}", app.base);
            let (status, page) = open(&app, method.clone(), &url).await;
            assert_eq!(status, 404, "{method} {path}");
            assert!(!page.contains("Acme"), "{page}");
        }
    }
    assert_eq!(app.count(audited).await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM invites WHERE accepted_at IS NOT NULL")
            .await,
        1
    );
    app.stop().await;
}

/// MailDev's whole record of the one email to `address`, and its raw source.
async fn raw_mail(app: &TestApp, address: &str) -> (Value, String) {
    app.maildev.wait_for(address, 1, MAIL_WAIT).await;
    for api in ["/api/email", "/email"] {
        let url = format!("{}{api}", app.maildev.base());
        let Ok(res) = app.http.get(&url).send().await else {
            continue;
        };
        let Ok(Value::Array(all)) = res.json::<Value>().await else {
            continue;
        };
        let mine: Vec<Value> = all
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|t| t["address"].as_str() == Some(address)))
            })
            .collect();
        assert_eq!(mine.len(), 1, "one email to {address}");
        let id = mine[0]["id"].as_str().expect("an id");
        let source = app
            .http
            .get(format!("{url}/{id}/source"))
            .send()
            .await
            .expect("source")
            .text()
            .await
            .expect("source text");
        return (mine[0].clone(), source);
    }
    panic!("cannot read MailDev's API at {}", app.maildev.base());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_addresses_cannot_inject_headers_or_markup() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let evil = app.email("evil");

    // An address with a header in it is refused at the door: 400, nothing stored.
    for bad in [
        format!("{}\r\nBcc: {evil}", app.email("crlf")),
        format!("Eve <{}>", app.email("named")),
        format!("{}, {evil}", app.email("list")),
    ] {
        let mut body = create_user_body(&app.email("refused"), "R", "F");
        body["emails"] = json!([{"primary": true, "value": bad, "type": "work"}]);
        let res = acme.scim.post_user(&body).await;
        assert_eq!(res.status(), 400, "{bad:?}");
        let err: Value = res.json().await.expect("SCIM error");
        assert_eq!(err["scimType"], "invalidValue", "{err}");
    }
    app.assert_none("SELECT count(*) FROM users").await;

    // Names full of CR/LF, header lines, quotes and markup are only text.
    let by_display = app.email("display");
    let mut body = create_user_body(&by_display, "Eve", "Doe");
    body["displayName"] = json!(format!(
        "\"Eve\" <e@x.io>\r\nBcc: {evil}\r\nSubject: x\r\n\r\n<script>alert(1)</script>"
    ));
    assert_eq!(acme.scim.post_user(&body).await.status(), 201);
    let by_name = app.email("name");
    let mut body = create_user_body(&by_name, "<script>alert(2)</script>", "x\nBcc: y");
    body["name"]["familyName"] = json!(format!("O'Hara\r\nBcc: {evil}\r\nX-Evil: 1"));
    body.as_object_mut().expect("object").remove("displayName");
    assert_eq!(acme.scim.post_user(&body).await.status(), 201);

    for (address, script) in [(&by_display, "alert(1)"), (&by_name, "alert(2)")] {
        let (mail, source) = raw_mail(&app, address).await;
        let recipients = |field: &str| mail[field].as_array().map_or(0, Vec::len);
        assert_eq!(recipients("to"), 1, "{mail}");
        assert_eq!(recipients("cc"), 0, "{mail}");
        assert_eq!(recipients("bcc"), 0, "{mail}");
        assert_eq!(recipients("calculatedBcc"), 0, "{mail}");
        let envelope = mail["envelope"]["to"].as_array().expect("envelope");
        assert_eq!(envelope.len(), 1, "one SMTP recipient: {mail}");
        assert_eq!(envelope[0]["address"], address.as_str());
        assert_eq!(mail["subject"], "You're invited to join Acme on Roster");
        let headers = mail["headers"].as_object().expect("headers");
        for injected in ["bcc", "x-evil", "cc"] {
            assert!(!headers.contains_key(injected), "{injected}: {headers:?}");
        }
        // In the raw message, one line each for To and Subject, none for Bcc.
        let head = source.split("\r\n\r\n").next().expect("a header block");
        let lines_starting = |name: &str| {
            head.lines()
                .filter(|l| l.to_ascii_lowercase().starts_with(name))
                .count()
        };
        assert_eq!(lines_starting("to:"), 1, "{head}");
        assert_eq!(lines_starting("subject:"), 1, "{head}");
        assert_eq!(lines_starting("bcc:"), 0, "{head}");
        assert_eq!(lines_starting("x-evil:"), 0, "{head}");
        let html = mail["html"].as_str().expect("an HTML part");
        assert!(
            html.contains(&format!("&lt;script&gt;{script}&lt;/script&gt;")),
            "{html}"
        );
        assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
        let text = mail["text"].as_str().expect("a text part");
        let hello = text.lines().next().expect("a greeting");
        assert!(hello.starts_with("Hello "), "{text}");
        assert!(
            !text.contains("\nBcc:") && !text.contains("\nX-Evil"),
            "{text}"
        );
    }
    assert!(
        app.maildev.to(&evil).await.is_empty(),
        "an injected recipient got mail"
    );
    app.stop().await;
}
