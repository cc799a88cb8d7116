//! Fill leases on memcached: the meta protocol's own (memcached ≥ 1.6).
//!
//! | step | command | what the server does |
//! |---|---|---|
//! | read for a fill | `mg <k> v c t N<lease>` | on a miss, creates an empty placeholder and flags this reader `W` (won); later readers see `Z` (busy). On an item marked stale (`X`), the first reader gets `W` |
//! | store | `ms <k> C<cas> T<ttl>` | only if the item is still the one we read: a `set`, a `delete` or a `mark_stale` changes or removes it |
//! | give back | `md <k> C<cas>` (placeholder), `md <k> I T<grace> C<cas>` (stale item) | the next reader wins |
//! | mark stale | `mg <k> s c t`, then `md <k> I T<grace> C<cas>` | a placeholder is deleted instead: the fill it stands for read old data |
//!
//! The lease token carries the placeholder's (or stale item's) CAS unique.
//! A plain read that happens to win a stale item's token (memcached hands
//! it to the first reader of any kind) gives it back at once, so that a
//! `get` never strands a refresh.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use memcache::exp::{
    Delete, Get, GetResult, GetStatus, LeaseState, Meta, MutationStatus, Set, ValueState,
};

use super::client::{remaining, restale, unexpected, whole_secs};
use super::{keys, ttl, MemcachedBackend};
use crate::backend::{CasToken, FillLease, FillRead, LeaseToken};
use crate::Result;

/// What a fill lease on memcached is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An empty placeholder made by vivify-on-miss.
    Placeholder,
    /// A value marked stale, whose refresh token we won.
    Stale,
}

/// The lease as a token: kind, CAS unique, and the stale grace left.
fn token(kind: Kind, cas: u64, grace: Option<Duration>) -> LeaseToken {
    let mut bytes = BytesMut::with_capacity(13);
    bytes.put_u8(match kind {
        Kind::Placeholder => b'p',
        Kind::Stale => b's',
    });
    bytes.put_u64(cas);
    bytes.put_u32(grace.map_or(0, whole_secs));
    LeaseToken::from_bytes(bytes.freeze())
}

/// A token made by [`token`], unpacked; `None` for anyone else's.
fn untoken(lease: &LeaseToken) -> Option<(Kind, u64, u32)> {
    let bytes = lease.bytes()?;
    let kind = match bytes.first()? {
        b'p' => Kind::Placeholder,
        b's' => Kind::Stale,
        _ => return None,
    };
    let cas = u64::from_be_bytes(bytes.get(1..9)?.try_into().ok()?);
    let secs = u32::from_be_bytes(bytes.get(9..13)?.try_into().ok()?);
    Some((kind, cas, secs))
}

/// Whether a read (without the value) found a fill's empty placeholder.
pub(super) fn is_placeholder(result: &GetResult) -> bool {
    result.status == GetStatus::Pending
        || (result.item.size == Some(0)
            && result.lease_state != LeaseState::None
            && result.value_state != ValueState::Stale)
}

/// Whether a fill's store or give-back went in: `Ok(false)` when its
/// lease was void.
pub(super) fn filled(operation: &'static str, status: MutationStatus) -> Result<bool> {
    match status {
        MutationStatus::Applied => Ok(true),
        MutationStatus::CasMismatch | MutationStatus::NotFound => Ok(false),
        other => Err(unexpected(operation, other)),
    }
}

/// The give-back of `lease` on the key sent as `wire`: `md <k> C<cas>` for
/// a placeholder, `md <k> I T<grace> C<cas>` for a stale item; `None` when
/// `lease` is not a memcached lease.
pub(super) fn release_op(wire: &str, lease: &LeaseToken) -> Option<Delete> {
    let (kind, cas, grace) = untoken(lease)?;
    Some(match kind {
        Kind::Placeholder => Delete::new(wire).compare_cas(cas),
        // Re-marking the item stale hands its token to the next reader.
        Kind::Stale => restale(wire, grace, cas),
    })
}

/// `mg <k> v c t N<lease>`: the read for a fill of the key sent as `wire`.
pub(super) fn fill_get(wire: &str, lease: Duration) -> Get {
    Get::new(wire)
        .meta(Meta::NONE.cas().ttl())
        .lease_ttl(ttl::lease_secs(lease))
}

/// What a [`fill_get`] found, as a [`FillRead`].
pub(super) fn fill_result(result: GetResult) -> FillRead {
    let cas = result.item.cas.unwrap_or(0);
    let stale = result.value_state == ValueState::Stale;
    let value = match (result.status, result.value) {
        (GetStatus::Hit, Some(value)) => Some((Bytes::from(value), CasToken::from_version(cas))),
        _ => None,
    };
    let lease = match result.lease_state {
        LeaseState::Granted if stale => {
            FillLease::Granted(token(Kind::Stale, cas, remaining(result.item.ttl)))
        }
        LeaseState::Granted if value.is_none() => {
            FillLease::Granted(token(Kind::Placeholder, cas, None))
        }
        // A miss that did not vivify: nobody holds a lease we can see, so
        // wait and read again.
        _ if value.is_none() || stale => FillLease::Busy,
        _ => FillLease::NotNeeded,
    };
    FillRead {
        value,
        stale,
        lease,
    }
}

