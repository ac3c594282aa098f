//! Mapping policy (DESIGN invariant 8): which SCIM attribute feeds each directory field, and
//! whether Okta may write it on create only, overwrite it on every update, or not at all.
//! Pure functions over JSON, used by the worker when it applies a provisioning call and by
//! the ingress to validate what an admin saves.
//!
//! This module holds the policy, its defaults and its validation; [`values`] reads and
//! writes mapped values in a resource.

mod values;

pub use values::{apply, read, write};

use crate::scim::{
    ROSTER_USER_SCHEMA,
    patch::{self, PatchPath},
    schema,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What Okta may do with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// "Write on user create only".
    CreateOnly,
    /// "Overwrite on update".
    Overwrite,
    /// "Do not map".
    Ignore,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::CreateOnly => "create_only",
            Policy::Overwrite => "overwrite",
            Policy::Ignore => "ignore",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "create_only" => Some(Policy::CreateOnly),
            "overwrite" => Some(Policy::Overwrite),
            "ignore" => Some(Policy::Ignore),
            _ => None,
        }
    }
}

/// One row of an org's mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Mapping {
    /// The directory field, e.g. `job_title`, or `custom.<name>` for an org's own field.
    pub field: String,
    /// The SCIM attribute path, e.g. `title` or `emails[type eq "work"].value`.
    pub scim_attribute: String,
    pub policy: Policy,
}

/// The directory's standard fields with their labels and default mappings.
pub const STANDARD_FIELDS: &[(&str, &str, &str, Policy)] = &[
    (
        "first_name",
        "First name",
        "name.givenName",
        Policy::Overwrite,
    ),
    (
        "last_name",
        "Last name",
        "name.familyName",
        Policy::Overwrite,
    ),
    (
        "preferred_name",
        "Preferred name",
        "nickName",
        Policy::CreateOnly,
    ),
    (
        "email",
        "Email",
        "emails[type eq \"work\"].value",
        Policy::Overwrite,
    ),
    ("job_title", "Job title", "title", Policy::Overwrite),
    (
        "department",
        "Department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        Policy::Overwrite,
    ),
    (
        "phone",
        "Phone",
        "phoneNumbers[type eq \"work\"].value",
        Policy::Overwrite,
    ),
    (
        "location",
        "Location",
        "addresses[type eq \"work\"].locality",
        Policy::Overwrite,
    ),
    (
        "manager",
        "Manager",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        Policy::Overwrite,
    ),
    (
        "employee_number",
        "Employee number",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        Policy::Overwrite,
    ),
    (
        "start_date",
        "Start date",
        "urn:ietf:params:scim:schemas:extension:roster:2.0:User:startDate",
        Policy::CreateOnly,
    ),
];

/// The prefix of an org's own fields.
pub const CUSTOM_PREFIX: &str = "custom.";

/// The mapping a new org starts with.
pub fn defaults() -> Vec<Mapping> {
    STANDARD_FIELDS
        .iter()
        .map(|(field, _, attr, policy)| Mapping {
            field: (*field).to_owned(),
            scim_attribute: (*attr).to_owned(),
            policy: *policy,
        })
        .collect()
}

/// A field's label for people: the standard label, or the custom name.
pub fn label(field: &str) -> String {
    STANDARD_FIELDS
        .iter()
        .find(|(f, ..)| *f == field)
        .map(|(_, l, ..)| (*l).to_owned())
        .unwrap_or_else(|| field.trim_start_matches(CUSTOM_PREFIX).replace('_', " "))
}

