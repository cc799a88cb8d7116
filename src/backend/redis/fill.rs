//! Fill leases on Redis.
//!
//! The lease on a value key lives in a record beside it,
//! `fill_lease_key(key)` (`\xFFw:{<key>}:fill`, in the key's cluster slot), with a
//! TTL of the lease. The record holds the lease id and what the key held
//! when the lease was granted: absent, or the 14-byte envelope header of the
//! stale value. The write-back script stores only if the record still holds
//! our id *and* the key still holds what it held then, so:
//!
//! - a `set`, `add` or `cas` during the fill (each writes a new nonce) makes
//!   the write-back refuse;
//! - a `delete` (and `mark_stale`) removes the lease record too;
//! - a lease that ran out is gone, and a newer one holds another id.
//!
//! Every script that ends a lease publishes on the key's channel
//! (`release_channel(key)`), which wakes other processes' fill waiters
//! through the same subscriber as lock releases. Each call is one round
//! trip. `get_or_fill` peeks with a plain `GET` first (a hit costs just
//! that), and on a miss one caller per process reads again with the lease:
//! a cold fill is three round trips, and a stampede of a thousand callers
//! sends a thousand `GET`s and one lease script, not a thousand scripts.

use std::time::Duration;

use bytes::Bytes;

use super::changes::{NewVersion, When};
use super::conn::{Request, Resend};
use super::ops::{check_size, millis};
use super::undo::Undo;
use super::{envelope, naming, redis, scripts, RedisBackend};
use crate::backend::{random_lease_id, CasToken, FillLease, FillRead, LeaseToken};
use crate::Result;

impl RedisBackend {
    pub(super) async fn fill_read(&self, key: &str, lease: Duration) -> Result<FillRead> {
        Ok(self.fill_read_near(key, lease).await?.0)
    }

    /// `read_for_fill`, and how long a near cache may keep a copy of the
    /// value read: `Some(ttl)` only for a fresh value of ours (enveloped).
    pub(crate) async fn fill_read_near(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<(FillRead, Option<Option<Duration>>)> {
        let id = random_lease_id();
        let script = fill_read_script(key, &id, lease);
        // Resending is safe: a lease we already hold is reported as ours.
        let undo = Undo::new("read_for_fill", self.fill_release_script(key, &id));
        let reply: FillReply = self
            .query_create(
                "read_for_fill",
                Request::Script(&script),
                Resend::IfConnectionLost,
                undo,
            )
            .await?;
        let pttl = reply.2;
        let read = read_of(reply, id);
        let ours = read.lease == FillLease::NotNeeded
            && read
                .value
                .as_ref()
                .is_some_and(|(_, token)| token.version().is_some());
        let copy = match pttl {
            _ if !ours => None,
            -1 => Some(None),
            left => Some(Some(super::ops::remaining(left).unwrap_or(Duration::ZERO))),
        };
        Ok((read, copy))
    }

    pub(super) async fn fill_peek(&self, key: &str) -> Result<FillRead> {
        let stored: Option<Bytes> = self
            .query_resendable("peek_for_fill", Request::Cmd(redis::cmd("GET").arg(key)))
            .await?;
        Ok(opened(stored, |fresh| {
            if fresh {
                FillLease::NotNeeded
            } else {
                FillLease::NotAsked
            }
        }))
    }

    /// `store_filled`; with the stored write's version when it stored.
    pub(crate) async fn fill_store(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<CasToken>> {
        check_size(key, value)?;
        let Some(id) = lease.bytes() else {
            return Ok(None);
        };
        let (script, nonce) = self.fill_store_script_of(key, id, value, ttl);
        let stored: u8 = self.query("store_filled", Request::Script(&script)).await?;
        Ok((stored == 1).then(|| CasToken::from_version(nonce)))
    }

    /// `fill_store.lua` storing `value` at `key` under lease `id`.
    pub(super) fn fill_store_script(
        &self,
        key: &str,
        id: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> redis::ScriptInvocation<'static> {
        self.fill_store_script_of(key, id, value, ttl).0
    }

    /// [`fill_store_script`](Self::fill_store_script), and the nonce of
    /// the envelope it stores.
    fn fill_store_script_of(
        &self,
        key: &str,
        id: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> (redis::ScriptInvocation<'static>, u64) {
        let ttl = ttl.map(|ttl| millis(ttl).to_string()).unwrap_or_default();
        let announcer = self.announcer();
        let (stored, nonce) = envelope::seal_with_nonce(value);
        let mut script = scripts::fill_store(announcer.is_some()).key(key);
        script
            .key(naming::fill_lease_key(key))
            .arg(id)
            .arg(stored)
            .arg(ttl);
        self.announce(&mut script, key);
        if let Some(announcer) = announcer {
            announcer.append(&mut script, NewVersion::Nonce(nonce), When::Changed);
        }
        (script, nonce)
    }

    pub(super) async fn fill_release(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        let Some(id) = lease.bytes() else {
            return Ok(false);
        };
        let script = self.fill_release_script(key, id);
        let released: u8 = self
            .query_resendable("release_fill", Request::Script(&script))
            .await?;
        Ok(released == 1)
    }

    pub(super) async fn stale_mark(&self, key: &str, grace: Duration) -> Result<bool> {
        let announcer = self.announcer();
        let mut script = scripts::mark_stale(announcer.is_some()).key(key);
        script
            .key(naming::fill_lease_key(key))
            .arg(&envelope::stale_header()[..])
            .arg(millis(grace))
            .arg(envelope::MAGIC_STEM);
        self.announce(&mut script, key);
        if let Some(announcer) = announcer {
            announcer.append(&mut script, NewVersion::Unknown, When::Changed);
        }
        let marked: u8 = self.query("mark_stale", Request::Script(&script)).await?;
        Ok(marked == 1)
    }

    /// `fill_release.lua` for `key`'s lease `id`: the release, and the
    /// undo of a lease read given up on.
    pub(super) fn fill_release_script(
        &self,
        key: &str,
        id: &[u8],
    ) -> redis::ScriptInvocation<'static> {
        fill_release_script(key, id, self.publish_command())
    }

    pub(super) async fn remove(&self, key: &str) -> Result<bool> {
        let script = self.delete_script(key);
        let removed: u8 = self.query("delete", Request::Script(&script)).await?;
        Ok(removed == 1)
    }

    /// `delete.lua` for `key`: the value and its fill lease.
    pub(super) fn delete_script(&self, key: &str) -> redis::ScriptInvocation<'static> {
        let announcer = self.announcer();
        let mut script = scripts::delete(announcer.is_some()).key(key);
        script.key(naming::fill_lease_key(key));
        self.announce(&mut script, key);
        if let Some(announcer) = announcer {
            announcer.append(&mut script, NewVersion::Unknown, When::Changed);
        }
        script
    }
}

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

/// `fill_release.lua` for `key`'s lease `id`, published with `publish`
/// (`PUBLISH`, or `SPUBLISH` on a cluster).
pub(super) fn fill_release_script(
    key: &str,
    id: &[u8],
    publish: &'static str,
) -> redis::ScriptInvocation<'static> {
    let mut script = scripts::fill_release().key(key);
    script
        .key(naming::fill_lease_key(key))
        .arg(id)
        .arg(naming::release_channel(key))
        .arg(publish);
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
fn opened(stored: Option<Bytes>, lease: impl FnOnce(bool) -> FillLease) -> FillRead {
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
