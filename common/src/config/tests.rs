//! Settings as the contract (CONTRACT.md) describes them: defaults, and bad values named.

use super::{values::parse_ttl, *};
use std::collections::HashMap;

#[test]
fn defaults_match_the_contract() {
    let s = Settings::defaults();
    assert_eq!(
        s.database_url.expose(),
        "postgres://postgres@127.0.0.1:5432/roster"
    );
    assert_eq!(s.amqp_url.expose(), "amqp://guest:guest@127.0.0.1:5672/%2f");
    assert_eq!(s.smtp_url.expose(), "smtp://127.0.0.1:1025");
    assert_eq!(s.ingress_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(s.public_url, "http://localhost:8080");
    assert!(s.operator_token.is_none());
    assert!(s.session_key.is_none());
    assert!(s.command_timeout < Duration::from_secs(60));
    assert_eq!(s.invite_ttl, Duration::from_secs(7 * 86_400));
    assert_eq!(s.mailer_concurrency, 15);
}

#[test]
fn invite_ttl_takes_a_unit() {
    assert_eq!(
        parse_ttl("36h").expect("hours"),
        Duration::from_secs(36 * 3600)
    );
    assert_eq!(
        parse_ttl("90m").expect("minutes"),
        Duration::from_secs(90 * 60)
    );
    assert_eq!(parse_ttl("1d").expect("a day"), Duration::from_secs(86_400));
    for bad in [
        "7",
        "d",
        "0d",
        "7 weeks",
        "-1d",
        "400d",
        "99999999999999999999d",
    ] {
        let err = parse_ttl(bad).expect_err(bad);
        assert_eq!(err.name, "INVITE_TTL");
    }
}

#[test]
fn limits_have_defaults_and_a_proxy_header_is_a_header_name() {
    let s = Settings::defaults();
    assert_eq!(s.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.auth_failures_per_minute, 10);
    assert_eq!(s.auth_failures_global_per_minute, 1000);
    assert_eq!(s.client_ip_header, None);
    let mut vars = HashMap::new();
    vars.insert("CLIENT_IP_HEADER".to_owned(), "X-Forwarded-For".to_owned());
    let s = Settings::from_vars(&vars).expect("valid");
    assert_eq!(s.client_ip_header.as_deref(), Some("x-forwarded-for"));
    vars.insert(
        "CLIENT_IP_HEADER".to_owned(),
        "X-Forwarded-For: 1".to_owned(),
    );
    let err = Settings::from_vars(&vars).expect_err("not a header name");
    assert_eq!(err.name, "CLIENT_IP_HEADER");
}

#[test]
fn retention_windows_have_defaults_and_the_reply_window_outlives_redelivery() {
    let s = Settings::defaults();
    assert_eq!(s.outbox_retention, Duration::from_secs(7 * 86_400));
    assert_eq!(
        s.processed_commands_retention,
        Duration::from_secs(30 * 86_400)
    );
    assert_eq!(s.activity_retention, Duration::from_secs(400 * 86_400));
    assert_eq!(s.invite_retention, Duration::from_secs(30 * 86_400));
    assert_eq!(s.gc_interval, Duration::from_secs(10));
    let mut vars = HashMap::new();
    vars.insert("OUTBOX_RETENTION".to_owned(), "90s".to_owned());
    assert_eq!(
        Settings::from_vars(&vars).expect("valid").outbox_retention,
        Duration::from_secs(90)
    );
    vars.insert("OUTBOX_RETENTION".to_owned(), "0d".to_owned());
    assert_eq!(
        Settings::from_vars(&vars).expect_err("zero").name,
        "OUTBOX_RETENTION"
    );
    vars.remove("OUTBOX_RETENTION");
    // 1 + 10 + 60 s of retries and a 25 s timeout: a minute of stored replies is too short.
    vars.insert("PROCESSED_COMMANDS_RETENTION".to_owned(), "1m".to_owned());
    let err = Settings::from_vars(&vars).expect_err("too short");
    assert_eq!(err.name, "PROCESSED_COMMANDS_RETENTION");
    vars.insert("PROCESSED_COMMANDS_RETENTION".to_owned(), "1h".to_owned());
    assert!(Settings::from_vars(&vars).is_ok());
}

#[test]
fn bad_values_name_the_variable() {
    let mut vars = HashMap::new();
    vars.insert("WORKER_PREFETCH".to_owned(), "lots".to_owned());
    let err = Settings::from_vars(&vars).expect_err("must fail");
    assert_eq!(err.name, "WORKER_PREFETCH");
    vars.insert("WORKER_PREFETCH".to_owned(), "8".to_owned());
    vars.insert("MAILER_CONCURRENCY".to_owned(), "many".to_owned());
    let err = Settings::from_vars(&vars).expect_err("must fail");
    assert_eq!(err.name, "MAILER_CONCURRENCY");
}

#[test]
fn secrets_do_not_print() {
    let mut vars = HashMap::new();
    vars.insert(
        "ROSTER_OPERATOR_TOKEN".to_owned(),
        "hunter2-operator".to_owned(),
    );
    vars.insert("SMTP_URL".to_owned(), "smtps://me:pa55word@mail".to_owned());
    let s = Settings::from_vars(&vars).expect("valid");
    let printed = format!("{s:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("pa55word"), "{printed}");
}

fn amqp(value: &str) -> Result<Settings, ConfigError> {
    let mut vars = HashMap::new();
    vars.insert("AMQP_URL".to_owned(), value.to_owned());
    Settings::from_vars(&vars)
}

#[test]
fn amqp_url_is_one_node_or_several() {
    assert_eq!(crate::amqp::check_nodes("amqp://u:p@h:5672/%2f"), Ok(1));
    let list =
        " amqp://u:p@rc1:5681/%2f ,amqp://u:p@rc2:5682/%2f,\n\tamqps://u:p@rc3/%2f?heartbeat=15 ,";
    assert_eq!(crate::amqp::check_nodes(list), Ok(3));
    assert_eq!(
        crate::amqp::nodes(list),
        [
            "amqp://u:p@rc1:5681/%2f",
            "amqp://u:p@rc2:5682/%2f",
            "amqps://u:p@rc3/%2f?heartbeat=15"
        ]
    );
    let s = amqp(list).expect("three nodes");
    assert_eq!(s.amqp_url.expose(), list.trim());
    assert!(!format!("{s:?}").contains("u:p@"));
}

#[test]
fn a_bad_amqp_node_is_named_by_position_without_its_password() {
    for (value, position) in [
        (
            "amqp://u:pw-one@rc1:5681/%2f,u:pw-two@rc2:5682",
            "node 2 of 2",
        ),
        (
            "amqp://u:pw-one@rc1:5681/%2f,http://u:pw-two@rc2/",
            "node 2 of 2",
        ),
        ("amqp://u:pw-one@rc1:99999/%2f", "node 1 of 1"),
        ("amqp://u:pw-one@rc1/%2f,,mailto:pw-two@x", "node 2 of 2"),
    ] {
        let err = amqp(value).expect_err(value);
        assert_eq!(err.name, "AMQP_URL");
        let text = err.to_string();
        assert!(text.contains(position), "{value}: {text}");
        assert!(
            !text.contains("pw-one") && !text.contains("pw-two"),
            "{value}: {text}"
        );
    }
    let err = amqp(" , ").expect_err("commas only");
    assert_eq!(err.to_string(), "invalid value for AMQP_URL: no broker URL");
}

#[test]
fn quorum_group_size_is_the_brokers_unless_set() {
    assert_eq!(Settings::defaults().quorum_initial_group_size, None);
    let mut vars = HashMap::new();
    vars.insert("QUORUM_INITIAL_GROUP_SIZE".to_owned(), "5".to_owned());
    let s = Settings::from_vars(&vars).expect("valid");
    assert_eq!(s.quorum_initial_group_size, Some(5));
    vars.insert("QUORUM_INITIAL_GROUP_SIZE".to_owned(), "0".to_owned());
    let s = Settings::from_vars(&vars).expect("valid");
    assert_eq!(s.quorum_initial_group_size, None);
    vars.insert("QUORUM_INITIAL_GROUP_SIZE".to_owned(), "three".to_owned());
    let err = Settings::from_vars(&vars).expect_err("not a number");
    assert_eq!(err.name, "QUORUM_INITIAL_GROUP_SIZE");
}

#[test]
fn session_key_is_base64_of_at_least_64_bytes() {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let mut vars = HashMap::new();
    vars.insert("ROSTER_SESSION_KEY".to_owned(), STANDARD.encode([7u8; 63]));
    let err = Settings::from_vars(&vars).expect_err("too short");
    assert_eq!(err.name, "ROSTER_SESSION_KEY");
    vars.insert("ROSTER_SESSION_KEY".to_owned(), "not base64!".to_owned());
    assert!(Settings::from_vars(&vars).is_err());
    vars.insert("ROSTER_SESSION_KEY".to_owned(), STANDARD.encode([7u8; 64]));
    let s = Settings::from_vars(&vars).expect("valid");
    assert!(s.session_key.is_some());
    assert!(!format!("{s:?}").contains(&STANDARD.encode([7u8; 64])));
}

#[test]
fn secrets_key_is_base64_of_32_bytes_and_never_prints() {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let mut vars = HashMap::new();
    vars.insert("ROSTER_SECRETS_KEY".to_owned(), STANDARD.encode([5u8; 16]));
    let err = Settings::from_vars(&vars).expect_err("too short");
    assert_eq!(err.name, "ROSTER_SECRETS_KEY");
    vars.insert("ROSTER_SECRETS_KEY".to_owned(), STANDARD.encode([5u8; 32]));
    let s = Settings::from_vars(&vars).expect("valid");
    assert!(s.secrets_key.is_some());
    assert!(!format!("{s:?}").contains(&STANDARD.encode([5u8; 32])));
}
