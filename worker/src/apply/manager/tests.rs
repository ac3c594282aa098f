use super::*;

fn person(external_id: &str, email: &str, user_name: &str, employee: Option<&str>) -> user::Model {
    let now = chrono::Utc::now();
    user::Model {
        id: Uuid::now_v7(),
        org_id: Uuid::nil(),
        user_name: user_name.into(),
        external_id: Some(external_id.into()),
        active: true,
        display_name: None,
        given_name: None,
        family_name: None,
        email: Some(email.into()),
        resource: json!({}),
        profile: employee.map_or(json!({}), |e| json!({"employee_number": e})),
        version: 1,
        created_at: now,
        updated_at: now,
        manager_ref: None,
        manager_id: None,
    }
}

#[test]
fn key_values_split_exact_from_case_insensitive_keys() {
    let m = person("00uAbC", "Boss@X.com", "boss@x.com", Some("E-7"));
    let (all, exact, folded) = key_values(
        &m,
        &[
            MatchKey::ExternalId,
            MatchKey::Email,
            MatchKey::EmployeeNumber,
        ],
    );
    assert_eq!(all, ["00uabc", "boss@x.com", "e-7"]);
    assert_eq!(exact, ["00uAbC", "E-7"]);
    assert_eq!(folded, ["boss@x.com"]);
    let (all, ..) = key_values(&m, &[MatchKey::Id]);
    assert_eq!(all, [m.id.to_string()]);
}

#[test]
fn only_keys_someone_may_wait_on_count_as_changed() {
    let a = person("00u1", "a@x", "a@x", None);
    let mut b = a.clone();
    b.active = false;
    b.display_name = Some("A".into());
    b.email = Some("A@X".into());
    assert!(!keys_changed(&a, &b), "case and other fields do not count");
    b.email = Some("new@x".into());
    assert!(keys_changed(&a, &b));
    let mut c = a.clone();
    c.profile = json!({"employee_number": "9"});
    assert!(keys_changed(&a, &c));
}

#[test]
fn a_new_persons_values_are_compared_as_their_keys_say() {
    let m = person(" 00uAbC ", "Boss@X.com", "boss@x.com", Some("E-7"));
    let keys = [
        MatchKey::ExternalId,
        MatchKey::Email,
        MatchKey::EmployeeNumber,
    ];
    assert_eq!(
        compared_values(&m, &keys),
        [
            ("00uAbC".to_owned(), true),
            ("E-7".to_owned(), true),
            ("boss@x.com".to_owned(), false),
        ],
        "trimmed; exact keys as they are, the others lowercased"
    );
    // What a create locks: every key's value, whatever the org's keys.
    assert_eq!(
        arrives_with(&m),
        [
            m.id.to_string(),
            "00uabc".to_owned(),
            "boss@x.com".to_owned(),
            "boss@x.com".to_owned(),
            "e-7".to_owned()
        ]
    );
}
