//! The per-org SCIM rate limit: `SCIM_RATE_LIMIT_PER_SECOND` requests per second per org,
//! bursts up to twice that; past it, `429` with `Retry-After` and SCIM error JSON. One org's
//! bulk push cannot starve the others.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::{num::NonZeroU32, time::Duration};
use uuid::Uuid;

pub struct OrgLimiter {
    limiter: Option<DefaultKeyedRateLimiter<Uuid>>,
}

impl OrgLimiter {
    /// `per_second` of 0 turns the limit off.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// `Ok` if the org may make a request now, else how long to wait.
    pub fn check(&self, org: Uuid) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Forget idle orgs now and then, so the table stays as small as the active set.
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        limiter.check_key(&org).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_org_has_its_own_budget() {
        let l = OrgLimiter::new(2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let allowed = (0..10).filter(|_| l.check(a).is_ok()).count();
        assert_eq!(allowed, 4, "a burst of twice the rate");
        assert!(l.check(a).is_err());
        assert!(l.check(b).is_ok(), "another org is not affected");
        assert!(OrgLimiter::new(0).check(a).is_ok(), "0 turns it off");
    }
}
