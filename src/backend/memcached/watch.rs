//! Cross-process wake-ups by polling: memcached has no pub/sub.
//!
//! One task per watched key re-reads it (`mg <key>`, no value) every poll
//! interval, jittered by ±20%, and wakes the key's waiters when what they
//! wait for is over: for a lock record, when it is absent (released or
//! expired); for a fill, when no fill lease is out on the key any more (a
//! value was stored, or the placeholder is gone). A record that merely changed owner is not a
//! release, and wakes nobody. A release followed by a new acquire within one
//! interval goes unseen; waiters then wait for the new holder, still no
//! longer than their own lease.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::client::Client;
use crate::backend::ReleaseWatch;

/// What a poller waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Until {
    /// The lock record is gone.
    Released,
    /// No fill lease is out on the key.
    Filled,
}

/// Starts polling `key` (a wire key); the poller stops when the returned
/// watch is dropped.
pub(super) fn poll(
    client: Client,
    key: String,
    wake: Arc<Notify>,
    interval: Duration,
    until: Until,
) -> ReleaseWatch {
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(jittered(interval)).await;
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

/// `interval` scaled by a random factor in [0.8, 1.2).
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.8 + 0.4 * fastrand::f64())
}

/// Stops the poller when the watch is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let interval = Duration::from_millis(50);
        for _ in 0..1_000 {
            let wait = jittered(interval);
            assert!(wait >= Duration::from_millis(40) && wait < Duration::from_millis(60));
        }
    }
}
