//! Hostile input: oversized, deeply nested, mistyped, non-UTF-8 and NUL-carrying bodies,
//! absurd paging, over-long and over-nested filters, too many PATCH operations, slow and
//! oversized headers. Each gets a clear error (SCIM error JSON on the SCIM API, `{"error"}`
//! on the admin API) or is stored inertly; nothing else changes; the service keeps serving.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tests::{
    harness::{Options, TestApp},
    okta::{ScimClient, create_user_body},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everything an org owns, as one comparable string: its users and groups (whole rows),
/// memberships, events, activity, settings, tokens and mappings.
pub(crate) async fn snapshot(app: &TestApp, org: &str) -> String {
    use sea_orm::ConnectionTrait;
    let sql = "SELECT concat_ws(' | ', \
        (SELECT count(*) || ':' || md5(coalesce(string_agg(u::text, ',' ORDER BY u.id), '')) FROM users u WHERE org_id = $1), \
        (SELECT count(*) || ':' || md5(coalesce(string_agg(g::text, ',' ORDER BY g.id), '')) FROM groups g WHERE org_id = $1), \
        (SELECT count(*) || ':' || md5(coalesce(string_agg(m.group_id || '/' || m.user_id, ',' ORDER BY m.group_id, m.user_id), '')) FROM group_members m WHERE org_id = $1), \
        (SELECT count(*) FROM outbox WHERE org_id = $1), \
        (SELECT count(*) FROM audit_log WHERE org_id = $1), \
        (SELECT row(o.name, o.admin_key_hash, o.provisioning_enabled, o.send_invites, o.lock_synced_fields)::text FROM orgs o WHERE id = $1), \
        (SELECT count(*) || ':' || count(revoked_at) FROM scim_tokens WHERE org_id = $1), \
        (SELECT md5(coalesce(string_agg(f::text, ',' ORDER BY f.field), '')) FROM field_mappings f WHERE org_id = $1)) AS s";
    let org: uuid::Uuid = org.parse().expect("an org id");
    let row = app
        .db
        .query_one_raw(common::db::stmt(sql, [org.into()]))
        .await
        .expect("snapshot query")
        .expect("a row");
    row.try_get("", "s").expect("text")
}

/// Asserts a SCIM error: status, content type, schema, `status` as a string, the
/// `scimType` when given, a non-empty `detail`.
pub(crate) async fn assert_scim_error(
    res: reqwest::Response,
    status: u16,
    scim_type: Option<&str>,
) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        ct.starts_with("application/scim+json"),
        "content type {ct:?}"
    );
    let body: Value = res.json().await.expect("SCIM error JSON");
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(body["status"], status.to_string());
    if let Some(t) = scim_type {
        assert_eq!(body["scimType"], t, "{body}");
    }
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

/// Asserts an admin API error: status and `{"error": "…"}`.
pub(crate) async fn assert_api_error(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status().as_u16(), status, "status");
    let body: Value = res.json().await.expect("error JSON");
    body["error"].as_str().expect("an error message").to_owned()
}

/// A client with no pooled connections: the server may close a connection after
/// refusing a body it did not read, which must not poison a shared pool.
fn lone(okta: &ScimClient) -> ScimClient {
    let mut c = okta.clone();
    c.http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    c
}

async fn send(
    okta: &ScimClient,
    method: Method,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    okta.request(method, path)
        .header("Content-Type", ct)
        .body(body)
        .send()
        .await
        .expect("request")
}

/// A user created the normal way, to aim updates at; returns its id.
async fn create(okta: &ScimClient, user_name: &str) -> String {
    let res = okta
        .post_user(&create_user_body(user_name, "Ada", "Lovelace"))
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("JSON");
    body["id"].as_str().expect("id").to_owned()
}

