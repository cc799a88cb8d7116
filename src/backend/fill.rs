//! Fill leases: the types of the [`Backend`] primitives that make a fill's
//! write-back safe, and their default implementation for backends that have
//! nothing better.
//!
//! The model is Facebook's memcache leases (Nishtala et al., "Scaling
//! Memcache at Facebook", NSDI 2013, §3.2.1): a read that misses hands one
//! caller a *lease* bound to the key; the caller's write-back is accepted
//! only while that lease is still valid; any other write to the key — a
//! `set`, `add`, `cas`, `delete` or [`mark_stale`](Backend::mark_stale) —
//! voids it. A fill that read old data before a delete can then never
//! store that old data after the delete.

use std::time::Duration;

use bytes::Bytes;

use super::{Backend, CasToken, Fencing, LockAttempt};
use crate::Result;

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

/// A fresh random lease id: a uuid v4 in text form.
pub(crate) fn random_lease_id() -> Bytes {
    let mut text = [0u8; 32];
    uuid::Uuid::new_v4().simple().encode_lower(&mut text);
    Bytes::copy_from_slice(&text)
}

/// The defaults for backends that only have the basic primitives. The lease
/// is a lock record at [`default_lease_key`]; the write-back is a `cas`
/// that the key is still absent. Documented on [`Backend::read_for_fill`]:
/// a delete of a key that was absent when the fill began is not seen.
pub(crate) mod defaults {
    use super::*;

    /// Where the default lease record lives: beside the key, with a unit
    /// separator that ordinary keys do not contain.
    pub(crate) fn default_lease_key(key: &str) -> String {
        format!("{key}\u{1f}fill")
    }

    pub(crate) async fn read_for_fill<B: Backend + ?Sized>(
        backend: &B,
        key: &str,
        lease: Duration,
    ) -> Result<FillRead> {
        if let Some((value, token)) = backend.gets(key).await? {
            return Ok(FillRead::hit(value, token));
        }
        let id = random_lease_id();
        let attempt = backend
            .try_lock(&default_lease_key(key), &id, lease, Fencing::Skip)
            .await?;
        Ok(FillRead::missing(match attempt {
            LockAttempt::Acquired { .. } => FillLease::Granted(LeaseToken::from_bytes(id)),
            LockAttempt::Held { .. } => FillLease::Busy,
        }))
    }

    pub(crate) async fn store_filled<B: Backend + ?Sized>(
        backend: &B,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let Some(id) = lease.bytes() else {
            return Ok(false);
        };
        let lease_key = default_lease_key(key);
        let ours = backend
            .lock_record(&lease_key)
            .await?
            .is_some_and(|record| record.owner == id);
        let stored = ours && backend.cas(key, value, None, ttl).await?;
        backend.release(&lease_key, id).await?;
        Ok(stored)
    }

    pub(crate) async fn release_fill<B: Backend + ?Sized>(
        backend: &B,
        key: &str,
        lease: &LeaseToken,
    ) -> Result<bool> {
        match lease.bytes() {
            Some(id) => backend.release(&default_lease_key(key), id).await,
            None => Ok(false),
        }
    }
}
