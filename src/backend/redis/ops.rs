//! The [`Backend`] primitives on Redis: one command, one atomic pipeline
//! or one script each (the table is in the [module docs](super)).

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::changes::When;
use super::conn::{Request, Resend, KIND};
use super::envelope::{self, Expected};
use super::undo::Undo;
use super::{naming, redis, scripts, RedisBackend, MAX_VALUE_SIZE};
use crate::backend::{
    Backend, CasToken, ChangeSink, Coherence, Fencing, FillRead, FilledValue, LeaseToken,
    LockAttempt, LockRecord, ReleaseWatch, Versioned,
};
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

impl RedisBackend {
    /// Sends a request that must not run twice.
    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
    ) -> Result<T> {
        // Boxed: inlined, the connection's future nests deep enough in
        // callers' futures (get_or_fill) to overflow the compiler's query
        // depth in plain `#[tokio::main]` programs. One allocation per call,
        // next to a network round trip.
        Box::pin(self.conns.query(operation, request, Resend::Never)).await
    }

    /// Sends a create: if its reply is given up on (timeout, cancellation)
    /// after it was sent, `undo` takes back whatever it made.
    pub(super) async fn query_create<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
        resend: Resend,
        undo: Undo,
    ) -> Result<T> {
        Box::pin(
            self.conns
                .query_or_undo(operation, request, resend, Some(undo)),
        )
        .await
    }

    /// Sends a request that may run twice: resent once if its connection
    /// turns out to be lost (say, to a server that restarted).
    pub(super) async fn query_resendable<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
    ) -> Result<T> {
        Box::pin(
            self.conns
                .query(operation, request, Resend::IfConnectionLost),
        )
        .await
    }

    /// `release.lua` for `key` and `owner`: the release, and the undo of a
    /// lock create given up on.
    fn release_script(&self, key: &str, owner: &[u8]) -> redis::ScriptInvocation<'static> {
        let mut script = scripts::release().key(key);
        script.arg(owner);
        self.announce(&mut script, key);
        script
    }

    /// Adds the arguments a script publishes `key`'s news with: its
    /// channel, then the publish command (`SPUBLISH` on a cluster, so the
    /// message stays on the node that owns the key's slot).
    pub(super) fn announce(&self, script: &mut redis::ScriptInvocation<'_>, key: &str) {
        script
            .arg(naming::release_channel(key))
            .arg(self.publish_command());
    }
}

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

