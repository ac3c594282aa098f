//! Where each filterable attribute of a User or a Group is stored.

use crate::scim::{
    ScimError, USER_SCHEMA,
    filter::AttrPath,
    schema::{self, Attr},
};

/// What an attribute path refers to in the `users` table.
#[derive(Clone, Debug)]
pub(super) enum Target {
    /// A text column; `true` when it compares case-insensitively.
    Text(String, bool),
    Bool(&'static str),
    IdText,
    /// A multi-valued complex attribute (JSON array expression) and the sub-attribute
    /// compared on each element.
    Multi {
        array: String,
        sub: &'static str,
        ci: bool,
    },
    /// `meta.created`, `meta.lastModified`.
    Time(&'static str),
    /// `meta.resourceType`, and the resource's type name.
    ResourceType(&'static str),
    /// A group's `members` (`members.value`): the membership table.
    Members,
}

/// A sub-attribute of a multi-valued attribute, by its canonical (schema) name.
pub(super) fn sub_key(p: &AttrPath, def: &'static Attr) -> Result<&'static str, ScimError> {
    let sub = def
        .sub_attr(&p.name)
        .filter(|_| p.sub.is_none())
        .ok_or_else(|| {
            ScimError::invalid_filter(format!("{} has no sub-attribute {}", def.name, p.dotted()))
        })?;
    Ok(sub.name)
}

pub(super) fn core_uri(p: &AttrPath) -> bool {
    p.uri
        .as_deref()
        .is_none_or(|u| u == USER_SCHEMA.to_ascii_lowercase())
}

/// Where a Group attribute is stored.
pub(super) fn group_target(p: &AttrPath) -> Result<Target, ScimError> {
    let core = p
        .uri
        .as_deref()
        .is_none_or(|u| u == crate::scim::GROUP_SCHEMA.to_ascii_lowercase());
    Ok(match (core, p.dotted().as_str()) {
        (true, "displayname") => Target::Text("display_name".into(), true),
        (true, "externalid") => Target::Text("external_id".into(), false),
        (true, "id") => Target::IdText,
        (true, "members" | "members.value") => Target::Members,
        (true, "meta.created") => Target::Time("created_at"),
        (true, "meta.lastmodified") => Target::Time("updated_at"),
        (true, "meta.resourcetype") => Target::ResourceType("Group"),
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "filtering groups on {} is not supported",
                p.dotted()
            )));
        }
    })
}

/// Resolves a User attribute path to where it is stored. Names come from the static
/// schemas, never from the request, so they are safe to splice into SQL.
pub(super) fn user_target(p: &AttrPath) -> Result<Target, ScimError> {
    let unsupported =
        || ScimError::invalid_filter(format!("filtering on {} is not supported", p.dotted()));
    if let Some(uri) = p.uri.as_deref().filter(|_| !core_uri(p)) {
        let ext = schema::user_extension(uri)
            .ok_or_else(|| ScimError::invalid_filter(format!("unknown schema {uri:?}")))?;
        let def = ext.attr(&p.name).ok_or_else(unsupported)?;
        return Ok(match (&p.sub, def.sub.is_empty()) {
            (None, true) => Target::Text(
                format!("(resource->'{}'->>'{}')", ext.id, def.name),
                !def.case_exact,
            ),
            (Some(s), false) => {
                let sub = def.sub_attr(s).ok_or_else(unsupported)?;
                Target::Text(
                    format!("(resource->'{}'->'{}'->>'{}')", ext.id, def.name, sub.name),
                    !sub.case_exact,
                )
            }
            // `manager eq "id"` means its value.
            (None, false) => Target::Text(
                format!("(resource->'{}'->'{}'->>'value')", ext.id, def.name),
                false,
            ),
            _ => return Err(unsupported()),
        });
    }
    // Indexed columns first: where Okta and Entra look users up.
    Ok(match p.dotted().as_str() {
        "username" => Target::Text("user_name".into(), true),
        "externalid" => Target::Text("external_id".into(), false),
        "id" => Target::IdText,
        "displayname" => Target::Text("display_name".into(), true),
        "name.givenname" => Target::Text("given_name".into(), true),
        "name.familyname" => Target::Text("family_name".into(), true),
        "emails" | "emails.value" => Target::Multi {
            array: "resource->'emails'".into(),
            sub: "value",
            ci: true,
        },
        "active" => Target::Bool("active"),
        "meta.created" => Target::Time("created_at"),
        "meta.lastmodified" => Target::Time("updated_at"),
        "meta.resourcetype" => Target::ResourceType("User"),
        _ => {
            let def = schema::USER
                .attr(&p.name)
                .filter(|d| d.name != "groups" && d.name != "password")
                .ok_or_else(unsupported)?;
            match (def.multi, &p.sub, def.sub.is_empty()) {
                (false, None, true) if def.ty != schema::Type::Boolean => {
                    Target::Text(format!("(resource->>'{}')", def.name), !def.case_exact)
                }
                (false, Some(s), false) => {
                    let sub = def.sub_attr(s).ok_or_else(unsupported)?;
                    Target::Text(
                        format!("(resource->'{}'->>'{}')", def.name, sub.name),
                        !sub.case_exact,
                    )
                }
                (true, sub, false) => {
                    let sub = match sub {
                        Some(s) => def.sub_attr(s).ok_or_else(unsupported)?,
                        None => def.sub_attr("value").ok_or_else(unsupported)?,
                    };
                    Target::Multi {
                        array: format!("resource->'{}'", def.name),
                        sub: sub.name,
                        ci: !sub.case_exact,
                    }
                }
                _ => return Err(unsupported()),
            }
        }
    })
}
