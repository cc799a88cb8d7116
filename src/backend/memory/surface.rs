//! The everyday surface on the memory backend: `touch`, `increment` and
//! `clear` as per-key atomic computes, like every other write.

use std::time::Duration;

use bytes::Bytes;
use moka::ops::compute::Op;

use super::entry::{deadline, Kind};
use super::MemoryBackend;
use crate::backend::surface::{add_to_counter, parse_counter};
use crate::Result;

impl MemoryBackend {
    /// Moves the expiry of the value (or lock record) at `key` to `ttl`
    /// from now. Its version, stale mark and any fill lease beside it stay.
    pub(super) async fn touch_entry(&self, key: &str, ttl: Duration) -> bool {
        self.inner
            .keys
            .compute(key, |live, now| match live {
                Some(entry) if entry.live_value(now).is_some() => {
                    let mut touched = entry.clone();
                    touched.expires_at = Some(deadline(now, ttl));
                    (Op::Put(touched), true)
                }
                _ => (Op::Nop, false),
            })
            .await
    }

    /// Adds `delta` to the decimal counter at `key` under the key's lock.
    /// A new version, like any write: it voids a fill lease on the key, and
    /// keeps the expiry of the value it replaces.
    pub(super) async fn add_to(&self, key: &str, delta: i64) -> Result<i64> {
        let added = self
            .inner
            .keys
            .compute(key, |live, now| {
                let current = live.and_then(|entry| entry.live_value(now).map(|v| (entry, v)));
                let next = match current {
                    Some((entry, _)) if entry.kind == Kind::LockRecord => {
                        Err(crate::Error::NotACounter {
                            key: key.to_owned(),
                        })
                    }
                    Some((_, value)) => parse_counter(key, value),
                    None => Ok(0),
                }
                .and_then(|current| add_to_counter(key, current, delta));
                match next {
                    Ok(next) => {
                        let text = Bytes::from(next.to_string());
                        let mut entry = self.entry(&text, None);
                        entry.expires_at = current.and_then(|(entry, _)| entry.expires_at);
                        (Op::Put(entry), Ok(next))
                    }
                    Err(error) => (Op::Nop, Err(error)),
                }
            })
            .await;
        if added.is_ok() {
            self.inner.watchers.wake(key);
        }
        added
    }

    /// Removes every key that starts with `prefix`, each under its lock, as
    /// `delete` would (lock records too: their waiters are woken).
    pub(super) async fn clear_prefix(&self, prefix: &str) {
        for key in self.inner.keys.keys_with_prefix(prefix) {
            let removed = self.inner.keys.compute(&key, |live, _| match live {
                Some(_) => (Op::Remove, ()),
                None => (Op::Nop, ()),
            });
            removed.await;
            self.inner.watchers.wake(&key);
        }
    }
}
