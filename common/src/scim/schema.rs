//! The schemas Roster implements (RFC 7643 §4, §7, §8.7.1) as data: the core User, the
//! enterprise extension, Roster's own extension, and Group. They give attribute names
//! their canonical spelling, tell filters which strings compare case-exactly, and are what
//! `/Schemas` serves.

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    DateTime,
    Reference,
    Complex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
}

/// One attribute definition (RFC 7643 §7).
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub description: &'static str,
    pub sub: &'static [Attr],
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
}

const fn attr(name: &'static str, ty: Type, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        description,
        sub: &[],
        canonical: &[],
        reference_types: &[],
    }
}

const fn string(name: &'static str, description: &'static str) -> Attr {
    attr(name, Type::String, description)
}

impl Attr {
    const fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn read_only(mut self) -> Self {
        self.mutability = Mutability::ReadOnly;
        self
    }
    const fn immutable(mut self) -> Self {
        self.mutability = Mutability::Immutable;
        self
    }
    const fn unique(mut self) -> Self {
        self.uniqueness = Uniqueness::Server;
        self
    }
    const fn sub(mut self, sub: &'static [Attr]) -> Self {
        self.sub = sub;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical = values;
        self
    }
    const fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }

    /// A sub-attribute by name, case-insensitively.
    pub fn sub_attr(&self, name: &str) -> Option<&'static Attr> {
        self.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn to_json(self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": match self.ty {
                Type::String => "string",
                Type::Boolean => "boolean",
                Type::DateTime => "dateTime",
                Type::Reference => "reference",
                Type::Complex => "complex",
            },
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "mutability": match self.mutability {
                Mutability::ReadOnly => "readOnly",
                Mutability::ReadWrite => "readWrite",
                Mutability::Immutable => "immutable",
                Mutability::WriteOnly => "writeOnly",
            },
            "returned": match self.returned {
                Returned::Always => "always",
                Returned::Never => "never",
                Returned::Default => "default",
            },
            "uniqueness": match self.uniqueness {
                Uniqueness::None => "none",
                Uniqueness::Server => "server",
            },
        });
        if matches!(self.ty, Type::String | Type::Reference) {
            v["caseExact"] = json!(self.case_exact);
        }
        if !self.canonical.is_empty() {
            v["canonicalValues"] = json!(self.canonical);
        }
        if !self.reference_types.is_empty() {
            v["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub.is_empty() {
            v["subAttributes"] = Value::Array(self.sub.iter().map(|a| a.to_json()).collect());
        }
        v
    }
}

const TYPE_PRIMARY: [Attr; 2] = [
    string("type", "A label indicating the value's function."),
    attr(
        "primary",
        Type::Boolean,
        "Whether this is the primary value.",
    ),
];

const EMAIL_SUB: &[Attr] = &[
    string("value", "The email address."),
    string("display", "A human-readable name."),
    string("type", "A label indicating the address's function.")
        .canonical(&["work", "home", "other"]),
    TYPE_PRIMARY[1],
];
const PHONE_SUB: &[Attr] = &[
    string("value", "The phone number."),
    string("display", "A human-readable name."),
    string("type", "A label indicating the number's function.")
        .canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
    TYPE_PRIMARY[1],
];
const VALUE_SUB: &[Attr] = &[
    string("value", "The value."),
    string("display", "A human-readable name."),
    TYPE_PRIMARY[0],
    TYPE_PRIMARY[1],
];
const ADDRESS_SUB: &[Attr] = &[
    string("formatted", "The full mailing address."),
    string("streetAddress", "The street address."),
    string("locality", "The city or locality."),
    string("region", "The state or region."),
    string("postalCode", "The zip code or postal code."),
    string("country", "The country."),
    string("type", "A label indicating the address's function.")
        .canonical(&["work", "home", "other"]),
    TYPE_PRIMARY[1],
];
const NAME_SUB: &[Attr] = &[
    string("formatted", "The full name."),
    string("familyName", "The family name."),
    string("givenName", "The given name."),
    string("middleName", "The middle name."),
    string("honorificPrefix", "The honorific prefix."),
    string("honorificSuffix", "The honorific suffix."),
];
const USER_GROUPS_SUB: &[Attr] = &[
    string("value", "The group's id.").read_only(),
    attr("$ref", Type::Reference, "The group's URI.")
        .read_only()
        .refs(&["Group"]),
    string("display", "The group's displayName.").read_only(),
    string("type", "How the membership was derived.")
        .read_only()
        .canonical(&["direct"]),
];

