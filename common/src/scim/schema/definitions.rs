//! The attributes of each schema Roster implements: the core User, the enterprise and
//! Roster extensions, and Group.

use super::attr::{Attr, Mutability, Returned, Type, attr, string};

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

pub(super) const USER_ATTRS: &[Attr] = &[
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

pub(super) const ENTERPRISE_ATTRS: &[Attr] = &[
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

pub(super) const ROSTER_ATTRS: &[Attr] = &[
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

pub(super) const GROUP_ATTRS: &[Attr] = &[
    string("displayName", "A human-readable name for the Group.").required(),
    attr("members", Type::Complex, "A list of members of the Group.")
        .multi()
        .sub(GROUP_MEMBERS_SUB),
];
