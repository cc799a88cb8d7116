//! The small types the [`Backend`] primitives take and return: lock
//! attempts and records, compare-and-set tokens, release watches, and the
//! fill leases' reads, tokens and batch entries.
//!
//! Fill leases follow Facebook's memcache leases (Nishtala et al., "Scaling
//! Memcache at Facebook", NSDI 2013, §3.2.1): a read that misses hands one
//! caller a *lease* bound to the key; the caller's write-back is accepted
//! only while that lease is still valid; any other write to the key — a
//! `set`, `add`, `cas`, `delete` or [`mark_stale`](Backend::mark_stale) —
//! voids it. A fill that read old data before a delete can then never
//! store that old data after the delete.

use bytes::Bytes;

use std::time::Duration;

#[cfg(doc)]
use super::Backend;

/// Whether [`Backend::try_lock`] issues a fencing token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fencing {
    /// Only create the record (the stampede guard does not need a token).
    Skip,
    /// Also increment the key's fencing counter, atomically with the create.
    Issue,
}

/// What [`Backend::try_lock`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockAttempt {
    /// The record is ours.
    Acquired {
        /// The fencing token, when one was asked for.
        fence: Option<u64>,
    },
    /// Someone else's record is there.
    Held {
        /// How long until its lease runs out, when the backend told us
        /// without an extra round trip.
        remaining: Option<Duration>,
    },
}

/// A lock record as [`Backend::lock_record`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockRecord {
    /// The owner token stored in the record.
    pub owner: Bytes,
    /// How long until the record expires (`None`: it does not).
    pub remaining: Option<Duration>,
}

/// A compare-and-set token: proof of which write to a key was seen.
///
/// Get one from [`Cache::gets`](crate::Cache::gets) and hand it back to
/// [`Cache::cas`](crate::Cache::cas). Tokens are opaque to users; the
/// constructors are for [`Backend`] implementations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CasToken(TokenRepr);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TokenRepr {
    Version(u64),
    Value(Bytes),
}

impl CasToken {
    /// A token for a write version (a memcached CAS unique, a counter, a nonce).
    pub fn from_version(version: u64) -> Self {
        CasToken(TokenRepr::Version(version))
    }

    /// A token that matches while the stored bytes are exactly `value`: for
    /// values that carry no version, such as ones written by other clients.
    pub fn from_value(value: Bytes) -> Self {
        CasToken(TokenRepr::Value(value))
    }

    /// The version, for tokens made by [`from_version`](CasToken::from_version).
    pub fn version(&self) -> Option<u64> {
        match &self.0 {
            TokenRepr::Version(version) => Some(*version),
            TokenRepr::Value(_) => None,
        }
    }

    /// The bytes, for tokens made by [`from_value`](CasToken::from_value).
    pub fn value(&self) -> Option<&Bytes> {
        match &self.0 {
            TokenRepr::Version(_) => None,
            TokenRepr::Value(value) => Some(value),
        }
    }
}

/// Keeps a cross-process release subscription alive; dropping it ends it.
///
/// Returned by [`Backend::watch_releases`]. A backend puts whatever undoes
/// its subscription (an unsubscribe on drop, an aborted poller) inside.
#[must_use = "the watch ends when this is dropped"]
pub struct ReleaseWatch {
    _guard: Option<Box<dyn Send + Sync>>,
}

impl ReleaseWatch {
    /// A watch that watches nothing.
    pub fn none() -> Self {
        ReleaseWatch { _guard: None }
    }

    /// A watch that lives as long as `guard`.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        ReleaseWatch {
            _guard: Some(Box::new(guard)),
        }
    }
}

impl std::fmt::Debug for ReleaseWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseWatch")
            .field("active", &self._guard.is_some())
            .finish()
    }
}

// ----- fill leases ------------------------------------------------------

/// What [`Backend::read_for_fill`] found.
///
/// ```
/// use stampede::backend::{FillLease, FillRead};
///
/// let miss = FillRead::missing(FillLease::Busy);
/// assert!(miss.value.is_none() && !miss.stale);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillRead {
    /// The stored value and its compare-and-set token, fresh or stale.
    pub value: Option<(Bytes, CasToken)>,
    /// The value was marked stale by [`Backend::mark_stale`]: readable, but
    /// due for a refresh.
    pub stale: bool,
    /// Who fills the key, if it needs filling.
    pub lease: FillLease,
}

impl FillRead {
    /// A fresh value: nobody needs to fill.
    pub fn hit(value: Bytes, token: CasToken) -> FillRead {
        FillRead {
            value: Some((value, token)),
            stale: false,
            lease: FillLease::NotNeeded,
        }
    }

    /// No value is stored; `lease` says who fills it.
    pub fn missing(lease: FillLease) -> FillRead {
        FillRead {
            value: None,
            stale: false,
            lease,
        }
    }
}

/// The fill lease in a [`FillRead`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FillLease {
    /// The value is fresh; no lease was taken.
    NotNeeded,
    /// The caller holds the lease: it fills, then stores with
    /// [`Backend::store_filled`] or gives up with [`Backend::release_fill`].
    Granted(LeaseToken),
    /// Someone else holds the lease and is filling.
    Busy,
    /// The key needs filling, and the read did not ask for the lease
    /// ([`Backend::peek_for_fill`]).
    NotAsked,
}

/// Proof of a fill lease, handed back to [`Backend::store_filled`] and
/// [`Backend::release_fill`]. Opaque to users; the constructors are for
/// [`Backend`] implementations.
///
/// ```
/// use stampede::backend::LeaseToken;
///
/// assert_eq!(LeaseToken::from_version(7).version(), Some(7));
/// assert_eq!(LeaseToken::from_bytes("abc".into()).bytes().map(|b| &b[..]), Some(&b"abc"[..]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseToken(LeaseRepr);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LeaseRepr {
    Version(u64),
    Bytes(Bytes),
}

impl LeaseToken {
    /// A token that is a number (a memcached CAS unique, a counter).
    pub fn from_version(version: u64) -> Self {
        LeaseToken(LeaseRepr::Version(version))
    }

    /// A token that is a byte string (a random owner id).
    pub fn from_bytes(bytes: Bytes) -> Self {
        LeaseToken(LeaseRepr::Bytes(bytes))
    }

    /// The number, for tokens made by [`from_version`](LeaseToken::from_version).
    pub fn version(&self) -> Option<u64> {
        match &self.0 {
            LeaseRepr::Version(version) => Some(*version),
            LeaseRepr::Bytes(_) => None,
        }
    }

    /// The bytes, for tokens made by [`from_bytes`](LeaseToken::from_bytes).
    pub fn bytes(&self) -> Option<&Bytes> {
        match &self.0 {
            LeaseRepr::Version(_) => None,
            LeaseRepr::Bytes(bytes) => Some(bytes),
        }
    }
}

/// One fill's value for [`Backend::store_filled_many`]: what
/// [`Backend::store_filled`] takes, as one entry of a batch.
///
/// ```
/// use stampede::backend::{FilledValue, LeaseToken};
///
/// let lease = LeaseToken::from_version(7);
/// let entry = FilledValue { key: "user:1", lease: &lease, value: b"{}", ttl: None };
/// assert_eq!(entry.key, "user:1");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FilledValue<'a> {
    /// The key, as the backend sees it.
    pub key: &'a str,
    /// The lease [`Backend::read_for_fill`] granted for it.
    pub lease: &'a LeaseToken,
    /// The bytes to store.
    pub value: &'a [u8],
    /// The value's TTL; `None` keeps it until evicted.
    pub ttl: Option<Duration>,
}
