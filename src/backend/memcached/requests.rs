//! The meta-protocol requests the backend sends, built as values, and how
//! their answers read: free functions, no I/O. The backend
//! (`backend.rs`) sends them through the client (`client.rs`).
//!
//! # Fill leases: the meta protocol's own (memcached ≥ 1.6)
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
//!
//! # What a near cache may copy
//!
//! memcached cannot announce writes, so a near tier in front of it serves
//! a copy for its trust window and then asks whether the copy's write is
//! still the stored one ([`Coherence::Revalidate`](crate::backend::coherence::Coherence)):
//!
//! | call | command | answer |
//! |---|---|---|
//! | `read_versioned` | `mg <k> v f c t` | the value, and its CAS as the version when it is an ordinary value |
//! | `revalidate` | `mg <k> f c t`, no value | `Same` when the CAS is the copy's and the item an ordinary value |
//!
//! memcached gives an item a new CAS unique on every write, `md … I`
//! (marking it stale) included, so an equal CAS means the very item the
//! copy was read from.
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
//!   [`LOCK_RECORD_FLAGS`] (by the `locks` module), which every `mg` asks
//!   for. A lock record written by an older version of this crate has
//!   flags 0 and looks like a value: a copy of it is served for the trust
//!   window at most, like any copy.
//! - **An item with a lease out on it** (`W`/`Z` on a value that is not
//!   stale): not written by this crate's calls, but not an ordinary value
//!   either.
//!
//! `t` is `exptime - current_time` on the server's clock, which ticks once
//! a second and can lag real time: the item may go up to
//! [`CLOCK_MARGIN_SECS`](super::CLOCK_MARGIN_SECS) (2) seconds before `t`
//! has run out (the [`ttl`](super::ttl) module). A copy is therefore kept
//! for `t - 2` seconds at most, so that it never outlives the item. Every
//! TTL this crate sends is `ceil(ttl) + 2`, so that is about the TTL the
//! writer asked for; a value with 2 seconds or less left is not copied.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use memcache::exp::{
    Delete, Get, GetResult, GetStatus, LeaseState, Meta, MutationStatus, ValueState,
};

use super::locks::LOCK_RECORD_FLAGS;
use super::{ttl, KIND};
use crate::backend::coherence::Versioned;
use crate::backend::{CasToken, FillLease, FillRead, LeaseToken};
use crate::{Error, Result};

// ----- plain reads -----------------------------------------------------

/// An item as `mg` returned it.
#[derive(Debug)]
pub(super) struct Item {
    pub(super) value: Bytes,
    /// The CAS unique, when asked for.
    pub(super) cas: Option<u64>,
    /// Whole seconds until expiry when asked for; `None` when it never expires.
    pub(super) ttl: Option<Duration>,
    /// The item is marked stale (`md … I`).
    pub(super) stale: bool,
    /// This read won the stale item's refresh token (`W`): a plain read
    /// must give it back (see `Client::give_back_win`).
    pub(super) won: bool,
}

/// `mg <k> v c t`: a plain read of the value with its CAS and TTL.
pub(super) fn plain_get(wire: &str) -> Get {
    Get::new(wire).meta(Meta::NONE.cas().ttl())
}

/// The item a plain `mg` found; `None` on a miss. A `Pending` item is
/// another client's empty lease placeholder: no value has been stored there.
pub(super) fn item_of(result: GetResult) -> Option<Item> {
    if result.status != GetStatus::Hit {
        return None;
    }
    Some(Item {
        stale: result.value_state == ValueState::Stale,
        won: result.lease_state == LeaseState::Granted,
        value: result.value.map(Bytes::from).unwrap_or_default(),
        cas: result.item.cas,
        ttl: remaining(result.item.ttl),
    })
}

/// `mg <k> s c t` without the value: what is at the key, for `exists`,
/// `touch` and `delete`.
pub(super) fn peek(key: &str) -> Get {
    Get::new(key)
        .without_value()
        .meta(Meta::NONE.cas().ttl().size())
}

/// Whether a read won a stale item's refresh token by accident.
pub(super) fn won_stale(result: &GetResult) -> bool {
    result.value_state == ValueState::Stale && result.lease_state == LeaseState::Granted
}

/// The give-back of a stale item's refresh token that a plain read won by
/// accident (see `Client::give_back_win`).
pub(super) fn win_to_hand_back(wire: &str, item: &Item) -> Option<Delete> {
    match item {
        Item {
            stale: true,
            won: true,
            cas: Some(cas),
            ttl: Some(ttl),
            ..
        } => Some(restale(wire, whole_secs(*ttl), *cas)),
        _ => None,
    }
}

/// `md <key> I T<secs> C<cas>`: marks the item stale (again) for `secs`,
/// at least one, if it is still the one whose CAS unique is `cas`. The next
/// reader wins its refresh token.
pub(super) fn restale(key: &str, secs: u32, cas: u64) -> Delete {
    Delete::new(key)
        .invalidate()
        .stale_for_raw(secs.max(1))
        .compare_cas(cas)
}

/// Whole seconds of `duration`, as memcached's 32-bit fields take them.
pub(super) fn whole_secs(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}

/// A TTL reply (`t` flag) as a duration; `None` when the item never expires.
pub(super) fn remaining(ttl: Option<i64>) -> Option<Duration> {
    ttl.and_then(|secs| u64::try_from(secs).ok())
        .map(Duration::from_secs)
}

// ----- answers ---------------------------------------------------------

/// An unexpected answer to a command, as an error.
pub(super) fn unexpected(operation: &'static str, status: MutationStatus) -> Error {
    Error::backend(
        KIND,
        operation,
        format!("unexpected answer from memcached: {status:?}"),
    )
}

/// A batch that came back with fewer answers than commands: a client or
/// server fault, reported rather than trusted.
pub(super) fn short_batch(operation: &'static str) -> Error {
    Error::backend(
        KIND,
        operation,
        "memcached answered fewer commands than the batch sent",
    )
}

/// The first error of a batch's results in the caller's order, or the
/// results.
pub(super) fn all_ok<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    results.into_iter().collect()
}

// ----- fill leases -----------------------------------------------------

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

/// The CAS unique a fill's store must still find: `None` when `lease` is
/// not a memcached lease (it can never match).
pub(super) fn lease_cas(lease: &LeaseToken) -> Option<u64> {
    untoken(lease).map(|(_, cas, _)| cas)
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

// ----- what a near cache may copy ---------------------------------------

/// What a read with the value found, for a near tier: `None` unless an
/// item with a value is there.
pub(super) fn versioned(result: GetResult) -> Option<Versioned> {
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
pub(super) fn ordinary(result: &GetResult) -> bool {
    result.status == GetStatus::Hit
        && result.value_state == ValueState::Fresh
        && result.lease_state == LeaseState::None
        && result.client_flags != Some(LOCK_RECORD_FLAGS)
}

/// How long a copy of an item whose `t` was `secs` may be kept: `t` less
/// the server clock's margin (see the [module docs](self#what-a-near-cache-may-copy));
/// `None` for an item that never expires (`-1`). No `t` in the answer
/// (which a hit always has) keeps no copy.
pub(super) fn copy_life(secs: Option<i64>) -> Option<Duration> {
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
}
