//! Cross-process wake-ups by polling: memcached has no pub/sub.
//!
//! One task per watched key re-reads it (`mg <key>`, no value) on a
//! [`Schedule`] that starts tight and backs off: each wait is a sixteenth
//! of the time the poller has been running, at least the first interval and
//! at most the poll interval, jittered by ±20%. It wakes the key's waiters
//! when what they wait for is over: for a lock record, when it is absent
//! (released or expired); for a fill, when no fill lease is out on the key
//! any more (a value was stored, or the placeholder is gone). A record that
//! merely changed owner is not a release, and wakes nobody. A release
//! followed by a new acquire within one interval goes unseen; waiters then
//! wait for the new holder, still no longer than their own lease.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::Client;
use crate::backend::ReleaseWatch;
use crate::clock::deadline;

/// Each wait between polls is the time already waited divided by this
/// (within the first interval and the cap): a lock or fill that ends after
/// a wait of `t` is seen at most `t / 16` late (+20% jitter), until the cap.
/// Measured in the 4-process stampede (50 ms fill), 16 put the p99 after
/// the fill ended 1.5–2.5 ms below 8, and within 1–3 ms of Redis's
/// pub/sub; it costs 18 more polls per wait.
const GROWTH: u32 = 16;

/// What a poller waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Until {
    /// The lock record is gone.
    Released,
    /// No fill lease is out on the key.
    Filled,
}

/// When a poller polls; documented for users on
/// [`MemcachedConfig::poll_interval`](super::MemcachedConfig#structfield.poll_interval).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Schedule {
    /// The shortest wait, and the first: `first_poll`, at most `cap`.
    first: Duration,
    /// The longest wait: `poll_interval`.
    cap: Duration,
}

impl Schedule {
    /// The schedule of `first_poll` and `poll_interval`; a `first` longer
    /// than `cap` is taken as `cap` (a fixed interval).
    pub(super) fn new(first: Duration, cap: Duration) -> Schedule {
        Schedule {
            first: first.min(cap),
            cap,
        }
    }

    /// The first and shortest wait (`first_poll`).
    pub(super) fn first(&self) -> Duration {
        self.first
    }

    /// The longest wait (`poll_interval`).
    pub(super) fn cap(&self) -> Duration {
        self.cap
    }

    /// The wait before the next poll, `waited` after the poller started,
    /// before jitter: `waited / 16`, within [`first`, `cap`].
    fn nominal(&self, waited: Duration) -> Duration {
        (waited / GROWTH).clamp(self.first, self.cap)
    }

    /// [`nominal`](Self::nominal) scaled by `0.8 + 0.4 × unit`, for a
    /// `unit` in [0, 1): ±20%. Never panics, whatever the durations.
    fn next(&self, waited: Duration, unit: f64) -> Duration {
        let nominal = self.nominal(waited);
        Duration::try_from_secs_f64(nominal.as_secs_f64() * (0.8 + 0.4 * unit)).unwrap_or(nominal)
    }
}

/// Starts polling `key` (a wire key); the poller stops when the returned
/// watch is dropped.
pub(super) fn poll(
    client: Client,
    key: String,
    wake: Arc<Notify>,
    schedule: Schedule,
    until: Until,
) -> ReleaseWatch {
    let task = tokio::spawn(async move {
        let started = Instant::now();
        loop {
            let now = Instant::now();
            let wait = schedule.next(now.saturating_duration_since(started), fastrand::f64());
            tokio::time::sleep_until(deadline(now, wait)).await;
            let check = async {
                match until {
                    Until::Released => client.exists("watch_releases", &key).await,
                    Until::Filled => client.lease_out("watch_fills", &key).await,
                }
            };
            match tokio::time::timeout(client.timeout, check).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::trace!(lock = key, "record gone; waking waiters");
                    wake.notify_waiters();
                }
                Ok(Err(error)) => {
                    tracing::debug!(lock = key, %error, "release poll failed; trying again");
                }
                Err(_) => {
                    tracing::debug!(lock = key, "release poll timed out; trying again");
                }
            }
        }
    });
    ReleaseWatch::new(AbortOnDrop(task))
}

/// Stops the poller when the watch is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
