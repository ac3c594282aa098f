//! The schemas Roster implements (RFC 7643 §4, §7, §8.7.1) as data: the core User, the
//! enterprise extension, Roster's own extension, and Group. They give attribute names
//! their canonical spelling, tell filters which strings compare case-exactly, and are what
//! `/Schemas` serves.
//!
//! [`attr`] is what an attribute definition holds, [`definitions`] the attributes of each
//! schema; this module the schemas themselves.

mod attr;
mod definitions;

pub use attr::{Attr, Mutability, Returned, Type, Uniqueness};

use definitions::{ENTERPRISE_ATTRS, GROUP_ATTRS, ROSTER_ATTRS, USER_ATTRS};
use serde_json::{Value, json};

/// A schema (RFC 7643 §7).
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attr],
}

pub static USER: Schema = Schema::new(crate::scim::USER_SCHEMA, "User", "User Account", USER_ATTRS);

pub static ENTERPRISE_USER: Schema = Schema::new(
    crate::scim::ENTERPRISE_USER_SCHEMA,
    "EnterpriseUser",
    "Enterprise User",
    ENTERPRISE_ATTRS,
);

pub static ROSTER_USER: Schema = Schema::new(
    crate::scim::ROSTER_USER_SCHEMA,
    "RosterUser",
    "Roster's directory fields",
    ROSTER_ATTRS,
);

pub static GROUP: Schema = Schema::new(crate::scim::GROUP_SCHEMA, "Group", "Group", GROUP_ATTRS);

/// Every schema `/Schemas` serves.
pub static ALL: [&Schema; 4] = [&USER, &ENTERPRISE_USER, &ROSTER_USER, &GROUP];

/// The User extension schemas.
pub static USER_EXTENSIONS: [&Schema; 2] = [&ENTERPRISE_USER, &ROSTER_USER];

/// Schemas are identified by their id.
impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Schema {
    /// A schema from its id (URN), name, description and attributes.
    const fn new(
        id: &'static str,
        name: &'static str,
        description: &'static str,
        attributes: &'static [Attr],
    ) -> Self {
        Self {
            id,
            name,
            description,
            attributes,
        }
    }

    /// An attribute by name, case-insensitively.
    pub fn attr(&self, name: &str) -> Option<&'static Attr> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The schema as `/Schemas/{id}` returns it; `base` is the SCIM base URL.
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(|a| a.to_json()).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base}/Schemas/{}", self.id),
            },
        })
    }
}

/// A User extension schema by its URN, case-insensitively.
pub fn user_extension(urn: &str) -> Option<&'static Schema> {
    USER_EXTENSIONS
        .iter()
        .copied()
        .find(|s| s.id.eq_ignore_ascii_case(urn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_case_insensitive_and_canonical() {
        assert_eq!(USER.attr("USERNAME").map(|a| a.name), Some("userName"));
        let name = USER.attr("name").expect("name");
        assert_eq!(
            name.sub_attr("givenname").map(|a| a.name),
            Some("givenName")
        );
        let ext = user_extension("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user")
            .expect("ext");
        assert_eq!(
            ext.attr("EMPLOYEENUMBER").map(|a| a.name),
            Some("employeeNumber")
        );
        assert!(USER.attr("nope").is_none());
    }

    #[test]
    fn schemas_render_as_rfc_7643_section_7() {
        let v = USER.to_json("http://x/scim/v2");
        assert_eq!(v["id"], crate::scim::USER_SCHEMA);
        let user_name = &v["attributes"][0];
        assert_eq!(user_name["name"], "userName");
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["caseExact"], false);
        let attribute = |name: &str| {
            v["attributes"]
                .as_array()
                .expect("list")
                .iter()
                .find(|a| a["name"] == name)
                .expect(name)
        };
        let emails = attribute("emails");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"][2]["canonicalValues"][0], "work");
        assert_eq!(attribute("password")["returned"], "never");
    }
}
