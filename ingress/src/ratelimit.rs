//! Rate limits. Per org: `SCIM_RATE_LIMIT_PER_SECOND` SCIM requests per second, bursts up
//! to twice that; past it, `429` with `Retry-After` and SCIM error JSON, so one org's bulk
//! push cannot starve the others. Per client address: failed authentications
//! (`AUTH_FAILURES_PER_MINUTE`, with a global backstop), so secrets cannot be guessed.

use axum::{extract::ConnectInfo, http::request::Parts};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    time::{Duration, Instant},
};
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

/// Brute force of secrets: failed authentications per client address (an IPv6 address
/// counts by its /64, which one client usually holds whole), plus a global backstop.
///
/// Roster counts these itself rather than with `governor`: only *failures* count, so a
/// request must be refused before its credential is checked (or the limit would not slow
/// guessing), yet counted only after the check fails — `governor` consumes a cell on every
/// check and cannot look without taking. A fixed window per address is also what
/// `Retry-After` can state exactly.
pub struct AuthFailures {
    per_address: u32,
    global: u32,
    window: Duration,
    state: std::sync::Mutex<FailureState>,
}

#[derive(Default)]
struct FailureState {
    /// Failures per address in that address's current window.
    addresses: std::collections::HashMap<IpAddr, Window>,
    global: Option<Window>,
    /// When expired addresses were last swept out of a full table.
    swept: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Addresses tracked at most; past it expired windows are dropped, and if that is not
/// enough new addresses are tracked only in the global count.
const MAX_TRACKED: usize = 100_000;

impl AuthFailures {
    /// Limits per minute; `0` turns either off.
    pub fn new(per_address: u32, global: u32) -> Self {
        Self::with_window(per_address, global, Duration::from_secs(60))
    }

    pub fn with_window(per_address: u32, global: u32, window: Duration) -> Self {
        Self {
            per_address,
            global,
            window,
            state: std::sync::Mutex::default(),
        }
    }

    /// `Ok` if `addr` may try to authenticate at `now`, else how long until it may.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_address == 0 && self.global == 0 {
            return Ok(()); // off: no lock on every authenticated request
        }
        let key = bucket(addr);
        let state = self.lock();
        let live = |w: &Window| now.saturating_duration_since(w.started) < self.window;
        let remaining = |w: &Window| self.window.saturating_sub(now - w.started).max(SECOND);
        let mine = state.addresses.get(&key).filter(|w| live(w));
        if let Some(w) = mine
            && self.per_address > 0
            && w.failures >= self.per_address
        {
            return Err(remaining(w));
        }
        // The backstop refuses addresses that failed lately — and, once the table is too
        // full to track another address, every address (so filling it is no way around).
        let suspect = mine.is_some() || state.addresses.len() >= MAX_TRACKED;
        if let (true, Some(g)) = (suspect, state.global.as_ref().filter(|g| live(g)))
            && self.global > 0
            && g.failures >= self.global
        {
            return Err(remaining(g));
        }
        Ok(())
    }

    /// Counts one failed authentication from `addr` at `now`.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        if self.per_address == 0 && self.global == 0 {
            return;
        }
        let key = bucket(addr);
        let window = self.window;
        let bump = |w: &mut Window| {
            if now.saturating_duration_since(w.started) >= window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        };
        let mut state = self.lock();
        bump(state.global.get_or_insert(Window {
            started: now,
            failures: 0,
        }));
        if state.addresses.len() >= MAX_TRACKED && !state.addresses.contains_key(&key) {
            // Sweeping 100 000 entries under the lock on every failure would slow every
            // authentication: at most once a second.
            if state
                .swept
                .is_none_or(|at| now.saturating_duration_since(at) >= SECOND)
            {
                state.swept = Some(now);
                state
                    .addresses
                    .retain(|_, w| now.saturating_duration_since(w.started) < window);
            }
            if state.addresses.len() >= MAX_TRACKED {
                return;
            }
        }
        bump(state.addresses.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        }));
    }

    /// The counts stay usable even if a thread panicked while holding the lock.
    fn lock(&self) -> std::sync::MutexGuard<'_, FailureState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const SECOND: Duration = Duration::from_secs(1);

/// The address a limit applies to: IPv4 as is, IPv6 by its /64.
fn bucket(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's address: the last entry of `CLIENT_IP_HEADER` when that is set and
/// parses (the one the ingress's own proxy appended), else the TCP peer's.
pub fn client_addr(parts: &Parts, settings: &common::Settings) -> IpAddr {
    let from_header = settings.client_ip_header.as_deref().and_then(|name| {
        // The last line of the header, and its last entry: what the proxy itself added
        // (a client can send its own lines and entries before it).
        let value = parts
            .headers
            .get_all(name)
            .iter()
            .next_back()?
            .to_str()
            .ok()?;
        let last = value.rsplit(',').next()?.trim();
        last.parse::<IpAddr>()
            .ok()
            .or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
    });
    from_header.unwrap_or_else(|| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
    })
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

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_its_window_ends() {
        let l = AuthFailures::new(3, 0);
        let t0 = Instant::now();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..3 {
            assert!(l.check(a, t0).is_ok());
            l.failed(a, t0);
        }
        let wait = l
            .check(a, t0 + Duration::from_secs(20))
            .expect_err("blocked");
        assert_eq!(wait, Duration::from_secs(40), "until the minute is over");
        assert!(l.check(b, t0).is_ok(), "another address is not affected");
        assert!(
            l.check(a, t0 + Duration::from_secs(60)).is_ok(),
            "a new window"
        );
        l.failed(a, t0 + Duration::from_secs(60));
        assert!(
            l.check(a, t0 + Duration::from_secs(61)).is_ok(),
            "counted afresh"
        );
        assert!(AuthFailures::new(0, 0).check(a, t0).is_ok());
    }

    #[test]
    fn the_global_backstop_refuses_only_addresses_that_failed() {
        let l = AuthFailures::new(100, 5);
        let t0 = Instant::now();
        for i in 0..5 {
            l.failed(ip(&format!("198.51.100.{i}")), t0);
        }
        assert!(l.check(ip("198.51.100.1"), t0).is_err(), "a guesser");
        assert!(
            l.check(ip("203.0.113.9"), t0).is_ok(),
            "a client that never failed"
        );
        assert!(
            l.check(ip("198.51.100.1"), t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn a_full_table_is_no_way_around_the_backstop() {
        let l = AuthFailures::new(10, 1000);
        let t0 = Instant::now();
        for i in 0..u32::try_from(MAX_TRACKED).expect("fits") {
            l.failed(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), t0);
        }
        let fresh = ip("203.0.113.9");
        assert!(
            l.check(fresh, t0).is_err(),
            "with the table full of guessers, the backstop covers every address"
        );
        l.failed(fresh, t0);
        assert!(l.check(fresh, t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let l = AuthFailures::new(2, 0);
        let t0 = Instant::now();
        l.failed(ip("2001:db8:1:2::1"), t0);
        l.failed(ip("2001:db8:1:2:ffff::9"), t0);
        assert!(l.check(ip("2001:db8:1:2::77"), t0).is_err(), "same /64");
        assert!(l.check(ip("2001:db8:1:3::1"), t0).is_ok(), "another /64");
        l.failed(ip("::ffff:192.0.2.7"), t0);
        l.failed(ip("192.0.2.7"), t0);
        assert!(l.check(ip("192.0.2.7"), t0).is_err());
    }
}
