//! The one [`Backend`] impl of [`RedisBackend`]: every operation's body,
//! what it sends and whether it may be sent again (the table is in the
//! [module docs](super)). The commands and scripts more than one operation
//! builds, and their reply parsers, are in [`commands`](super::commands);
//! the connection, its timeout and the undo of a create given up on are
//! in [`conn`](super::conn) and [`undo`](super::undo); batches travel per
//! server or slot through [`batch`](super::batch).
//!
//! # Fill leases
//!
//! The lease on a value key lives in a record beside it,
//! `fill_lease_key(key)` (`\xFFw:{<key>}:fill`, in the key's cluster slot),
//! with a TTL of the lease. The record holds the lease id and what the key
//! held when the lease was granted: absent, or the 14-byte envelope header
//! of the stale value. The write-back script stores only if the record
//! still holds our id *and* the key still holds what it held then, so:
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

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::try_join_all;
use tokio::sync::Notify;

use super::batch::miscounted;
use super::changes::{Feed, NewVersion, When};
use super::clear::{self, clear_matching, glob_escape, masters};
use super::commands::{
    announce_clear_script, announced_set, check_size, delete_script, fill_read_script,
    fill_release_script, fill_store_script, millis, opened, publish_args, read_of, release_script,
    remaining, set_command, FillReply, FENCE_COUNTER_GRACE,
};
use super::conn::{Request, Resend, KIND};
use super::envelope::{self, Expected};
use super::undo::{Unclaimed, Undo};
use super::{naming, redis, scripts, RedisBackend};
use crate::backend::{add_to_counter, parse_counter};
use crate::backend::{
    random_lease_id, Backend, CasToken, ChangeSink, Coherence, Fencing, FillLease, FillRead,
    FilledValue, LeaseToken, LockAttempt, LockRecord, ReleaseWatch, Versioned,
};
use crate::{Error, Result};

