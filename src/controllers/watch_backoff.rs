//! How long a watch waits before it tries again after an error.
//!
//! kube's default is client-go's reflector backoff: up to 30 s, plus jitter of up to the same
//! again, reset only after two quiet minutes. After an API server restart every watch fails
//! at least twice (the connection drops, then its resourceVersion is too old for the new
//! server's watch cache), so each of them could wait a minute or more after the server was
//! back while objects changed unseen. An operator should notice within seconds; a watch
//! retrying every few seconds is no burden on a recovering server.

use std::time::Duration;

use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher::ExponentialBackoff;

/// The first wait after an error.
const FIRST: Duration = Duration::from_millis(500);
/// The longest wait before jitter; jitter adds up to as much again.
const LONGEST: Duration = Duration::from_secs(5);
/// After this long without an error, the next one starts from `FIRST` again.
const CALM: Duration = Duration::from_secs(60);

/// The backoff every watch of the operator uses.
pub fn watch_backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(exponential.into(), CALM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_outage_never_waits_more_than_twice_the_longest_step() {
        let waits: Vec<Duration> = watch_backoff().take(200).collect();
        assert_eq!(waits.len(), 200, "the backoff never gives up");
        assert!(waits.iter().all(|wait| *wait <= LONGEST * 2), "{waits:?}");
        assert!(waits[0] <= FIRST * 2, "{waits:?}");
        // It does back off: the waits of an outage grow to the longest step.
        assert!(waits[10..].iter().all(|wait| *wait >= LONGEST), "{waits:?}");
    }
}
