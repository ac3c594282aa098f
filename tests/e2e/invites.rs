//! Exactly one invite per created person, a link that accepts it, none for a 409 and
//! none when the org turned invites off (DESIGN invariant 9).

use reqwest::Method;
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
        assert_eq!(
            acme.scim
                .post_user(&create_user_body(p, "Pat", "Lee"))
                .await
                .status(),
            201
        );
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

        let res = app.http.get(&link).send().await.expect("GET invite");
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
    assert_eq!(
        acme.scim
            .post_user(&create_user_body(&late, "S", "T"))
            .await
            .status(),
        201
    );
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
    assert_eq!(
        app.count("SELECT count(*) FROM invites WHERE token_hash LIKE 'rst_%'")
            .await,
        0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_invite_when_the_org_turned_invites_off() {
    let app = TestApp::spawn().await;
    let quiet = app.tenant("Quiet").await;
    let res = app
        .admin(
            Method::PUT,
            "/admin/v1/settings",
            &quiet.admin_key,
            Some(json!({"send_invites": false})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.expect("JSON")["send_invites"],
        false
    );

    let silent = app.email("silent");
    assert_eq!(
        quiet
            .scim
            .post_user(&create_user_body(&silent, "S", "P"))
            .await
            .status(),
        201
    );

    // A person created afterwards in an org with invites on is invited; by then the
    // first event has long been handled.
    let loud = app.tenant("Loud").await;
    let sentinel = app.email("sentinel");
    assert_eq!(
        loud.scim
            .post_user(&create_user_body(&sentinel, "S", "T"))
            .await
            .status(),
        201
    );
    assert_eq!(app.maildev.wait_for(&sentinel, 1, MAIL_WAIT).await.len(), 1);
    assert!(
        app.maildev.to(&silent).await.is_empty(),
        "an invite went out with invites off"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE routing_key = 'user.created' AND published_at IS NOT NULL").await,
        2,
        "both events were published"
    );
    app.stop().await;
}
