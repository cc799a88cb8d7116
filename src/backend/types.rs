//! The small types the [`Backend`](super::Backend) primitives take and
//! return: lock attempts and records, compare-and-set tokens, release
//! watches.

use bytes::Bytes;

use std::time::Duration;

/// Whether [`Backend::try_lock`](super::Backend::try_lock) issues a fencing token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fencing {
    /// Only create the record (the stampede guard does not need a token).
    Skip,
    /// Also increment the key's fencing counter, atomically with the create.
    Issue,
}

/// What [`Backend::try_lock`](super::Backend::try_lock) found.
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

/// A lock record as [`Backend::lock_record`](super::Backend::lock_record) reads it.
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
/// constructors are for [`Backend`](super::Backend) implementations.
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
/// Returned by [`Backend::watch_releases`](super::Backend::watch_releases). A backend puts whatever undoes
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
