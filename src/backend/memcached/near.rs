//! What a near cache needs from memcached: reads with their CAS and TTL,
//! and a metadata-only check that a CAS is still the stored one.
//!
//! memcached cannot announce writes, so a near tier in front of it serves
//! a copy for its trust window and then asks whether the copy's write is
//! still the stored one ([`Coherence::Revalidate`](crate::backend::coherence::Coherence)):
//!
//! | call | command | answer |
//! |---|---|---|
//! | [`read_versioned`](MemcachedBackend::read_versioned) | `mg <k> v f c t` | the value, and its CAS as the version when it is an ordinary value |
//! | [`revalidate`](MemcachedBackend::revalidate) | `mg <k> f c t`, no value | `Same` when the CAS is the copy's and the item an ordinary value |
//!
//! memcached gives an item a new CAS unique on every write, `md … I`
//! (marking it stale) included, so an equal CAS means the very item the
//! copy was read from.
//!
//! # What is not an ordinary value
//!
//! A copy is only kept of an ordinary value: a read returns the others as
//! [`Backend::get`](crate::backend::Backend::get) does, but without a
//! version, and the tier keeps no copy of them.
//!
//! - **A fill's empty placeholder**: `get` finds nothing there, and
//!   neither does `read_versioned`.
//! - **A value marked stale** (`X`): it is being refreshed. A read that
//!   wins its refresh token by accident hands it back, as `get` does.
//! - **A lock record**: stored with the client flags
//!   [`LOCK_RECORD_FLAGS`] (by the `lock` module), which every `mg` asks
//!   for. A lock record written by an older version of this crate has
//!   flags 0 and looks like a value: a copy of it is served for the trust
//!   window at most, like any copy.
//! - **An item with a lease out on it** (`W`/`Z` on a value that is not
//!   stale): not written by this crate's calls, but not an ordinary value
//!   either.
//!
//! # TTL
//!
//! `t` is `exptime - current_time` on the server's clock, which ticks once
//! a second and can lag real time: the item may go up to
//! [`CLOCK_MARGIN_SECS`](super::CLOCK_MARGIN_SECS) (2) seconds before `t`
//! has run out (the [`ttl`](super::ttl) module). A copy is therefore kept
//! for `t - 2` seconds at most, so that it never outlives the item. Every
//! TTL this crate sends is `ceil(ttl) + 2`, so that is about the TTL the
//! writer asked for; a value with 2 seconds or less left is not copied.

use std::time::Duration;

use bytes::Bytes;
use memcache::exp::{Get, GetResult, GetStatus, LeaseState, Meta, ValueState};

use super::client::{remaining, won_stale};
use super::{keys, ttl, MemcachedBackend};
use crate::backend::coherence::{Revalidated, Versioned};
use crate::backend::CasToken;
use crate::Result;

/// The client flags a lock record is stored with (`ms … F<flags>`), so
/// that a read for a near tier can tell it from a value: the ASCII bytes
/// `LOCK`. Values are stored with flags 0.
pub(super) const LOCK_RECORD_FLAGS: u32 = u32::from_be_bytes(*b"LOCK");

impl MemcachedBackend {
    /// `mg <key> v f c t`: the value, its CAS (as the version, for an
    /// ordinary value only) and how long a copy may be kept. `None` where
    /// [`get`](crate::backend::Backend::get) finds nothing (a miss, a
    /// fill's placeholder).
    pub(crate) async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        let wire = keys::wire_key(key)?;
        let read = Get::new(&*wire).meta(Meta::NONE.cas().ttl());
        self.bounded("get", async {
            let result = self.client.get("get", read).await?;
            self.hand_back(&wire, &result).await;
            Ok(versioned(result))
        })
        .await
    }

    /// `mg <key> f c t`, without the value: [`Revalidated::Same`] when the
    /// item is still the ordinary value whose CAS is `version`, with how
    /// long a copy may now be kept; [`Revalidated::Changed`] after any
    /// write, delete, expiry or stale mark since (and for a token that is
    /// not a memcached CAS, which no item can match).
    pub(crate) async fn revalidate(&self, key: &str, version: &CasToken) -> Result<Revalidated> {
        let Some(expected) = version.version() else {
            return Ok(Revalidated::Changed);
        };
        let wire = keys::wire_key(key)?;
        let check = Get::new(&*wire)
            .without_value()
            .meta(Meta::NONE.cas().ttl());
        self.bounded("revalidate", async {
            let result = self.client.get("revalidate", check).await?;
            self.hand_back(&wire, &result).await;
            Ok(if ordinary(&result) && result.item.cas == Some(expected) {
                Revalidated::Same(copy_life(result.item.ttl))
            } else {
                Revalidated::Changed
            })
        })
        .await
    }

    /// Hands back a stale item's refresh token that `result`'s read won by
    /// accident (memcached gives it to the first reader of any kind), so
    /// that a fill wins it.
    async fn hand_back(&self, wire: &str, result: &GetResult) {
        if won_stale(result) {
            self.give_back_win(wire, result.item.cas, remaining(result.item.ttl))
                .await;
        }
    }
}

/// What a read with the value found, for a near tier: `None` unless an
/// item with a value is there.
fn versioned(result: GetResult) -> Option<Versioned> {
    if result.status != GetStatus::Hit {
        return None;
    }
    let version = if ordinary(&result) {
        result.item.cas.map(CasToken::from_version)
    } else {
        None
    };
    Some(Versioned {
        value: result.value.map(Bytes::from).unwrap_or_default(),
        version,
        ttl: copy_life(result.item.ttl),
    })
}

/// How long a near cache may keep a copy of what `result` read: `None`
/// unless it is an ordinary value.
pub(super) fn copyable(result: &GetResult) -> Option<Option<Duration>> {
    ordinary(result).then(|| copy_life(result.item.ttl))
}

/// Whether a read found an ordinary value: a hit, not marked stale, with no
/// lease out on it and not a lock record.
fn ordinary(result: &GetResult) -> bool {
    result.status == GetStatus::Hit
        && result.value_state == ValueState::Fresh
        && result.lease_state == LeaseState::None
        && result.client_flags != Some(LOCK_RECORD_FLAGS)
}

/// How long a copy of an item whose `t` was `secs` may be kept: `t` less
/// the server clock's margin (see the [module docs](self#ttl)); `None`
/// for an item that never expires (`-1`). No `t` in the answer (which a
/// hit always has) keeps no copy.
fn copy_life(secs: Option<i64>) -> Option<Duration> {
    let Some(secs) = secs else {
        return Some(Duration::ZERO);
    };
    if secs < 0 {
        return None;
    }
    let left = u64::try_from(secs).unwrap_or(0);
    Some(Duration::from_secs(
        left.saturating_sub(ttl::CLOCK_MARGIN_SECS),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_live_the_ttl_less_the_server_clocks_margin() {
        assert_eq!(copy_life(None), Some(Duration::ZERO));
        assert_eq!(copy_life(Some(-1)), None);
        assert_eq!(copy_life(Some(0)), Some(Duration::ZERO));
        assert_eq!(copy_life(Some(2)), Some(Duration::ZERO));
        assert_eq!(copy_life(Some(3)), Some(Duration::from_secs(1)));
        assert_eq!(copy_life(Some(62)), Some(Duration::from_secs(60)));
    }

    #[test]
    fn the_lock_flags_spell_lock() {
        assert_eq!(LOCK_RECORD_FLAGS.to_be_bytes(), *b"LOCK");
        assert_ne!(LOCK_RECORD_FLAGS, 0);
    }
}
