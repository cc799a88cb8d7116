//! What the backend sends and how it reads the answers: the commands and
//! script invocations more than one operation builds (an operation's own
//! undo included), and the parsers of their replies. Each is a free
//! function of its inputs; [`backend`](super::backend) sends them.
//!
//! Scripts that end a lease or release a lock publish on the key's
//! channel with the command the caller passes (`publish`: `PUBLISH`, or
//! `SPUBLISH` on a cluster); write scripts that announce to near caches
//! take the [`Announcer`], `None` for the plain script.

use std::time::Duration;

use bytes::Bytes;

use super::changes::{Announcer, NewVersion, When, CHANNEL, COUNTER, LOG, LOG_CAP};
use super::conn::KIND;
use super::{envelope, naming, redis, scripts, MAX_VALUE_SIZE};
use crate::backend::{FillLease, FillRead, LeaseToken};
use crate::{Error, Result};

/// How long a fence counter outlives the lease of the last lock that used
/// it. A counter that expires is seeded again from the server clock, which
/// by then has moved on by at least this much past the last token's
/// lease; so tokens keep rising even if the clock stepped back by up to an
/// hour meanwhile (an NTP step, a failover to a replica whose clock lags).
pub(super) const FENCE_COUNTER_GRACE: Duration = Duration::from_secs(3600);

/// A TTL or lease in whole milliseconds, rounded up so that nothing expires
/// early (and a sub-millisecond TTL is not 0, which Redis refuses).
pub(super) fn millis(duration: Duration) -> u64 {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    // At most 2^53 - 1 ms (~285,000 years): scripts read these as Lua
    // numbers, which are doubles, and a larger one would come back out as
    // `4.6e+18`, which Redis refuses as "not an integer".
    u64::try_from(millis).unwrap_or(u64::MAX).min(MAX_MILLIS)
}

/// The longest TTL or lease sent to Redis, in milliseconds.
const MAX_MILLIS: u64 = (1 << 53) - 1;

/// A `PTTL` reply as a remaining lease: `None` for "no expiry" (-1).
pub(super) fn remaining(pttl: i64) -> Option<Duration> {
    u64::try_from(pttl).ok().map(Duration::from_millis)
}

/// Refuses a value larger than Redis stores, before anything is sent.
pub(super) fn check_size(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(Error::ValueTooLarge {
            key: key.to_owned(),
            size: value.len(),
            limit: Some(MAX_VALUE_SIZE),
            backend: KIND,
        });
    }
    Ok(())
}

// ----- values ---------------------------------------------------------

/// `SET key stored [NX] [PX ttl]`.
pub(super) fn set_command(
    key: &str,
    stored: &[u8],
    only_new: bool,
    ttl: Option<Duration>,
) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(stored);
    if only_new {
        cmd.arg("NX");
    }
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(millis(ttl));
    }
    cmd
}

/// With a near cache attached, [`set_command`] as an announcing script
/// (`command.lua`): the `SET` of an enveloped `stored`, announced with its
/// nonce.
pub(super) fn announced_set(
    announcer: &Announcer,
    key: &str,
    stored: &[u8],
    only_new: bool,
    ttl: Option<Duration>,
) -> redis::ScriptInvocation<'static> {
    let mut script = scripts::command_announced().key(key);
    script.arg("SET").arg(stored);
    if only_new {
        script.arg("NX");
    }
    if let Some(ttl) = ttl {
        script.arg("PX").arg(millis(ttl));
    }
    let when = if only_new {
        When::Changed
    } else {
        When::Always
    };
    announcer.append(&mut script, envelope::nonce(stored), when);
    script
}

/// `delete.lua` for `key`: the value and its fill lease, the lease's end
/// published (`delete`, `delete_many`).
pub(super) fn delete_script(
    key: &str,
    publish: &'static str,
    announcer: Option<&Announcer>,
) -> redis::ScriptInvocation<'static> {
    let mut script = scripts::delete(announcer.is_some()).key(key);
    script.key(naming::fill_lease_key(key));
    publish_args(&mut script, key, publish);
    if let Some(announcer) = announcer {
        announcer.append(&mut script, NewVersion::Unknown, When::Changed);
    }
    script
}

/// Adds the arguments a script publishes `key`'s news with: its channel,
/// then the publish command (`SPUBLISH` on a cluster, so the message stays
/// on the node that owns the key's slot).
pub(super) fn publish_args(
    script: &mut redis::ScriptInvocation<'_>,
    key: &str,
    publish: &'static str,
) {
    script.arg(naming::release_channel(key)).arg(publish);
}

