//! One stored entry, and the atomic read-modify-write every operation is
//! built on.

use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache as MokaCache;
use moka::ops::compute::Op;
use moka::Expiry;
use tokio::time::Instant;

pub(super) use crate::clock::deadline;

/// A table of entries by key.
pub(super) type Table = MokaCache<String, Entry>;

/// What a key holds: a value, a fill placeholder (no value, a lease), or a
/// stale value being refreshed (a value, a lease). Lock records are values
/// holding the owner token.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// `None`: a fill placeholder; the key reads as absent.
    pub(super) value: Option<Bytes>,
    /// The CAS version; drawn from the backend's one counter.
    pub(super) version: u64,
    /// When the value expires (`None`: never).
    pub(super) expires_at: Option<Instant>,
    /// Marked stale by `mark_stale`.
    pub(super) stale: bool,
    /// The fill lease out on the key, if any.
    pub(super) lease: Option<Lease>,
}

/// A fill lease: its id and when it runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Lease {
    pub(super) id: u64,
    pub(super) until: Instant,
}

impl Entry {
    /// A plain value.
    pub(super) fn value(value: Bytes, version: u64, ttl: Option<Duration>) -> Entry {
        Entry {
            value: Some(value),
            version,
            expires_at: ttl.map(|ttl| deadline(Instant::now(), ttl)),
            stale: false,
            lease: None,
        }
    }

    /// The value, unless there is none or it has expired.
    pub(super) fn live_value(&self, now: Instant) -> Option<&Bytes> {
        let live = self.expires_at.is_none_or(|at| at > now);
        self.value.as_ref().filter(|_| live)
    }

    /// The fill lease, unless there is none or it has run out.
    pub(super) fn live_lease(&self, now: Instant) -> Option<Lease> {
        self.lease.filter(|lease| lease.until > now)
    }

    /// Whether anything in the entry still counts.
    pub(super) fn is_live(&self, now: Instant) -> bool {
        self.live_value(now).is_some() || self.live_lease(now).is_some()
    }

    /// How long the value has left (`None`: it never expires).
    pub(super) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.expires_at.map(|at| at.saturating_duration_since(now))
    }

    /// When moka may drop the entry: once both the value and the lease are
    /// over.
    fn reclaim_after(&self, now: Instant) -> Option<Duration> {
        let value = match (&self.value, self.expires_at) {
            (Some(_), None) => return None,
            (Some(_), Some(at)) => at.saturating_duration_since(now),
            (None, _) => Duration::ZERO,
        };
        let lease = self.lease.map_or(Duration::ZERO, |lease| {
            lease.until.saturating_duration_since(now)
        });
        Some(value.max(lease))
    }
}

/// Tells moka when to reclaim an entry: when its own expiry says so.
pub(super) struct ReclaimAtExpiry;

impl Expiry<String, Entry> for ReclaimAtExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        entry.reclaim_after(Instant::now())
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        entry.reclaim_after(Instant::now())
    }
}

/// Runs `decide` on the live entry at `key` (`None`: absent, or nothing in
/// it counts any more) under moka's per-key lock, applies the [`Op`] it
/// returns and hands back its answer. Every write goes through here, so
/// writes to one key are atomic against each other.
pub(super) async fn compute<R>(
    table: &Table,
    key: &str,
    decide: impl FnOnce(Option<&Entry>, Instant) -> (Op<Entry>, R),
) -> R {
    let mut answer = None;
    table
        .entry_by_ref(key)
        .and_compute_with(|current| {
            let now = Instant::now();
            let live = current
                .as_ref()
                .map(|entry| entry.value())
                .filter(|entry| entry.is_live(now));
            let (op, decided) = decide(live, now);
            answer = Some(decided);
            std::future::ready(op)
        })
        .await;
    // `and_compute_with` always runs the closure once.
    answer.expect("moka runs the compute closure exactly once")
}

/// The live entry at `key`, read without a lock.
pub(super) async fn live(table: &Table, key: &str) -> Option<Entry> {
    table
        .get(key)
        .await
        .filter(|entry| entry.is_live(Instant::now()))
}