impl RedisBackend {
    /// `set`, and the version (envelope nonce) of the write.
    pub(crate) async fn set_versioned(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<CasToken> {
        check_size(key, value)?;
        let (stored, nonce) = envelope::seal_with_nonce(value);
        // Not resent: a second landing of the same nonce after another
        // writer's value would bring an old CAS token back to life.
        if let Some(script) = self.announced_set(key, &stored, false, ttl) {
            let _: redis::Value = self.query("set", Request::Script(&script)).await?;
        } else {
            let cmd = set_command(key, &stored, false, ttl);
            self.query::<()>("set", Request::Cmd(&cmd)).await?;
        }
        Ok(CasToken::from_version(nonce))
    }
}

impl Backend for RedisBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let stored: Option<Bytes> = self
            .query_resendable("get", Request::Cmd(redis::cmd("GET").arg(key)))
            .await?;
        Ok(stored.map(|stored| envelope::open(stored).payload))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.set_versioned(key, value, ttl).await.map(drop)
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        check_size(key, value)?;
        let stored = envelope::seal(value);
        let reply: redis::Value = match self.announced_set(key, &stored, true, ttl) {
            Some(script) => self.query("add", Request::Script(&script)).await?,
            None => {
                let cmd = set_command(key, &stored, true, ttl);
                self.query("add", Request::Cmd(&cmd)).await?
            }
        };
        Ok(reply != redis::Value::Nil)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.remove(key).await
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        let stored: Option<Bytes> = self
            .query_resendable("gets", Request::Cmd(redis::cmd("GET").arg(key)))
            .await?;
        Ok(stored.map(|stored| {
            let opened = envelope::open(stored);
            (opened.payload, opened.token)
        }))
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        check_size(key, value)?;
        let expected = Expected::from_token(expected);
        let ttl = ttl.map(|ttl| millis(ttl).to_string()).unwrap_or_default();
        let announcer = self.announcer();
        let stored = envelope::seal(value);
        let nonce = envelope::nonce(&stored);
        let mut script = scripts::cas(announcer.is_some()).key(key);
        script
            .arg(expected.mode())
            .arg(expected.bytes())
            .arg(stored)
            .arg(ttl);
        if let Some(announcer) = announcer {
            announcer.append(&mut script, nonce, When::Changed);
        }
        let stored: u8 = self.query("cas", Request::Script(&script)).await?;
        Ok(stored == 1)
    }

    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        match fencing {
            Fencing::Skip => {
                let cmd = set_command(key, owner, true, Some(lease));
                let undo = Undo::new("try_lock", self.release_script(key, owner));
                let reply: redis::Value = self
                    .query_create("try_lock", Request::Cmd(&cmd), Resend::Never, undo)
                    .await?;
                Ok(if reply == redis::Value::Nil {
                    LockAttempt::Held { remaining: None }
                } else {
                    LockAttempt::Acquired { fence: None }
                })
            }
            Fencing::Issue => {
                let mut script = scripts::lock_fenced().key(key);
                script
                    .key(naming::fence_key(key))
                    .arg(owner)
                    .arg(millis(lease))
                    .arg(millis(lease.saturating_add(FENCE_COUNTER_GRACE)));
                let undo = Undo::new("try_lock", self.release_script(key, owner));
                let (created, number): (u8, i64) = self
                    .query_create("try_lock", Request::Script(&script), Resend::Never, undo)
                    .await?;
                Ok(if created == 1 {
                    LockAttempt::Acquired {
                        fence: Some(u64::try_from(number).unwrap_or(0)),
                    }
                } else {
                    LockAttempt::Held {
                        remaining: remaining(number),
                    }
                })
            }
        }
    }

    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        let script = scripts::lock_record().key(key);
        let (owner, pttl): (Option<Bytes>, i64) = self
            .query_resendable("lock_record", Request::Script(&script))
            .await?;
        Ok(owner.map(|owner| LockRecord {
            owner,
            remaining: remaining(pttl),
        }))
    }

    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        let script = self.release_script(key, owner);
        let removed: u8 = self.query("release", Request::Script(&script)).await?;
        Ok(removed == 1)
    }

    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        let mut script = scripts::extend().key(key);
        script.arg(owner).arg(millis(lease));
        let extended: u8 = self
            .query_resendable("extend", Request::Script(&script))
            .await?;
        Ok(extended == 1)
    }

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        self.subscriber.watch(key, wake).await
    }

    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        self.fill_read(key, lease).await
    }

    async fn peek_for_fill(&self, key: &str) -> Result<Option<FillRead>> {
        self.fill_peek(key).await.map(Some)
    }

    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        Ok(self.fill_store(key, lease, value, ttl).await?.is_some())
    }

    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        self.fill_release(key, lease).await
    }

    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        self.stale_mark(key, grace).await
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        // Fill leases end with a publish on the key's own channel; after a
        // pub/sub outage, waiters wake if the lease record is gone.
        let record = naming::fill_lease_key(key);
        self.subscriber.watch_record(key, record, wake).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.read_many(keys).await
    }

    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        self.write_many(entries, ttl).await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        self.remove_many(keys).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.key_exists(key).await
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.expire(key, ttl).await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.count(key, delta).await
    }

    fn clears_by_prefix(&self) -> bool {
        true
    }

    async fn clear(&self, prefix: &str) -> Result<()> {
        self.clear_prefix(prefix).await
    }

    async fn read_for_fill_many(&self, keys: &[&str], lease: Duration) -> Result<Vec<FillRead>> {
        self.fill_read_many(keys, lease).await
    }

    async fn store_filled_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        self.fill_store_many(entries).await
    }

    // The near cache's methods, by push (`changes/`).

    fn coherence(&self) -> Coherence {
        RedisBackend::coherence(self)
    }

    fn announce_changes(&self, origin: u64, sink: Weak<dyn ChangeSink>) {
        RedisBackend::announce_changes(self, origin, sink);
    }

    fn follow_changes(&self) {
        RedisBackend::follow_changes(self);
    }

    async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        RedisBackend::read_versioned(self, key).await
    }

    async fn read_for_fill_near(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<(FillRead, Option<Option<Duration>>)> {
        self.fill_read_near(key, lease).await
    }

    async fn set_versioned(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<CasToken>> {
        Ok(Some(
            RedisBackend::set_versioned(self, key, value, ttl).await?,
        ))
    }

    async fn store_filled_versioned(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<Option<CasToken>>> {
        Ok(self.fill_store(key, lease, value, ttl).await?.map(Some))
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