/// `announce.lua`: tells every near tier that everything under `prefix`
/// is gone (after a `clear`).
pub(super) fn announce_clear_script(
    announcer: &Announcer,
    prefix: &str,
) -> redis::ScriptInvocation<'static> {
    let mut script = scripts::announce().key(LOG);
    script
        .key(COUNTER)
        .arg(prefix)
        .arg(CHANNEL)
        .arg(announcer.origin())
        .arg("*")
        .arg(LOG_CAP);
    script
}

// ----- lock records ---------------------------------------------------

/// `release.lua` for `key` and `owner`: the release, and the undo of a
/// lock create given up on.
pub(super) fn release_script(
    key: &str,
    owner: &[u8],
    publish: &'static str,
) -> redis::ScriptInvocation<'static> {
    let mut script = scripts::release().key(key);
    script.arg(owner);
    publish_args(&mut script, key, publish);
    script
}

// ----- fill leases ----------------------------------------------------

/// `fill_read.lua` reading `key` and asking for the lease `id`.
pub(super) fn fill_read_script(
    key: &str,
    id: &[u8],
    lease: Duration,
) -> redis::ScriptInvocation<'static> {
    let mut script = scripts::fill_read().key(key);
    script
        .key(naming::fill_lease_key(key))
        .arg(id)
        .arg(millis(lease))
        .arg(&envelope::STALE_MAGIC[..]);
    script
}

/// `fill_store.lua` storing `value` at `key` under lease `id`, and the
/// nonce of the envelope it stores.
pub(super) fn fill_store_script(
    key: &str,
    id: &[u8],
    value: &[u8],
    ttl: Option<Duration>,
    publish: &'static str,
    announcer: Option<&Announcer>,
) -> (redis::ScriptInvocation<'static>, u64) {
    let ttl = ttl.map(|ttl| millis(ttl).to_string()).unwrap_or_default();
    let (stored, nonce) = envelope::seal_with_nonce(value);
    let mut script = scripts::fill_store(announcer.is_some()).key(key);
    script
        .key(naming::fill_lease_key(key))
        .arg(id)
        .arg(stored)
        .arg(ttl);
    publish_args(&mut script, key, publish);
    if let Some(announcer) = announcer {
        announcer.append(&mut script, NewVersion::Nonce(nonce), When::Changed);
    }
    (script, nonce)
}

/// `fill_release.lua` for `key`'s lease `id`: the release, and the undo of
/// a lease read given up on.
pub(super) fn fill_release_script(
    key: &str,
    id: &[u8],
    publish: &'static str,
) -> redis::ScriptInvocation<'static> {
    let mut script = scripts::fill_release().key(key);
    script.key(naming::fill_lease_key(key)).arg(id);
    publish_args(&mut script, key, publish);
    script
}

/// What `fill_read.lua` answers: the lease state, the stored bytes, and
/// the value's PTTL when it is fresh (-3 otherwise).
pub(super) type FillReply = (u8, Option<Bytes>, i64);

/// A `fill_read.lua` reply for a read that asked for the lease `id`.
pub(super) fn read_of((state, stored, _): FillReply, id: Bytes) -> FillRead {
    let lease = match state {
        0 => FillLease::NotNeeded,
        1 => FillLease::Granted(LeaseToken::from_bytes(id)),
        _ => FillLease::Busy,
    };
    opened(stored, |_| lease)
}

/// A read's stored bytes opened into a [`FillRead`]; `lease` decides the
/// lease from whether a value not marked stale was there.
pub(super) fn opened(stored: Option<Bytes>, lease: impl FnOnce(bool) -> FillLease) -> FillRead {
    let opened = stored.map(envelope::open);
    let stale = opened.as_ref().is_some_and(|opened| opened.stale);
    let value = opened.map(|opened| (opened.payload, opened.token));
    let fresh = value.is_some() && !stale;
    FillRead {
        value,
        stale,
        lease: lease(fresh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_up_and_never_reach_zero() {
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(300)), 300);
        assert_eq!(millis(Duration::from_micros(300_001)), 301);
        assert_eq!(millis(Duration::MAX), (1 << 53) - 1);
    }

    #[test]
    fn pttl_replies_become_remaining_leases() {
        assert_eq!(remaining(1500), Some(Duration::from_millis(1500)));
        assert_eq!(remaining(-1), None);
        assert_eq!(remaining(-2), None);
    }
}