impl MemcachedBackend {
    pub(super) async fn fill_read(&self, key: &str, lease: Duration) -> Result<FillRead> {
        Ok(self.fill_read_near(key, lease).await?.0)
    }

    /// `read_for_fill`, and how long a near cache may keep a copy of the
    /// value read: `Some(ttl)` only for an ordinary fresh value.
    pub(crate) async fn fill_read_near(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<(FillRead, Option<Option<Duration>>)> {
        let wire = keys::wire_key(key)?;
        let get = fill_get(&wire, lease);
        self.bounded("read_for_fill", async {
            let result = self.client.get("read_for_fill", get).await?;
            let copy = super::near::copyable(&result);
            let read = fill_result(result);
            let copy = copy.filter(|_| read.lease == FillLease::NotNeeded);
            Ok((read, copy))
        })
        .await
    }

    pub(super) async fn fill_store(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let Some(set) = self.fill_set(key, lease, value, ttl)? else {
            return Ok(false);
        };
        self.bounded("store_filled", async {
            let status = self.client.store("store_filled", set).await?;
            filled("store_filled", status)
        })
        .await
    }

    /// `ms <k> C<cas> T<ttl>`: a fill's store, checked (key, size, TTL);
    /// `None` when `lease` is not a memcached lease (it can never match).
    pub(super) fn fill_set(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<Set>> {
        let wire = keys::wire_key(key)?;
        let set = self.store_op(key, &wire, value, ttl)?;
        Ok(untoken(lease).map(|(_, cas, _)| set.compare_cas(cas)))
    }

    pub(super) async fn fill_release(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        let Some(delete) = release_op(&wire, lease) else {
            return Ok(false);
        };
        self.bounded("release_fill", async {
            let status = self.client.remove("release_fill", delete).await?;
            filled("release_fill", status)
        })
        .await
    }

    pub(super) async fn stale_mark(&self, key: &str, grace: Duration) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        let grace_secs = ttl::lease_secs(grace);
        self.bounded("mark_stale", async {
            // A few tries: each conditional step fails only if another
            // write landed between the read and it.
            for _ in 0..4 {
                let read = Get::new(&*wire)
                    .without_value()
                    .meta(Meta::NONE.cas().ttl().size());
                let result = self.client.get("mark_stale", read).await?;
                let Some(cas) = result.item.cas.filter(|_| result.status != GetStatus::Miss) else {
                    return Ok(false);
                };
                if is_placeholder(&result) {
                    let void = Delete::new(&*wire).compare_cas(cas);
                    match self.client.remove("mark_stale", void).await? {
                        MutationStatus::CasMismatch => continue,
                        _ => return Ok(false),
                    }
                }
                let left = remaining(result.item.ttl).map_or(u32::MAX, whole_secs);
                let mark = restale(&wire, grace_secs.min(left), cas);
                match self.client.remove("mark_stale", mark).await? {
                    MutationStatus::Applied => return Ok(true),
                    MutationStatus::NotFound => return Ok(false),
                    MutationStatus::CasMismatch => continue,
                    other => return Err(unexpected("mark_stale", other)),
                }
            }
            Ok(false)
        })
        .await
    }

    /// Hands back a stale item's refresh token that a plain read won by
    /// accident: `md <k> I T<ttl> C<cas>` marks it stale again, and the next
    /// reader wins. Failures only delay the refresh (the item expires).
    pub(super) async fn give_back_win(&self, wire: &str, cas: Option<u64>, ttl: Option<Duration>) {
        if let Err(error) = self.client.give_back_win("give_back", wire, cas, ttl).await {
            tracing::debug!(key = wire, %error, "could not hand back a stale item's refresh token");
        }
    }

    /// Replaces a fill placeholder at `wire` with `set` (an `add`, or a `cas`
    /// that the key is absent, found the key taken): the key holds no value
    /// yet, so the write goes in and voids the fill. `Ok(false)` when a real
    /// value is there.
    pub(super) async fn replace_placeholder(
        &self,
        operation: &'static str,
        wire: &str,
        set: Set,
    ) -> Result<bool> {
        for _ in 0..4 {
            let read = Get::new(wire).without_value().meta(Meta::NONE.cas().size());
            let result = self.client.get(operation, read).await?;
            let Some(cas) = result.item.cas.filter(|_| is_placeholder(&result)) else {
                if result.status == GetStatus::Miss {
                    // Gone meanwhile: try the create again.
                    match self.client.store(operation, set.clone().add()).await? {
                        MutationStatus::Applied => return Ok(true),
                        MutationStatus::AlreadyExists => continue,
                        other => return Err(unexpected(operation, other)),
                    }
                }
                return Ok(false);
            };
            match self
                .client
                .store(operation, set.clone().compare_cas(cas))
                .await?
            {
                MutationStatus::Applied => return Ok(true),
                MutationStatus::CasMismatch | MutationStatus::NotFound => continue,
                other => return Err(unexpected(operation, other)),
            }
        }
        Ok(false)
    }
}
