//! Every in-process retry policy of Roster, named, with its delays: one place to read how
//! long a service waits before it tries again. Each returns a backon builder for
//! `.retry(…)` (or lapin's `with_backoff`).

use backon::ExponentialBuilder;
use std::time::Duration;

/// Reaching PostgreSQL or RabbitMQ at start-up (and recording a sent invite): 200 ms
/// doubling to 5 s, with jitter, until it answers — a service without its database or
/// broker has nothing else to do.
pub fn until_reachable() -> ExponentialBuilder {
    jittered(ms(200), secs(5)).without_max_times()
}

/// lapin's automatic recovery of a lost broker connection: 100 ms doubling to 5 s, with
/// jitter, at most `attempts` times.
pub fn broker_recovery(attempts: usize) -> ExponentialBuilder {
    jittered(ms(100), secs(5)).with_max_times(attempts)
}

/// A transient database failure while the worker handles a command (a lost connection, a
/// serialization failure, a deadlock): 50 ms doubling to 2 s, with jitter, 5 times; then
/// the broker-side retry queues take over.
pub fn database_transient() -> ExponentialBuilder {
    jittered(ms(50), secs(2)).with_max_times(5)
}

/// A transient failure sending an invite (the SMTP server or the database): 200 ms
/// doubling to 5 s, with jitter, 4 times; then the mailer's retry queues take over.
pub fn smtp_transient() -> ExponentialBuilder {
    jittered(ms(200), secs(5)).with_max_times(4)
}

/// Delays doubling from `min` to at most `max`, each plus up to itself again of jitter.
fn jittered(min: Duration, max: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    /// Each delay of `builder` (up to `take`) lies in `[base, 2 × base)`: jitter adds up to
    /// one base delay. The number of delays is the policy's number of retries.
    fn assert_delays(builder: ExponentialBuilder, take: usize, base_ms: &[u64]) {
        let got: Vec<Duration> = builder.build().take(take).collect();
        assert_eq!(got.len(), base_ms.len(), "{got:?}");
        for (d, &b) in got.iter().zip(base_ms) {
            let b = Duration::from_millis(b);
            assert!(*d >= b && *d < 2 * b, "{d:?} is not jittered {b:?}");
        }
    }

    #[test]
    fn the_policies_wait_what_they_say() {
        assert_delays(
            until_reachable(),
            8,
            &[200, 400, 800, 1600, 3200, 5000, 5000, 5000],
        );
        assert_delays(broker_recovery(3), 10, &[100, 200, 400]);
        assert_delays(database_transient(), 10, &[50, 100, 200, 400, 800]);
        assert_delays(smtp_transient(), 10, &[200, 400, 800, 1600]);
    }
}
