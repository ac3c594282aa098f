//! The org chart's contract: the keys a person's raw manager value is matched against
//! (`manager_match`, an org setting), their default order, and how a raw value is read
//! from a person's directory fields. Pure functions; the worker resolves, the ingress reads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A key of a person that a raw manager value may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchKey {
    /// Roster's own id (what Entra sends).
    Id,
    /// The person's `externalId` (Okta's user id, `00u…`); compared exactly.
    ExternalId,
    /// The person's email, case-insensitively.
    Email,
    /// The person's `userName`, case-insensitively.
    UserName,
    /// The `employee_number` directory field; compared exactly.
    EmployeeNumber,
}

impl MatchKey {
    pub const ALL: [MatchKey; 5] = [
        MatchKey::Id,
        MatchKey::ExternalId,
        MatchKey::Email,
        MatchKey::UserName,
        MatchKey::EmployeeNumber,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MatchKey::Id => "id",
            MatchKey::ExternalId => "external_id",
            MatchKey::Email => "email",
            MatchKey::UserName => "user_name",
            MatchKey::EmployeeNumber => "employee_number",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What the admin page calls it.
    pub fn label(self) -> &'static str {
        match self {
            MatchKey::Id => "Roster id",
            MatchKey::ExternalId => "Okta user id (externalId)",
            MatchKey::Email => "Email",
            MatchKey::UserName => "Username",
            MatchKey::EmployeeNumber => "Employee number",
        }
    }

    /// Whether values are compared case-insensitively.
    pub fn case_insensitive(self) -> bool {
        matches!(self, MatchKey::Id | MatchKey::Email | MatchKey::UserName)
    }
}

/// The order a new org tries: ids first (they cannot collide with the other keys), then
/// Okta's id, then the addresses people are known by.
pub const DEFAULT_MATCH: [MatchKey; 5] = MatchKey::ALL;

/// A `manager_match` as an admin saves it: at least one key, each at most once.
pub fn validate(keys: &[MatchKey]) -> Result<(), String> {
    if keys.is_empty() {
        return Err(format!(
            "manager_match needs at least one key of: {}",
            names(&MatchKey::ALL)
        ));
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return Err(format!("manager_match names {:?} twice", k.as_str()));
        }
    }
    Ok(())
}

/// The keys as stored, `["id", …]`; unknown names (none are stored) are skipped.
pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<MatchKey> {
    names.into_iter().filter_map(MatchKey::parse).collect()
}

pub fn names(keys: &[MatchKey]) -> String {
    keys.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The raw manager value in a person's directory fields (the mapped `manager` field), if
/// any: trimmed, never empty.
pub fn manager_ref(profile: &Map<String, Value>) -> Option<String> {
    profile
        .get("manager")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The keys a raw value can be tried against: `id` only when it is a UUID.
pub fn applicable(keys: &[MatchKey], raw: &str) -> Vec<MatchKey> {
    let is_id = Uuid::parse_str(raw).is_ok();
    keys.iter()
        .copied()
        .filter(|k| *k != MatchKey::Id || is_id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_and_unknown_names_are_refused() {
        for k in MatchKey::ALL {
            assert_eq!(MatchKey::parse(k.as_str()), Some(k));
            assert_eq!(json!(k), json!(k.as_str()));
        }
        let err = serde_json::from_value::<Vec<MatchKey>>(json!(["id", "phone"]))
            .expect_err("unknown key");
        assert!(err.to_string().contains("phone"), "{err}");
        assert_eq!(
            from_names(["email", "nonsense", "id"]),
            [MatchKey::Email, MatchKey::Id]
        );
    }

    #[test]
    fn a_match_order_needs_a_key_and_no_repeats() {
        validate(&DEFAULT_MATCH).expect("the default");
        validate(&[MatchKey::Email]).expect("one key");
        assert!(validate(&[]).expect_err("empty").contains("at least one"));
        assert!(
            validate(&[MatchKey::Email, MatchKey::Id, MatchKey::Email])
                .expect_err("twice")
                .contains("\"email\" twice")
        );
    }

    #[test]
    fn the_raw_value_is_trimmed_and_ids_only_tried_on_uuids() {
        let p = json!({"manager": "  boss@x  "});
        assert_eq!(
            manager_ref(p.as_object().expect("obj")).as_deref(),
            Some("boss@x")
        );
        let blank = json!({"manager": " "});
        assert_eq!(manager_ref(blank.as_object().expect("obj")), None);
        assert_eq!(
            applicable(&DEFAULT_MATCH, "boss@x"),
            [
                MatchKey::ExternalId,
                MatchKey::Email,
                MatchKey::UserName,
                MatchKey::EmployeeNumber
            ]
        );
        let id = Uuid::now_v7().to_string().to_uppercase();
        assert_eq!(applicable(&DEFAULT_MATCH, &id), DEFAULT_MATCH);
    }
}