const USER_ATTRS: &[Attr] = &[
    string(
        "userName",
        "Unique identifier for the User, case-insensitive.",
    )
    .required()
    .unique(),
    attr("name", Type::Complex, "The components of the user's name.").sub(NAME_SUB),
    string("displayName", "The name of the User, suitable for display."),
    string("nickName", "The casual way to address the user."),
    attr(
        "profileUrl",
        Type::Reference,
        "A URI of the user's online profile.",
    )
    .refs(&["external"]),
    string("title", "The user's title, such as \"Vice President\"."),
    string(
        "userType",
        "The relationship between the organization and the user.",
    ),
    string(
        "preferredLanguage",
        "The user's preferred written or spoken language.",
    ),
    string("locale", "The user's default location for localization."),
    string("timezone", "The user's time zone, in IANA format."),
    attr("active", Type::Boolean, "The user's administrative status."),
    Attr {
        mutability: Mutability::WriteOnly,
        returned: Returned::Never,
        ..string(
            "password",
            "Accepted and ignored: Roster stores no passwords.",
        )
    },
    attr("emails", Type::Complex, "Email addresses for the user.")
        .multi()
        .sub(EMAIL_SUB),
    attr("phoneNumbers", Type::Complex, "Phone numbers for the user.")
        .multi()
        .sub(PHONE_SUB),
    attr("ims", Type::Complex, "Instant messaging addresses.")
        .multi()
        .sub(VALUE_SUB),
    attr("photos", Type::Complex, "URLs of photos of the user.")
        .multi()
        .sub(VALUE_SUB),
    attr("addresses", Type::Complex, "Physical mailing addresses.")
        .multi()
        .sub(ADDRESS_SUB),
    attr("groups", Type::Complex, "The groups the user belongs to.")
        .multi()
        .read_only()
        .sub(USER_GROUPS_SUB),
    attr("entitlements", Type::Complex, "Entitlements of the user.")
        .multi()
        .sub(VALUE_SUB),
    attr("roles", Type::Complex, "Roles of the user.")
        .multi()
        .sub(VALUE_SUB),
];

const MANAGER_SUB: &[Attr] = &[
    string("value", "The id of the user's manager."),
    attr("$ref", Type::Reference, "The URI of the manager.")
        .case_exact()
        .refs(&["User"]),
    string("displayName", "The manager's displayName.").read_only(),
];

const ENTERPRISE_ATTRS: &[Attr] = &[
    string(
        "employeeNumber",
        "A string identifier, typically numeric or alphanumeric.",
    ),
    string("costCenter", "The name of a cost center."),
    string("organization", "The name of an organization."),
    string("division", "The name of a division."),
    string("department", "The name of a department."),
    attr("manager", Type::Complex, "The user's manager.").sub(MANAGER_SUB),
];

const ROSTER_ATTRS: &[Attr] = &[
    string(
        "preferredName",
        "The name the person goes by in the directory.",
    ),
    string("pronouns", "The person's pronouns."),
    string("startDate", "The first working day, as YYYY-MM-DD."),
    string("location", "The office or place of work."),
];

const GROUP_MEMBERS_SUB: &[Attr] = &[
    string("value", "The member's id.").immutable(),
    attr("$ref", Type::Reference, "The member's URI.")
        .immutable()
        .refs(&["User", "Group"]),
    string("display", "The member's display name.").immutable(),
    string("type", "The member's type.")
        .immutable()
        .canonical(&["User", "Group"]),
];

const GROUP_ATTRS: &[Attr] = &[
    string("displayName", "A human-readable name for the Group.").required(),
    attr("members", Type::Complex, "A list of members of the Group.")
        .multi()
        .sub(GROUP_MEMBERS_SUB),
];

/// A schema (RFC 7643 §7).
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attr],
}

pub static USER: Schema = Schema {
    id: super::USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: USER_ATTRS,
};

pub static ENTERPRISE_USER: Schema = Schema {
    id: super::ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_ATTRS,
};

pub static ROSTER_USER: Schema = Schema {
    id: super::ROSTER_USER_SCHEMA,
    name: "RosterUser",
    description: "Roster's directory fields",
    attributes: ROSTER_ATTRS,
};

pub static GROUP: Schema = Schema {
    id: super::GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: GROUP_ATTRS,
};

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
        assert_eq!(v["id"], super::super::USER_SCHEMA);
        let user_name = &v["attributes"][0];
        assert_eq!(user_name["name"], "userName");
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["caseExact"], false);
        let emails = v["attributes"]
            .as_array()
            .expect("list")
            .iter()
            .find(|a| a["name"] == "emails")
            .expect("emails");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"][2]["canonicalValues"][0], "work");
        let password = v["attributes"]
            .as_array()
            .expect("list")
            .iter()
            .find(|a| a["name"] == "password")
            .expect("pw");
        assert_eq!(password["returned"], "never");
    }
}