/// Still serving: a normal create succeeds.
async fn still_serving(app: &TestApp, okta: &ScimClient, local: &str) {
    let res = okta
        .post_user(&create_user_body(&app.email(local), "Still", "Serving"))
        .await;
    assert_eq!(res.status(), 201, "the service keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_clear_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let id = create(okta, &app.email("ada")).await;
    let user_path = format!("/Users/{id}");
    let before = snapshot(&app, &acme.org_id).await;
    let scim = "application/scim+json";

    // Oversized (default 1 MiB): with a Content-Length, and chunked without one.
    let big = format!("{{\"userName\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes();
    let res = send(&lone(okta), Method::POST, "/Users", scim, big.clone()).await;
    assert_scim_error(res, 413, None).await;
    let sent = chunked_put(&app, &okta.token, &user_path, &big).await;
    assert!(sent.starts_with("HTTP/1.1 413"), "{sent:.200}");
    assert!(sent.contains("application/scim+json"), "{sent:.400}");
    assert!(sent.contains("\"status\":\"413\""), "{sent:.600}");
    let res = lone(okta)
        .http
        .put(format!("{}/admin/v1/mappings", app.base))
        .bearer_auth(&acme.admin_key)
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .expect("PUT mappings");
    assert!(assert_api_error(res, 413).await.contains("too large"));

    // Nested past 32 levels, a little and a lot: refused before parsing.
    for depth in [33, 100_000] {
        let body = format!(
            "{{\"userName\": \"deep\", \"x\": {}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let res = send(okta, Method::POST, "/Users", scim, body.into_bytes()).await;
        let err = assert_scim_error(res, 400, Some("invalidSyntax")).await;
        assert!(
            err["detail"].as_str().unwrap_or_default().contains("32"),
            "{err}"
        );
    }
    let deep_edit = format!("{{\"fields\": {}1{}}}", "[".repeat(64), "]".repeat(64));
    let res = app
        .http
        .patch(format!("{}/api/v1/people/{id}", app.base))
        .bearer_auth(&acme.admin_key)
        .header("Content-Type", "application/json")
        .body(deep_edit)
        .send()
        .await
        .expect("PATCH person");
    assert!(assert_api_error(res, 400).await.contains("32"));

    // Not UTF-8, NUL characters, not an object, not JSON.
    let mut latin1 = br#"{"userName": "j"#.to_vec();
    latin1.extend_from_slice(b"\xe9r\xf4me\"}");
    let res = send(okta, Method::POST, "/Users", scim, latin1).await;
    assert_scim_error(res, 400, Some("invalidSyntax")).await;
    for body in [
        json!({"userName": "nul\u{0}@x.example"}),
        json!({"userName": "n@x.example", "name": {"givenName": "A\u{0}B"}}),
        json!({"userName": "n@x.example", "x\u{0}": 1}),
    ] {
        let res = okta.post_user(&body).await;
        assert_scim_error(res, 400, Some("invalidValue")).await;
    }
    let raw_nul = b"{\"userName\": \"a\x00b\"}".to_vec();
    let res = send(okta, Method::POST, "/Users", scim, raw_nul).await;
    assert_scim_error(res, 400, Some("invalidSyntax")).await;
    for body in ["[]", "\"a user\"", "{\"userName\": ", "{} {}", ""] {
        let res = send(okta, Method::POST, "/Users", scim, body.into()).await;
        assert_scim_error(res, 400, Some("invalidSyntax")).await;
    }

    // Wrong JSON types, on create and on replace.
    let name = app.email("typed");
    for (attr, value) in [
        ("userName", json!(5)),
        ("userName", json!(["a"])),
        ("emails", json!("x")),
        ("emails", json!([5])),
        ("active", json!("yes")),
        ("active", json!(1)),
        ("name", json!("Ada")),
        ("externalId", json!({"a": 1})),
        ("displayName", json!(false)),
    ] {
        let mut body = create_user_body(&name, "T", "Y");
        body[attr] = value.clone();
        let res = okta.post_user(&body).await;
        let err = assert_scim_error(res, 400, Some("invalidValue")).await;
        assert!(
            err["detail"].as_str().unwrap_or_default().contains(attr) || attr == "emails",
            "{attr}: {err}"
        );
        let res = okta.send_json(Method::PUT, &user_path, &body).await;
        assert_scim_error(res, 400, Some("invalidValue")).await;
    }

    // Wrong content types.
    let valid = create_user_body(&app.email("ct"), "C", "T").to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        let res = send(okta, Method::POST, "/Users", ct, valid.clone().into()).await;
        assert_scim_error(res, 415, None).await;
    }

    assert_eq!(
        snapshot(&app, &acme.org_id).await,
        before,
        "nothing changed"
    );
    still_serving(&app, okta, "after-bodies").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_and_patches_answer_cleanly() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let id = create(okta, &app.email("ada")).await;
    let before = snapshot(&app, &acme.org_id).await;
    let get = |query: Vec<(&'static str, String)>| {
        okta.request(Method::GET, "/Users").query(&query).send()
    };

    // Absurd paging: a clean page, or a clean 400 — never a 500.
    for count in [
        "99999999999999999999",
        "-99999999999999999999",
        "9223372036854775807",
        "1e30",
    ] {
        let res = get(vec![("count", count.to_owned())]).await.expect("GET");
        match res.status().as_u16() {
            200 => {
                let page: Value = res.json().await.expect("JSON");
                assert!(
                    page["itemsPerPage"].as_u64().is_some_and(|n| n <= 200),
                    "{page}"
                );
            }
            _ => {
                assert_scim_error(res, 400, Some("invalidValue")).await;
            }
        }
    }
    for start in ["9223372036854775807", "-5"] {
        let res = get(vec![("startIndex", start.to_owned())])
            .await
            .expect("GET");
        assert_eq!(res.status(), 200, "startIndex={start}");
        let page: Value = res.json().await.expect("JSON");
        assert!(
            page["itemsPerPage"].as_u64().is_some_and(|n| n <= 1),
            "{page}"
        );
    }
    let res = okta
        .send_json(
            Method::POST,
            "/Users/.search",
            &json!({"count": 1e300, "startIndex": -1e300}),
        )
        .await;
    assert_scim_error(res, 400, Some("invalidValue")).await;

    // SQL-looking filters are values, not SQL.
    for filter in [
        r#"userName eq "x' OR 1=1 --""#,
        r#"userName eq "x\" or userName pr""#,
        r#"name.givenName eq "'; DROP TABLE users; --""#,
    ] {
        let res = get(vec![("filter", filter.to_owned())]).await.expect("GET");
        assert_eq!(res.status(), 200, "{filter}");
        let page: Value = res.json().await.expect("JSON");
        assert_eq!(page["totalResults"], 0, "{filter}");
    }
    for sort in ["userName; DROP TABLE users", "userName desc, id"] {
        let res = get(vec![("sortBy", sort.to_owned())]).await.expect("GET");
        assert_scim_error(res, 400, Some("invalidValue")).await;
    }

    // Filters: at most 4096 bytes and 16 levels of parentheses.
    let long = format!(r#"userName eq "{}""#, "a".repeat(4100));
    let res = get(vec![("filter", long)]).await.expect("GET");
    let err = assert_scim_error(res, 400, Some("invalidFilter")).await;
    assert!(
        err["detail"].as_str().unwrap_or_default().contains("4096"),
        "{err}"
    );
    let nest = |n: usize| format!(r#"{}userName eq "a"{}"#, "(".repeat(n), ")".repeat(n));
    let res = get(vec![("filter", nest(16))]).await.expect("GET");
    assert_eq!(res.status(), 200, "16 levels are fine");
    for n in [17, 2000] {
        let res = get(vec![("filter", nest(n))]).await.expect("GET");
        assert_scim_error(res, 400, Some("invalidFilter")).await;
    }
    let many_ors = vec![r#"userName eq "a""#; 200].join(" or ");
    let res = get(vec![("filter", many_ors)]).await.expect("GET");
    assert_eq!(res.status(), 200, "a long flat chain within 4096 bytes");

    // PATCH: at most 1000 operations.
    let op = json!({"op": "replace", "path": "title", "value": "Countess"});
    let patch = |n: usize| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": vec![op.clone(); n],
        })
    };
    let res = okta
        .send_json(Method::PATCH, &format!("/Users/{id}"), &patch(1001))
        .await;
    let err = assert_scim_error(res, 400, Some("invalidSyntax")).await;
    assert!(
        err["detail"].as_str().unwrap_or_default().contains("1000"),
        "{err}"
    );
    for bad in [
        json!({"Operations": [{"op": "replace", "path": "title[[[[", "value": "x"}]}),
        json!({"Operations": [{"op": "explode", "path": "title", "value": "x"}]}),
        json!({"Operations": "all of them"}),
    ] {
        let res = okta
            .send_json(Method::PATCH, &format!("/Users/{id}"), &bad)
            .await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_scim_error(res, 400, None).await;
    }

    assert_eq!(
        snapshot(&app, &acme.org_id).await,
        before,
        "nothing changed"
    );
    let res = okta
        .send_json(Method::PATCH, &format!("/Users/{id}"), &patch(1000))
        .await;
    assert_eq!(res.status(), 200, "1000 operations are fine");
    still_serving(&app, okta, "after-queries").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_stored_inertly_and_read_back_byte_identical() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let sql = "'; DROP TABLE users; --";
    let crlf = "Eve\r\nBcc: all@example.com\r\n\r\n<b>hi</b>";
    let script = "<script>alert(1)</script><img src=x onerror=\"alert(2)\">";
    let user_name = format!("o'brien+{}", app.email("x"));

    let mut body = create_user_body(&user_name, sql, "Robert\"); DROP TABLE users;--");
    body["displayName"] = json!(crlf);
    body["title"] = json!(script);
    body["nickName"] = json!("\u{202e}evil\u{200b}\u{1F600}");
    let res = okta.post_user(&body).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("JSON");
    let id = created["id"].as_str().expect("id").to_owned();

    let res = okta.get_user(&id).await;
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.expect("JSON");
    assert_eq!(got["userName"], user_name.as_str());
    assert_eq!(got["name"]["givenName"], sql);
    assert_eq!(got["name"]["familyName"], "Robert\"); DROP TABLE users;--");
    assert_eq!(got["displayName"], crlf);
    assert_eq!(got["title"], script);
    assert_eq!(got["nickName"], "\u{202e}evil\u{200b}\u{1F600}");

    // Found by the same hostile values, and by nothing broader.
    for (filter, n) in [
        (format!(r#"userName eq "{user_name}""#), 1),
        (
            r#"name.givenName eq "'; DROP TABLE users; --""#.to_owned(),
            1,
        ),
        (r#"name.givenName eq "'""#.to_owned(), 0),
        (r#"title co "<script>""#.to_owned(), 1),
    ] {
        let res = okta
            .request(Method::GET, "/Users")
            .query(&[("filter", &filter)])
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 200, "{filter}");
        let page: Value = res.json().await.expect("JSON");
        assert_eq!(page["totalResults"], n, "{filter}");
    }

    // The directory holds them as text too.
    let res = app
        .admin(
            Method::GET,
            &format!("/api/v1/people/{id}"),
            &acme.admin_key,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let person: Value = res.json().await.expect("JSON");
    assert_eq!(person["fields"]["first_name"], sql);
    assert_eq!(person["fields"]["job_title"], script);

    // A userName with CR/LF is refused: it is an identifier, not text.
    let res = okta
        .post_user(&create_user_body("a\r\nb@x.example", "A", "B"))
        .await;
    assert_scim_error(res, 400, Some("invalidValue")).await;

    assert_eq!(
        app.count("SELECT count(*) FROM users").await,
        1,
        "the table is there"
    );
    still_serving(&app, okta, "after-values").await;
    app.stop().await;
}

/// `PUT` of `body` in 64 KiB chunks with no Content-Length, over a raw connection;
/// returns what the server answered before closing.
async fn chunked_put(app: &TestApp, token: &str, path: &str, body: &[u8]) -> String {
    let mut s = connect(app).await;
    let head = format!(
        "PUT /scim/v2{path} HTTP/1.1\r\nHost: roster\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    for chunk in body.chunks(64 * 1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server stops reading once the limit is passed.
        if s.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .unwrap_or_default()
}

/// Connects straight to the ingress's TCP port.
async fn connect(app: &TestApp) -> tokio::net::TcpStream {
    let addr = app.base.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection (or `limit` passes): what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_headers_are_cut_off() {
    let app = TestApp::spawn_with(Options {
        header_read_timeout: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let acme = app.tenant("Acme").await;

    // A client that starts a request and never finishes its headers.
    let mut slow = connect(&app).await;
    let start = Instant::now();
    slow.write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHost: roster\r\n")
        .await
        .expect("write");
    let sent = read_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .expect("the server closes the connection");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    assert!(!sent.contains("200 OK"), "{sent}");

    // Dribbling a byte at a time does not reset the clock.
    let mut dribble = connect(&app).await;
    let start = Instant::now();
    let mut closed_after = None;
    for b in b"GET /scim/v2/Users HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if dribble.write_all(&[*b]).await.is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if closed_after.is_none() {
        read_until_closed(&mut dribble, Duration::from_secs(5))
            .await
            .expect("the server closes the connection");
        closed_after = Some(start.elapsed());
    }
    let took = closed_after.expect("closed");
    assert!(
        took < Duration::from_secs(6),
        "a dribbling client held on for {took:?}"
    );

    // Too many header fields, or too many bytes of them: 431 and closed.
    for headers in [
        (0..150)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>(),
        format!("X-Big: {}\r\n", "a".repeat(70 * 1024)),
    ] {
        let mut s = connect(&app).await;
        let req = format!("GET /healthz HTTP/1.1\r\nHost: roster\r\n{headers}\r\n");
        let _ = s.write_all(req.as_bytes()).await;
        let sent = read_until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("closed");
        assert!(sent.starts_with("HTTP/1.1 431"), "{sent:.80}");
    }

    // Everyone else is served, slow clients or not.
    let _still_slow = connect(&app).await;
    still_serving(&app, &acme.scim, "after-headers").await;
    app.stop().await;
}

/// An `externalId` too long for its index is bad input (400), not a database failure that
/// would leave Okta waiting and retrying; the longest allowed one, in 4-byte characters,
/// is stored — users and groups alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ids_are_bounded_to_what_their_index_holds() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let okta = &acme.scim;
    let before = snapshot(&app, &acme.org_id).await;
    // Random, so PostgreSQL cannot compress the index entry below its limit.
    let random: String = (0..3000)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let mut body = create_user_body(&app.email("long"), "Long", "Id");
    body["externalId"] = json!(random);
    assert_scim_error(okta.post_user(&body).await, 400, Some("invalidValue")).await;
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                       "displayName": "Long", "externalId": random});
    let res = okta.send_json(Method::POST, "/Groups", &group).await;
    assert_scim_error(res, 400, Some("invalidValue")).await;
    assert_eq!(
        snapshot(&app, &acme.org_id).await,
        before,
        "nothing changed"
    );

    let widest = "😀".repeat(common::scim::model::MAX_EXTERNAL_ID_LEN);
    let mut body = create_user_body(&app.email("wide"), "Wide", "Id");
    body["externalId"] = json!(widest);
    let res = okta.post_user(&body).await;
    assert_eq!(res.status(), 201);
    let stored: Value = res.json().await.expect("JSON");
    assert_eq!(stored["externalId"], json!(widest));
    app.stop().await;
}