/// Validates a whole mapping as an admin saves it: known fields (standard or
/// `custom.<name>`), each at most once, and SCIM attributes Roster knows (custom fields live
/// in Roster's extension). Every problem is named in one `400`.
pub fn validate(rows: &[Mapping]) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for m in rows {
        if seen.contains(&m.field.as_str()) {
            problems.push(format!("field {:?} appears twice", m.field));
        }
        seen.push(m.field.as_str());
        let custom = m.field.strip_prefix(CUSTOM_PREFIX);
        let standard = STANDARD_FIELDS.iter().any(|(f, ..)| *f == m.field);
        let custom_ok = custom.is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
        if !standard && !custom_ok {
            problems.push(format!(
                "unknown field {:?} (standard fields: {}; an org's own fields are named custom.<lowercase_name>)",
                m.field,
                STANDARD_FIELDS.iter().map(|(f, ..)| *f).collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        if let Err(e) = attribute(&m.scim_attribute, custom.is_some()) {
            problems.push(format!("field {:?}: {e}", m.field));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Parses and checks a mapped SCIM attribute path.
fn attribute(path: &str, custom: bool) -> Result<PatchPath, String> {
    let parsed = patch::parse_path(path.trim(), &schema::USER)
        .map_err(|e| format!("SCIM attribute {path:?} is not a valid path ({})", e.detail))?;
    let PatchPath::Attr(t) = &parsed else {
        return Err(format!(
            "SCIM attribute {path:?} names a whole extension, not an attribute"
        ));
    };
    let known = match t.extension {
        // An org's own fields may use any name in Roster's extension.
        Some(ext) if ext.id == ROSTER_USER_SCHEMA => true,
        Some(ext) => ext.attr(&t.attr).is_some(),
        None => schema::USER
            .attr(&t.attr)
            .is_some_and(|a| !matches!(a.name, "groups" | "password")),
    };
    if !known {
        return Err(format!("unknown SCIM attribute {path:?}"));
    }
    if custom && t.extension.is_none_or(|e| e.id != ROSTER_USER_SCHEMA) {
        return Err(format!(
            "custom fields are mapped to attributes of {ROSTER_USER_SCHEMA}, not {path:?}"
        ));
    }
    if ["username", "active", "externalid"].contains(&t.attr.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "{path:?} is how Okta identifies the user and cannot be a directory field"
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn defaults_are_valid_and_cover_every_standard_field() {
        let d = defaults();
        assert_eq!(d.len(), STANDARD_FIELDS.len());
        validate(&d).expect("defaults validate");
    }

    #[test]
    fn unknown_fields_and_attributes_are_named() {
        let err = validate(&[
            Mapping {
                field: "shoe_size".into(),
                scim_attribute: "title".into(),
                policy: Policy::Overwrite,
            },
            Mapping {
                field: "job_title".into(),
                scim_attribute: "nonsense".into(),
                policy: Policy::Overwrite,
            },
            Mapping {
                field: "custom.shirt".into(),
                scim_attribute: "title".into(),
                policy: Policy::Overwrite,
            },
            Mapping {
                field: "email".into(),
                scim_attribute: "userName".into(),
                policy: Policy::Overwrite,
            },
        ])
        .expect_err("invalid");
        assert!(err.contains("\"shoe_size\""), "{err}");
        assert!(err.contains("\"nonsense\""), "{err}");
        assert!(err.contains("custom fields are mapped"), "{err}");
        assert!(err.contains("\"userName\""), "{err}");
        validate(&[Mapping {
            field: "custom.shirt_size".into(),
            scim_attribute: "urn:ietf:params:scim:schemas:extension:roster:2.0:User:shirtSize"
                .into(),
            policy: Policy::Overwrite,
        }])
        .expect("custom field in the Roster extension");
    }

    #[test]
    fn reads_value_paths_and_extensions() {
        let r = obj(json!({
            "title": "Eng",
            "emails": [{"type": "home", "value": "h@x"}, {"type": "work", "value": "w@x"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m1"}, "department": "D"}
        }));
        assert_eq!(read(&r, "title").as_deref(), Some("Eng"));
        assert_eq!(
            read(&r, "emails[type eq \"work\"].value").as_deref(),
            Some("w@x")
        );
        assert_eq!(
            read(
                &r,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
            )
            .as_deref(),
            Some("m1")
        );
        assert_eq!(read(&r, "nickName"), None);
        let entra = obj(json!({
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "m2"}
        }));
        assert_eq!(
            read(
                &entra,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
            )
            .as_deref(),
            Some("m2"),
            "Entra's bare manager id, as a PATCH leaves it"
        );
    }

    #[test]
    fn create_only_keeps_its_first_value_and_ignore_is_never_written() {
        let mapping = vec![
            Mapping {
                field: "job_title".into(),
                scim_attribute: "title".into(),
                policy: Policy::CreateOnly,
            },
            Mapping {
                field: "first_name".into(),
                scim_attribute: "name.givenName".into(),
                policy: Policy::Overwrite,
            },
            Mapping {
                field: "preferred_name".into(),
                scim_attribute: "nickName".into(),
                policy: Policy::Ignore,
            },
        ];
        let mut created =
            obj(json!({"title": "Eng", "name": {"givenName": "Ann"}, "nickName": "Annie"}));
        let fields = apply(&mapping, &mut created, None);
        assert_eq!(
            fields,
            obj(json!({"job_title": "Eng", "first_name": "Ann"}))
        );

        let mut update =
            obj(json!({"title": "Manager", "name": {"givenName": "Anna"}, "nickName": "A"}));
        let fields = apply(&mapping, &mut update, Some(&fields));
        assert_eq!(
            fields,
            obj(json!({"job_title": "Eng", "first_name": "Anna"}))
        );
        assert_eq!(
            update["title"], "Eng",
            "the stored value is what SCIM returns"
        );
        assert_eq!(
            update["nickName"], "A",
            "ignored attributes are kept as sent"
        );
    }
}