impl Backend for RedisBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    // ----- values and compare-and-set -------------------------------------

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let stored: Option<Bytes> = self
            .query_resendable("get", Request::Cmd(redis::cmd("GET").arg(key)))
            .await?;
        Ok(stored.map(|stored| envelope::open(stored).payload))
    }

    // `set_versioned`, its version dropped.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.set_versioned(key, value, ttl).await.map(drop)
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        check_size(key, value)?;
        let stored = envelope::seal(value);
        let reply: redis::Value = if let Some(announcer) = self.changes.announcer() {
            let script = announced_set(announcer, key, &stored, true, ttl);
            self.query("add", Request::Script(&script)).await?
        } else {
            let cmd = set_command(key, &stored, true, ttl);
            self.query("add", Request::Cmd(&cmd)).await?
        };
        Ok(reply != redis::Value::Nil)
    }

    // `delete.lua`: the value and its fill lease.
    async fn delete(&self, key: &str) -> Result<bool> {
        let script = delete_script(key, self.publish_command(), self.changes.announcer());
        let removed: u8 = self.query("delete", Request::Script(&script)).await?;
        Ok(removed == 1)
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
        let announcer = self.changes.announcer();
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

    // ----- lock records ---------------------------------------------------

    // A create: given up on once sent, it is followed by its release
    // (see `undo`).
    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        let undo = Undo::new(
            "try_lock",
            release_script(key, owner, self.publish_command()),
        );
        match fencing {
            Fencing::Skip => {
                let cmd = set_command(key, owner, true, Some(lease));
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
        let script = release_script(key, owner, self.publish_command());
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

    // ----- waking -----------------------------------------------------------

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        self.subscriber.watch(key, wake).await
    }

    // ----- fill leases (see the module docs) --------------------------------

    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        Ok(self.read_for_fill_near(key, lease).await?.0)
    }

    // A plain `GET`: a hit costs just that.
    async fn peek_for_fill(&self, key: &str) -> Result<Option<FillRead>> {
        let stored: Option<Bytes> = self
            .query_resendable("peek_for_fill", Request::Cmd(redis::cmd("GET").arg(key)))
            .await?;
        Ok(Some(opened(stored, |fresh| {
            if fresh {
                FillLease::NotNeeded
            } else {
                FillLease::NotAsked
            }
        })))
    }

    // `store_filled_versioned`, its
    // version dropped.
    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        Ok(self
            .store_filled_versioned(key, lease, value, ttl)
            .await?
            .is_some())
    }

    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
        let Some(id) = lease.bytes() else {
            return Ok(false);
        };
        let script = fill_release_script(key, id, self.publish_command());
        let released: u8 = self
            .query_resendable("release_fill", Request::Script(&script))
            .await?;
        Ok(released == 1)
    }

    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
        let announcer = self.changes.announcer();
        let mut script = scripts::mark_stale(announcer.is_some()).key(key);
        script
            .key(naming::fill_lease_key(key))
            .arg(&envelope::stale_header()[..])
            .arg(millis(grace))
            .arg(envelope::MAGIC_STEM);
        publish_args(&mut script, key, self.publish_command());
        if let Some(announcer) = announcer {
            announcer.append(&mut script, NewVersion::Unknown, When::Changed);
        }
        let marked: u8 = self.query("mark_stale", Request::Script(&script)).await?;
        Ok(marked == 1)
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        // Fill leases end with a publish on the key's own channel; after a
        // pub/sub outage, waiters wake if the lease record is gone.
        let record = naming::fill_lease_key(key);
        self.subscriber.watch_record(key, record, wake).await
    }

    // ----- batches (see `batch`) --------------------------------------------

    // One `MGET`.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        // One `MGET` even on a cluster: redis-rs's cluster connection splits
        // a multi-slot `MGET` by slot, sends the parts to their masters at
        // once and puts the replies back in order (measured: 1.5x slower
        // when sent as one request per slot from here).
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(*key);
        }
        let stored: Vec<Option<Bytes>> = self
            .query_resendable("get_many", Request::Cmd(&cmd))
            .await?;
        if stored.len() != keys.len() {
            return Err(miscounted("get_many"));
        }
        Ok(stored
            .into_iter()
            .map(|stored| stored.map(|stored| envelope::open(stored).payload))
            .collect())
    }

    // Every size checked first, then one pipeline of `SET`s per group
    // (each with its own nonce, as `set` writes).
    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            check_size(key, value)?;
        }
        let keys: Vec<&str> = entries.iter().map(|(key, _)| *key).collect();
        let groups = self.conns.groups(&keys);
        self.conns
            .per_group("set_many", &groups, |group| async move {
                if let Some(announcer) = self.changes.announcer() {
                    let scripts: Vec<_> = group
                        .iter()
                        .map(|&at| {
                            let (key, value) = entries[at];
                            announced_set(announcer, key, &envelope::seal(value), false, ttl)
                        })
                        .collect();
                    let request = self
                        .conns
                        .scripts("set_many", &scripts, Resend::Never, &|_| None);
                    let _: Vec<redis::Value> = request.await?;
                    return Ok(vec![(); group.len()]);
                }
                let mut pipeline = redis::pipe();
                for &at in group {
                    let (key, value) = entries[at];
                    let set = set_command(key, &envelope::seal(value), false, ttl);
                    pipeline.add_command(set).ignore();
                }
                // Not resent, as `set` is not.
                let _: redis::Value = self.query("set_many", Request::Pipeline(&pipeline)).await?;
                Ok(vec![(); group.len()])
            })
            .await?;
        Ok(())
    }

    // One pipeline of `delete.lua` per group, so each key's fill lease is
    // voided (and its end published) as `delete` does.
    async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        let groups = self.conns.groups(keys);
        let removed: Vec<u8> = self
            .conns
            .per_group("delete_many", &groups, |group| {
                let scripts: Vec<_> = group
                    .iter()
                    .map(|&at| {
                        delete_script(keys[at], self.publish_command(), self.changes.announcer())
                    })
                    .collect();
                async move {
                    let request =
                        self.conns
                            .scripts("delete_many", &scripts, Resend::Never, &|_| None);
                    request.await
                }
            })
            .await?;
        Ok(removed.iter().filter(|&&removed| removed == 1).count())
    }

    // ----- values: the rest of the surface ----------------------------------

    // `EXISTS`, resent if the connection was lost: true exactly when `get`
    // finds something (a value marked stale too; a fill lease lives beside
    // the key and does not count).
    async fn exists(&self, key: &str) -> Result<bool> {
        let found: u8 = self
            .query_resendable("exists", Request::Cmd(redis::cmd("EXISTS").arg(key)))
            .await?;
        Ok(found == 1)
    }

    // `PEXPIRE`, resent if the connection was lost (setting a TTL twice
    // leaves it set). A value marked stale stays stale: only its TTL moves,
    // which may keep it readable past the grace `mark_stale` gave it; the
    // next `get_or_fill` still refreshes it.
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool> {
        let touched: u8 = if let Some(announcer) = self.changes.announcer() {
            // A TTL cut short must reach the copies too: they may not
            // outlive the value. Not resent, as it announces.
            let mut script = scripts::command_announced().key(key);
            script.arg("PEXPIRE").arg(millis(ttl));
            announcer.append(&mut script, NewVersion::Unknown, When::Changed);
            self.query("touch", Request::Script(&script)).await?
        } else {
            let mut cmd = redis::cmd("PEXPIRE");
            cmd.arg(key).arg(millis(ttl));
            self.query_resendable("touch", Request::Cmd(&cmd)).await?
        };
        Ok(touched == 1)
    }

    // ----- counters -----------------------------------------------------------

    // `incr.lua`, around `INCRBY`; never resent, as a write. The counter is
    // plain decimal text that any Redis client reads and increments, and a
    // value `set` wrote in our envelope (say `set("n", b"5")`) counts as its
    // payload and is stored back bare. The key's TTL is kept; an absent key
    // is created without one. Which values are counters is `INCRBY`'s rule
    // (no spaces, no `+`, no leading zeros). Like `set`, it voids a fill
    // lease on the key: the lease's write-back finds the key changed.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let announcer = self.changes.announcer();
        let mut script = scripts::incr(announcer.is_some()).key(key);
        script
            .arg(delta)
            .arg(&envelope::MAGIC[..])
            .arg(&envelope::STALE_MAGIC[..]);
        if let Some(announcer) = announcer {
            announcer.append(&mut script, NewVersion::Unknown, When::Always);
        }
        let (took, text): (u8, Option<Bytes>) =
            self.query("increment", Request::Script(&script)).await?;
        let text = text.unwrap_or_default();
        if took == 1 {
            return parse_counter(key, &text);
        }
        // INCRBY refused it: say why in the words every backend uses.
        let current = parse_counter(key, &text)?;
        add_to_counter(key, current, delta)?;
        // A number to Rust, not to Redis (" 5", "+5", "007").
        Err(Error::NotACounter {
            key: key.to_owned(),
        })
    }

    // ----- clearing (see `clear`) ---------------------------------------------

    fn clears_by_prefix(&self) -> bool {
        true
    }

    // No prefix: `FLUSHDB`. Otherwise, on each master at once, a `SCAN` of
    // the keys under the prefix, then of their companions, each step's
    // finds unlinked.
    async fn clear(&self, prefix: &str) -> Result<()> {
        if prefix.is_empty() {
            let flush = redis::cmd("FLUSHDB");
            let _: redis::Value = self
                .query_resendable(clear::OPERATION, Request::Cmd(&flush))
                .await?;
        } else {
            let escaped = glob_escape(prefix);
            let keys = [&escaped[..], b"*"].concat();
            let companions = [&b"\xFF?:*"[..], &escaped, b"*"].concat();
            let masters = masters(self).await?;
            let (keys, companions) = (&keys, &companions);
            try_join_all(masters.iter().map(|&slot| async move {
                clear_matching(self, slot, keys, prefix).await?;
                clear_matching(self, slot, companions, prefix).await
            }))
            .await?;
        }
        // Tell near caches everything under `prefix` is gone (after a
        // `FLUSHDB` the log went with the flush: they catch up by flushing
        // too).
        if let Some(announcer) = self.changes.announcer() {
            let script = announce_clear_script(announcer, prefix);
            let _: u64 = self
                .conns
                .query("clear", Request::Script(&script), Resend::Never)
                .await?;
        }
        Ok(())
    }

    // ----- batched fill leases --------------------------------------------------

    // `fill_read.lua` for every key, each with a lease id of its own, one
    // pipeline per group. Leases its caller never sees are given back:
    // each request carries the owner-checked release of every lease it
    // asks for, sent after it on the same connection if the request is
    // given up on once sent (as for `read_for_fill`); leases granted by
    // requests that *were* answered are released by `Unclaimed` when the
    // batch does not reach its caller after all.
    async fn read_for_fill_many(&self, keys: &[&str], lease: Duration) -> Result<Vec<FillRead>> {
        const READ: &str = "read_for_fill_many";
        let publish = self.publish_command();
        let ids: Vec<Bytes> = keys.iter().map(|_| random_lease_id()).collect();
        let unclaimed = Unclaimed::new(Arc::clone(&self.conns), publish, keys, &ids);
        let groups = self.conns.groups(keys);
        let ids = &ids[..];
        let replies: Vec<FillReply> = self
            .conns
            .per_group(READ, &groups, |group| {
                let scripts: Vec<_> = group
                    .iter()
                    .map(|&at| fill_read_script(keys[at], &ids[at], lease))
                    .collect();
                // `sent` are positions in this group.
                let undo = move |sent: &[usize]| {
                    let releases = sent
                        .iter()
                        .map(|&local| group[local])
                        .map(|at| fill_release_script(keys[at], &ids[at], publish))
                        .collect();
                    Some(Undo::all(READ, releases))
                };
                async move {
                    // Resending is safe: a lease we already hold is reported as ours.
                    let resend = Resend::IfConnectionLost;
                    self.conns.scripts(READ, &scripts, resend, &undo).await
                }
            })
            .await?;
        unclaimed.claimed();
        Ok(replies
            .into_iter()
            .zip(ids.iter().cloned())
            .map(|(reply, id)| read_of(reply, id))
            .collect())
    }

    // Every size checked first, then `fill_store.lua` for every entry whose
    // lease this backend could have granted (any other is void: `false`,
    // and nothing sent for it), one pipeline per group.
    async fn store_filled_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        const STORE: &str = "store_filled_many";
        for entry in entries {
            check_size(entry.key, entry.value)?;
        }
        let ours: Vec<(usize, &Bytes)> = entries
            .iter()
            .enumerate()
            .filter_map(|(at, entry)| entry.lease.bytes().map(|id| (at, id)))
            .collect();
        let mut stored = vec![false; entries.len()];
        if ours.is_empty() {
            return Ok(stored);
        }
        let keys: Vec<&str> = ours.iter().map(|&(at, _)| entries[at].key).collect();
        let groups = self.conns.groups(&keys);
        let ours = &ours[..];
        let replies: Vec<u8> = self
            .conns
            .per_group(STORE, &groups, |group| {
                let scripts: Vec<_> = group
                    .iter()
                    .map(|&local| {
                        let (at, id) = ours[local];
                        let entry = &entries[at];
                        let (publish, announcer) =
                            (self.publish_command(), self.changes.announcer());
                        fill_store_script(entry.key, id, entry.value, entry.ttl, publish, announcer)
                            .0
                    })
                    .collect();
                // Not resent, as `store_filled` is not.
                async move {
                    self.conns
                        .scripts(STORE, &scripts, Resend::Never, &|_| None)
                        .await
                }
            })
            .await?;
        for (&(at, _), reply) in ours.iter().zip(replies) {
            stored[at] = reply == 1;
        }
        Ok(stored)
    }

    // ----- coherence: the near cache, by push (`changes`) ---------------------

    fn coherence(&self) -> Coherence {
        if self.is_cluster() {
            Coherence::Unsupported(
                "on a Redis Cluster the near cache's invalidation log would have to span hash slots (every write would go through one slot); use a standalone or Sentinel deployment for a near cache",
            )
        } else {
            Coherence::Push
        }
    }

    fn announce_changes(&self, origin: u64, sink: Weak<dyn ChangeSink>) {
        self.changes.start_announcing(origin).deliver_to(sink);
    }

    // Starts the feed task unless it runs.
    fn follow_changes(&self) {
        let Some(announcer) = self.changes.announcer() else {
            return;
        };
        let mut feed = self.changes.feed();
        if feed.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let follower = Feed::new(
            self.subscriber.dialer(),
            Arc::clone(&self.conns),
            announcer.sink(),
        );
        *feed = Some(runtime.spawn(follower.run()));
    }

    // `GET` and `PTTL` in one pipeline. A value keeps its version only if
    // it is ours (enveloped) and not marked stale.
    async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        let mut pipeline = redis::pipe();
        // In one transaction, so that the TTL is the read value's.
        pipeline.atomic().cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (stored, pttl): (Option<Bytes>, i64) = self
            .query_resendable("get", Request::Pipeline(&pipeline))
            .await?;
        Ok(stored.map(|stored| {
            let opened = envelope::open(stored);
            let ours = opened.token.version().is_some() && !opened.stale;
            Versioned {
                value: opened.payload,
                version: ours.then_some(opened.token),
                // -1: no TTL; -2 cannot follow a value in one transaction,
                // but would mean "gone": keep no copy then.
                ttl: if pttl == -1 {
                    None
                } else {
                    Some(remaining(pttl).unwrap_or(Duration::ZERO))
                },
            }
        }))
    }

    // `fill_read.lua`, a create: given up on once sent, it is followed by
    // the lease's release. A near cache may keep a copy only of a fresh
    // value of ours (enveloped).
    async fn read_for_fill_near(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<(FillRead, Option<Option<Duration>>)> {
        let id = random_lease_id();
        let script = fill_read_script(key, &id, lease);
        let release = fill_release_script(key, &id, self.publish_command());
        let undo = Undo::new("read_for_fill", release);
        // Resending is safe: a lease we already hold is reported as ours.
        let resend = Resend::IfConnectionLost;
        let reply: FillReply = self
            .query_create("read_for_fill", Request::Script(&script), resend, undo)
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
            left => Some(Some(remaining(left).unwrap_or(Duration::ZERO))),
        };
        Ok((read, copy))
    }

    // `SET`, or with a near cache attached the announcing `SET`; the
    // version is the envelope's nonce.
    async fn set_versioned(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<CasToken>> {
        check_size(key, value)?;
        let (stored, nonce) = envelope::seal_with_nonce(value);
        // Not resent: a second landing of the same nonce after another
        // writer's value would bring an old CAS token back to life.
        if let Some(announcer) = self.changes.announcer() {
            let script = announced_set(announcer, key, &stored, false, ttl);
            let _: redis::Value = self.query("set", Request::Script(&script)).await?;
        } else {
            let cmd = set_command(key, &stored, false, ttl);
            self.query::<()>("set", Request::Cmd(&cmd)).await?;
        }
        Ok(Some(CasToken::from_version(nonce)))
    }

    // `fill_store.lua`: stores only under a valid lease; the version is
    // the stored envelope's nonce.
    async fn store_filled_versioned(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<Option<CasToken>>> {
        check_size(key, value)?;
        let Some(id) = lease.bytes() else {
            return Ok(None);
        };
        let (publish, announcer) = (self.publish_command(), self.changes.announcer());
        let (script, nonce) = fill_store_script(key, id, value, ttl, publish, announcer);
        let stored: u8 = self.query("store_filled", Request::Script(&script)).await?;
        Ok((stored == 1).then(|| Some(CasToken::from_version(nonce))))
    }
}

/// The steps every operation above shares: sending, by what may be sent
/// again, and the publish command.
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
    async fn query_create<T: redis::FromRedisValue>(
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

    /// The command the scripts publish releases with: sharded on a
    /// cluster, so a message stays on the node that owns its slot.
    pub(super) fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }
}
