//! The page's urlencoded forms: fields in order, and what the settings and mapping forms
//! say.

use super::PageError;
use crate::error::ApiError;
use axum::http::StatusCode;
use common::{
    mapping::{Mapping, Policy},
    org_chart::MatchKey,
};

/// A urlencoded form, fields in order (the mapping table repeats its field names).
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(super) fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .collect()
    }
    pub(super) fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// The form's deactivated-people choice: `keep`, or `erase` after `erase_after_days`
/// (a number the worker checks; anything unreadable is 0, which it refuses by name).
pub(super) fn deactivated_people(form: &Fields) -> Option<common::messages::DeactivatedPeople> {
    use common::messages::DeactivatedPeople;
    match form.get("deactivated_people")? {
        "erase" => Some(DeactivatedPeople::Erase {
            after_days: form
                .get("erase_after_days")
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0),
        }),
        _ => Some(DeactivatedPeople::Keep),
    }
}

/// The manager match order from the form's `manager_match` selects, in order, blanks
/// skipped; `None` when the form has none (it leaves the setting as it is).
pub(super) fn manager_match(form: &Fields) -> Result<Option<Vec<MatchKey>>, PageError> {
    let chosen = form.all("manager_match");
    if chosen.is_empty() {
        return Ok(None);
    }
    let keys = chosen
        .into_iter()
        .filter(|k| !k.is_empty())
        .map(|k| {
            MatchKey::parse(k).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown manager key {k:?}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(keys))
}

/// The mapping table's rows, in order. A row without a field (the empty "new" row) is
/// skipped, and so is a custom field whose attribute was cleared (that removes it).
pub(super) fn mapping_rows(form: &Fields) -> Result<Vec<Mapping>, String> {
    let (fields, attrs, policies) = (
        form.all("field"),
        form.all("scim_attribute"),
        form.all("policy"),
    );
    if fields.len() != attrs.len() || fields.len() != policies.len() {
        return Err("every row needs a field, an attribute and a policy".to_owned());
    }
    let mut rows = Vec::new();
    for ((field, attr), policy) in fields.into_iter().zip(attrs).zip(policies) {
        let custom = field.starts_with(common::mapping::CUSTOM_PREFIX);
        if field.is_empty() || (custom && attr.is_empty()) {
            continue;
        }
        let policy = Policy::parse(policy)
            .ok_or_else(|| format!("field {field:?}: unknown policy {policy:?}"))?;
        rows.push(Mapping {
            field: field.to_owned(),
            scim_attribute: attr.to_owned(),
            policy,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rows_keep_order_and_skip_empty_and_cleared_custom_rows() {
        let form = Fields::parse(
            b"csrf=x&field=job_title&scim_attribute=title&policy=create_only\
              &field=custom.shirt&scim_attribute=&policy=overwrite\
              &field=custom.team&scim_attribute=urn%3Ax%3Ateam&policy=ignore\
              &field=&scim_attribute=&policy=overwrite",
        );
        let rows = mapping_rows(&form).expect("rows");
        let got: Vec<_> = rows
            .iter()
            .map(|m| (m.field.as_str(), m.scim_attribute.as_str(), m.policy))
            .collect();
        assert_eq!(
            got,
            [
                ("job_title", "title", Policy::CreateOnly),
                ("custom.team", "urn:x:team", Policy::Ignore)
            ]
        );
    }

    #[test]
    fn bad_mapping_forms_are_named() {
        let bad_policy = Fields::parse(b"field=job_title&scim_attribute=title&policy=sometimes");
        assert!(
            mapping_rows(&bad_policy)
                .expect_err("bad")
                .contains("sometimes")
        );
        let ragged =
            Fields::parse(b"field=job_title&field=email&scim_attribute=title&policy=ignore");
        assert!(mapping_rows(&ragged).is_err());
    }

    #[test]
    fn manager_match_keeps_the_order_and_skips_blanks() {
        let form = Fields::parse(b"manager_match=email&manager_match=&manager_match=id");
        assert_eq!(
            manager_match(&form).expect("valid"),
            Some(vec![MatchKey::Email, MatchKey::Id])
        );
        assert_eq!(
            manager_match(&Fields::parse(b"send_invites=on")).expect("valid"),
            None
        );
        assert!(manager_match(&Fields::parse(b"manager_match=phone")).is_err());
    }

    #[test]
    fn checkboxes_are_on_when_present() {
        let form = Fields::parse(b"csrf=x&send_invites=on");
        assert!(form.checked("send_invites"));
        assert_eq!(deactivated_people(&form), None);
        let erase = Fields::parse(b"deactivated_people=erase&erase_after_days=30");
        assert_eq!(
            deactivated_people(&erase),
            Some(common::messages::DeactivatedPeople::Erase { after_days: 30 })
        );
        let keep = Fields::parse(b"deactivated_people=keep&erase_after_days=30");
        assert_eq!(
            deactivated_people(&keep),
            Some(common::messages::DeactivatedPeople::Keep)
        );
        assert!(!form.checked("lock_synced_fields"));
        assert_eq!(form.get("csrf"), Some("x"));
    }
}
