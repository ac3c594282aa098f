//! The payloads of the commands that change an org's settings: `settings.update` (with
//! the deactivated-people policy and the mass-deprovisioning guard) and the guard's
//! decision.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Org settings to change; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_invites: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_synced_fields: Option<bool>,
    /// What happens to people Okta deactivated (docs/data-lifecycle.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_people: Option<DeactivatedPeople>,
    /// The mass-deprovisioning guard's settings; absent fields stay as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovision_guard: Option<GuardSettings>,
    /// The keys a person's manager value is tried against, in order (`org_chart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_match: Option<Vec<crate::org_chart::MatchKey>>,
}

/// The org's choice about deactivated people: keep them (the default), or erase them —
/// as a delete would — `after_days` days after their deactivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeactivatedPeople {
    Keep,
    Erase {
        /// 1 to 3650.
        after_days: u32,
    },
}

impl DeactivatedPeople {
    /// The most days `erase` may wait.
    pub const MAX_DAYS: u32 = 3650;

    /// As stored: `None` keeps, `Some(n)` erases after `n` days.
    pub fn after_days(self) -> Option<u32> {
        match self {
            DeactivatedPeople::Keep => None,
            DeactivatedPeople::Erase { after_days } => Some(after_days),
        }
    }

    pub fn from_days(days: Option<i32>) -> Self {
        match days.and_then(|d| u32::try_from(d).ok()) {
            Some(after_days) => DeactivatedPeople::Erase { after_days },
            None => DeactivatedPeople::Keep,
        }
    }

    /// An error naming the problem, for a bad `after_days`.
    pub fn validate(self) -> Result<(), String> {
        match self.after_days() {
            Some(d) if d == 0 || d > Self::MAX_DAYS => Err(format!(
                "deactivated_people.after_days must be 1 to {}",
                Self::MAX_DAYS
            )),
            _ => Ok(()),
        }
    }
}

/// The mass-deprovisioning guard of an org (docs/admin.md): once more than
/// `max(min_count, threshold_percent % of its active people)` people are deactivated or
/// deleted within `window_minutes`, further deactivations and deletions are held (`503`)
/// until an admin approves or rejects them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_percent: Option<u32>,
    /// 1 to 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    /// 1 to 10080 (a week).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<u32>,
}

impl GuardSettings {
    /// Every value out of range, named; `Ok` when all given values are in range.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let check = |name: &str, v: Option<u32>, max: u32, problems: &mut Vec<String>| {
            if let Some(v) = v
                && !(1..=max).contains(&v)
            {
                problems.push(format!("{name} must be 1 to {max}, not {v}"));
            }
        };
        check(
            "threshold_percent",
            self.threshold_percent,
            100,
            &mut problems,
        );
        check("min_count", self.min_count, 100_000, &mut problems);
        check("window_minutes", self.window_minutes, 10_080, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// An admin's decision on the deactivations and deletions the guard holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardDecision {
    /// The held changes succeed on the identity provider's next retry; the count starts again.
    Approve,
    /// The held changes, and every other deactivation or deletion, stay refused until the
    /// window has passed.
    Reject,
}

/// `POST /admin/v1/deprovision-guard/{approve,reject}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideGuard {
    pub decision: GuardDecision,
}
