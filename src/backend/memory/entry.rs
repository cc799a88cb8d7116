//! One stored entry: a value, a fill placeholder, or a lock record.

use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache as MokaCache;
use moka::Expiry;
use tokio::time::Instant;

pub(super) use crate::clock::deadline;

/// A table of entries by key, hashed by foldhash: seeded per table, and a
/// few nanoseconds per short key where the default SipHash takes about 20,
/// on every read and write.
pub(super) type Table = MokaCache<String, Entry, foldhash::fast::RandomState>;

/// What a key holds: a value, a fill placeholder (no value, a lease), a
/// stale value being refreshed (a value, a lease), or a lock record (the
/// owner token as its value, the lease as its expiry).
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// `None`: a fill placeholder; the key reads as absent.
    pub(super) value: Option<Bytes>,
    /// Whether the value is data or a lock record's owner token.
    pub(super) kind: Kind,
    /// The CAS version; drawn from the backend's one counter.
    pub(super) version: u64,
    /// When the value expires (`None`: never).
    pub(super) expires_at: Option<Instant>,
    /// Marked stale by `mark_stale`.
    pub(super) stale: bool,
    /// The fill lease out on the key, if any.
    pub(super) lease: Option<Lease>,
}

/// What an entry's value is. Reads see both alike (on Redis and memcached a
/// lock record is a key like any other); only `release` and `extend` tell
/// them apart: they act on lock records alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Data written by `set`, `add`, `cas`, a fill or `mark_stale`.
    Value,
    /// A lock record written by `try_lock`.
    LockRecord,
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
            kind: Kind::Value,
            version,
            expires_at: ttl.map(|ttl| deadline(Instant::now(), ttl)),
            stale: false,
            lease: None,
        }
    }

    /// A lock record held by `owner` until `expires_at`.
    pub(super) fn lock_record_until(owner: Bytes, version: u64, expires_at: Instant) -> Entry {
        Entry {
            value: Some(owner),
            kind: Kind::LockRecord,
            version,
            expires_at: Some(expires_at),
            stale: false,
            lease: None,
        }
    }

    /// Whether this is a lock record held by `owner`.
    pub(super) fn is_held_by(&self, owner: &[u8]) -> bool {
        self.kind == Kind::LockRecord && self.value.as_deref() == Some(owner)
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
