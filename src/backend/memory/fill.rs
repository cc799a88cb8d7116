//! Fill leases on the memory backend: the lease lives in the entry of the
//! key it fills, so every write to the key, which replaces or removes the
//! entry, voids it.

use std::time::Duration;

use moka::ops::compute::Op;

use tokio::time::Instant;

use super::entry::{deadline, Entry, Kind, Lease};
use super::MemoryBackend;
use crate::backend::{CasToken, FillLease, FillRead, LeaseToken};

impl MemoryBackend {
    /// A fresh value, or the lease (granted or busy) with any stale value.
    pub(super) async fn lease_read(&self, key: &str, lease: Duration) -> FillRead {
        // A fresh value (or a lock record, which reads as one) needs no
        // lease: read it without the key's lock.
        let now = Instant::now();
        if let Some(entry) = self.inner.keys.cached_at(key, now).await {
            if let (Some(value), false) = (entry.live_value(now), entry.stale) {
                return FillRead::hit(value.clone(), CasToken::from_version(entry.version));
            }
        }
        // Boxed: the compute's future would make the hit's kilobytes larger.
        Box::pin(self.lease_compute(key, lease)).await
    }

    /// `lease_read` past a hit: under the key's lock.
    async fn lease_compute(&self, key: &str, lease: Duration) -> FillRead {
        self.inner
            .keys
            .compute(key, |live, now| {
                let value = live.and_then(|entry| {
                    let value = entry.live_value(now)?.clone();
                    Some((value, CasToken::from_version(entry.version)))
                });
                let stale = live.is_some_and(|entry| entry.stale);
                if let (Some((value, token)), false) = (&value, stale) {
                    return (Op::Nop, FillRead::hit(value.clone(), token.clone()));
                }
                if live.is_some_and(|entry| entry.live_lease(now).is_some()) {
                    let busy = FillRead {
                        value,
                        stale,
                        lease: FillLease::Busy,
                    };
                    return (Op::Nop, busy);
                }
                let granted = Lease {
                    id: self.next_version(),
                    until: deadline(now, lease),
                };
                let mut leased = match (live, &value) {
                    (Some(entry), Some(_)) => entry.clone(),
                    _ => Entry {
                        value: None,
                        kind: Kind::Value,
                        version: granted.id,
                        expires_at: None,
                        stale: false,
                        lease: None,
                    },
                };
                leased.lease = Some(granted);
                let read = FillRead {
                    value,
                    stale,
                    lease: FillLease::Granted(LeaseToken::from_version(granted.id)),
                };
                (Op::Put(leased), read)
            })
            .await
    }

    /// Stores `value` if `lease` is still the live lease on `key`.
    pub(super) async fn lease_store(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> bool {
        let Some(id) = lease.version() else {
            return false;
        };
        let stored = self
            .inner
            .keys
            .compute(key, |live, now| {
                let ours = live
                    .and_then(|entry| entry.live_lease(now))
                    .is_some_and(|lease| lease.id == id);
                if ours {
                    (Op::Put(self.entry(value, ttl)), true)
                } else {
                    (Op::Nop, false)
                }
            })
            .await;
        self.inner.watchers.wake(key);
        stored
    }

    /// Ends `lease` without storing: drops a placeholder, keeps a stale value.
    pub(super) async fn lease_release(&self, key: &str, lease: &LeaseToken) -> bool {
        let Some(id) = lease.version() else {
            return false;
        };
        let released = self
            .inner
            .keys
            .compute(key, |live, now| match live {
                Some(entry) if entry.live_lease(now).is_some_and(|lease| lease.id == id) => {
                    if entry.live_value(now).is_some() {
                        let mut kept = entry.clone();
                        kept.lease = None;
                        (Op::Put(kept), true)
                    } else {
                        (Op::Remove, true)
                    }
                }
                _ => (Op::Nop, false),
            })
            .await;
        self.inner.watchers.wake(key);
        released
    }

    /// Marks a stored value stale for at most `grace`, voiding any lease.
    pub(super) async fn stale_mark(&self, key: &str, grace: Duration) -> bool {
        let marked = self
            .inner
            .keys
            .compute(key, |live, now| match live {
                Some(entry) if entry.live_value(now).is_some() => {
                    let until = deadline(now, grace);
                    // A lock record marked stale becomes a value, as on Redis:
                    // its holder can no longer release or extend it.
                    let mut stale = entry.clone();
                    stale.kind = Kind::Value;
                    stale.stale = true;
                    stale.lease = None;
                    stale.version = self.next_version();
                    stale.expires_at = Some(entry.expires_at.map_or(until, |at| at.min(until)));
                    (Op::Put(stale), true)
                }
                // A fill placeholder: the fill it stands for read old data.
                Some(_) => (Op::Remove, false),
                None => (Op::Nop, false),
            })
            .await;
        self.inner.watchers.wake(key);
        marked
    }
}
