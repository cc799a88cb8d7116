//! The [`Backend`] impl for memcached, with every primitive's body, so
//! that each shows what it sends (the table of commands is in the
//! [module docs](super)). The requests are built and their answers read in
//! `requests.rs`, sent through `client.rs`; lock records are encoded in
//! `locks/`, and the counter's steps are in `counter.rs`.
//!
//! # `exists`, `touch` and `clear`
//!
//! | call | commands | round trips |
//! |---|---|---|
//! | `exists` | `mg <k> s c t` (no value) | 1 |
//! | `touch` | `mg <k> s c t` and `mg <k> T<ttl> s c t`, pipelined | 1 |
//! | `touch` of a fill's placeholder | the above, then `mg <k> T<what it had left>` | 2 |
//! | `clear("")` | `flush_all` to every server, at once, each on a connection of its own | 1 |
//!
//! `exists` and `touch` see a key the way `get` does: a value, stale or
//! not, or a lock record, is there; a fill's empty placeholder is not.
//! memcached's touch (`mg … T`) cannot be made conditional, so `touch`
//! reads the item in the same pipeline just before touching it: when the
//! touch turns out to have hit a placeholder, it puts the placeholder's
//! old expiry back at once (a placeholder made to outlive its lease would
//! hold off every other filler of the key for the whole new TTL if its
//! filler died). A placeholder created in the microseconds between the two
//! commands keeps the new TTL until its filler stores (which sets its own).
//!
//! # Batches
//!
//! The many-key forms of `get`, `set`, `delete`, `read_for_fill` and
//! `store_filled` each send the very commands of their single-key form,
//! mapped keys, checks and all, through the client's `run_many`: the
//! commands for one server go out as one pipelined payload (each stamped
//! with an opaque token the answer must echo), and the servers are asked
//! at once, so a batch takes one round trip whatever its size and spread.
//! Results come back in the caller's order. Every key, value and TTL is
//! checked before anything is sent; the whole batch is bounded by the
//! configured timeout, like one single-key call.
//!
//! A batch is not atomic. When some commands fail (a server down, a
//! timeout), the others may have taken effect; the call returns the first
//! failure in the caller's order. A server that answers one command with
//! an error line (`SERVER_ERROR object too large for cache`) cannot be
//! paired with the rest of its share, which fails with it, but nothing is
//! misattributed: the first failure in order is the real one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use memcache::exp::{Delete, Get, GetStatus, Meta, MutationStatus, Op, OpResult, Set};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::client::{flush_all, Refused};
use super::counter::{self, Step};
use super::locks::{self, Created};
use super::requests::{
    self, all_ok, fill_get, fill_result, filled, is_placeholder, lease_cas, peek, release_op,
    remaining, short_batch, unexpected, won_stale, Item,
};
use super::{keys, ttl, watch, MemcachedBackend, KIND};
use crate::backend::{
    Backend, CasToken, Coherence, Fencing, FillLease, FillRead, FilledValue, LeaseToken,
    LockAttempt, LockRecord, ReleaseWatch, Revalidated, Versioned,
};
use crate::{Error, Result};

impl Backend for MemcachedBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    // ----- values and compare-and-set -----------------------------------

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = keys::wire_key(key)?;
        self.bounded("get", async {
            let item = self.plain_read("get", &key).await?;
            Ok(item.map(|item| item.value))
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let wire = keys::wire_key(key)?;
        let set = self.checked_set(key, &wire, value, ttl)?;
        self.bounded("set", async {
            match self.client.store("set", set).await? {
                MutationStatus::Applied => Ok(()),
                other => Err(unexpected("set", other)),
            }
        })
        .await
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        let set = self.checked_set(key, &wire, value, ttl)?;
        self.bounded("add", self.add_value("add", &wire, set)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed = self.removals("delete", &[key]).await?;
        Ok(removed.first() == Some(&true))
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        let key = keys::wire_key(key)?;
        self.bounded("gets", async {
            let Some(item) = self.plain_read("gets", &key).await? else {
                return Ok(None);
            };
            let cas = item
                .cas
                .ok_or_else(|| Error::backend(KIND, "gets", "memcached sent no CAS unique"))?;
            Ok(Some((item.value, CasToken::from_version(cas))))
        })
        .await
    }

    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        let set = self.checked_set(key, &wire, value, ttl)?;
        let Some(token) = expected else {
            return self.bounded("cas", self.add_value("cas", &wire, set)).await;
        };
        // A token from another backend (a value token) can never match.
        let Some(version) = token.version() else {
            return Ok(false);
        };
        self.bounded("cas", async {
            match self.client.store("cas", set.compare_cas(version)).await? {
                MutationStatus::Applied => Ok(true),
                MutationStatus::CasMismatch | MutationStatus::NotFound => Ok(false),
                other => Err(unexpected("cas", other)),
            }
        })
        .await
    }

    // ----- lock records (see `locks/`) -----------------------------------

    /// `ms <key> ME T<lease> c`, remembering the new record's CAS, then for
    /// [`Fencing::Issue`] the fencing counter (see
    /// `locks::issue_fence`).
    ///
    /// The create runs on a task of its own that always sees its answer
    /// (the `locks::create` module): a record created for a caller that is
    /// gone (dropped, timed out) or that failed before it was done with it
    /// is given back, never left held by nobody.
    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        let record = keys::wire_key(key)?;
        let counter = match fencing {
            Fencing::Issue => Some(keys::fence_key(key)?),
            Fencing::Skip => None,
        };
        let exptime = ttl::exptime(lease, "lease")?;
        self.check_size(key, owner)?;
        self.bounded("try_lock", async {
            let started = Instant::now();
            let create = locks::create_request(&record, owner, exptime);
            let lease_end = crate::clock::deadline(started, lease);
            let landed = match self
                .creates
                .create(&record, owner, create, lease_end)
                .await?
            {
                Created::Landed(landed) => landed,
                Created::Held => return Ok(LockAttempt::Held { remaining: None }),
            };
            let attempt = match counter {
                None => Ok(LockAttempt::Acquired { fence: None }),
                // The record outlives the lease rounded up to whole seconds
                // (the `ttl` module): that is the window in which a token
                // is still safe, and the smallest lease it offers.
                Some(counter) => {
                    let names = (&*record, &*counter, owner);
                    let window = ttl::honoured(lease);
                    locks::issue_fence(&self.client, &self.remembered, names, window, started).await
                }
            };
            // On an error the record may still be ours: `landed` gives it back.
            if attempt.is_ok() {
                landed.keep();
            }
            attempt
        })
        .await
    }

    /// `mg <k> v t`.
    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        let key = keys::wire_key(key)?;
        self.bounded("lock_record", async {
            let item = self
                .client
                .read("lock_record", &key, Meta::NONE.ttl())
                .await?;
            Ok(item.map(|item| LockRecord {
                owner: item.value,
                remaining: item.ttl,
            }))
        })
        .await
    }

    /// `md <key> C<cas>` with the remembered CAS; when none is remembered,
    /// `mg v c`, compare the owner, `md C<cas>`.
    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        let key = keys::wire_key(key)?;
        let release = locks::release_owned(&self.client, &self.remembered, "release", &key, owner);
        self.bounded("release", release).await
    }

    /// Rewrites the record with its TTL reset to `lease` if it is ours:
    /// `ms <key> C<cas> T<lease> c` with the owner as the value, one round
    /// trip with the remembered CAS, which the answer's CAS replaces. When
    /// none is remembered, see
    /// `locks::extend_unremembered`.
    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        let record = keys::wire_key(key)?;
        let exptime = ttl::exptime(lease, "lease")?;
        self.bounded("extend", async {
            let asked = Instant::now();
            let Some(taken) = self.remembered.take(&record, owner) else {
                let remembered = &self.remembered;
                return locks::extend_unremembered(
                    &self.client,
                    remembered,
                    &record,
                    owner,
                    exptime,
                )
                .await;
            };
            let rewrite = locks::rewrite_request(&record, owner, taken.cas, exptime);
            // Until `finish`, the entry is in flight: if this future is
            // dropped, the next call falls back to the two-trip path.
            let answer = self.client.store_returning_cas("extend", rewrite).await;
            let (extended, rewritten) = match answer {
                Ok((MutationStatus::Applied, cas)) => (
                    Ok(true),
                    cas.map(|cas| (cas, crate::clock::deadline(asked, lease))),
                ),
                Ok((MutationStatus::CasMismatch | MutationStatus::NotFound, _)) => {
                    (Ok(false), None)
                }
                Ok((other, _)) => (Err(unexpected("extend", other)), None),
                Err(error) => (Err(error), None),
            };
            self.remembered
                .finish(&record, owner, taken.ticket, rewritten);
            extended
        })
        .await
    }

    // ----- waking: pollers (see `watch.rs`) -------------------------------

    async fn watch_releases(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        let key = keys::wire_key(key)?.into_owned();
        Ok(watch::poll(
            self.client.clone(),
            key,
            wake,
            self.polls,
            watch::Until::Released,
        ))
    }

    async fn watch_fills(&self, key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        let key = keys::wire_key(key)?.into_owned();
        Ok(watch::poll(
            self.client.clone(),
            key,
            wake,
            self.polls,
            watch::Until::Filled,
        ))
    }

    // ----- fill leases (see `requests.rs`) --------------------------------

    /// `mg <k> v c t N<lease>`.
    async fn read_for_fill(&self, key: &str, lease: Duration) -> Result<FillRead> {
        Ok(self.read_for_fill_near(key, lease).await?.0)
    }

    /// `ms <k> C<cas> T<ttl>`, the CAS from the lease.
    async fn store_filled(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let Some(set) = self.checked_fill_set(key, lease, value, ttl)? else {
            return Ok(false);
        };
        self.bounded("store_filled", async {
            let status = self.client.store("store_filled", set).await?;
            filled("store_filled", status)
        })
        .await
    }

    /// `md <k> C<cas>` (placeholder) or `md <k> I T<grace> C<cas>` (stale item).
    async fn release_fill(&self, key: &str, lease: &LeaseToken) -> Result<bool> {
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

    /// `mg <k> s c t`, then `md <k> I T<grace> C<cas>`; a placeholder is
    /// deleted instead (`md <k> C<cas>`).
    async fn mark_stale(&self, key: &str, grace: Duration) -> Result<bool> {
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
                let left = remaining(result.item.ttl).map_or(u32::MAX, requests::whole_secs);
                let mark = requests::restale(&wire, grace_secs.min(left), cas);
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

    fn lease_life(&self, lease: Duration) -> Duration {
        Duration::from_secs(u64::from(ttl::lease_secs(lease)))
    }

    // ----- batches (see the module docs) ----------------------------------

    /// `mg <k> v c t` for every key, as `get` reads one.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let wires = keys::wire_keys(keys)?;
        let reads = wires.iter().map(|wire| requests::plain_get(wire)).collect();
        self.bounded("get_many", async {
            let mut wins = Vec::new();
            let mut values = Vec::with_capacity(keys.len());
            let results = self.client.batch("get_many", reads).await?;
            for (wire, result) in wires.iter().zip(results) {
                let item = result.map(requests::item_of);
                let item = item.map_err(|error| self.client.error("get_many", error));
                if let Ok(Some(item)) = &item {
                    wins.extend(requests::win_to_hand_back(wire, item));
                }
                values.push(item.map(|item| item.map(|item| item.value)));
            }
            self.client.give_back_wins(wins).await;
            all_ok(values)
        })
        .await
    }

    /// `ms <k> T<ttl>` for every entry, as `set` stores one.
    async fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        let mut sets = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let wire = keys::wire_key(key)?;
            sets.push(self.checked_set(key, &wire, value, ttl)?);
        }
        let refused: Vec<Refused> = sets.iter().map(Refused::of).collect();
        self.bounded("set_many", async {
            let results = self.client.batch("set_many", sets).await?;
            let stored = results
                .into_iter()
                .zip(refused)
                .map(|(result, refused)| match result {
                    Ok(set) if set.status == MutationStatus::Applied => Ok(()),
                    Ok(set) => Err(unexpected("set_many", set.status)),
                    Err(error) => Err(self.client.store_error("set_many", refused, error)),
                });
            all_ok(stored.collect()).map(drop)
        })
        .await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        let removed = self.removals("delete_many", keys).await?;
        Ok(removed.into_iter().filter(|&removed| removed).count())
    }

    /// `mg <k> v c t N<lease>` for every key, as `read_for_fill` reads one.
    /// When some reads fail, the leases the others were granted are given
    /// back (the caller, getting an error, would never store nor release
    /// them); a lease granted by a read whose answer was lost cannot be
    /// (its CAS is unknown) and ends with its placeholder, as for one key.
    async fn read_for_fill_many(&self, keys: &[&str], lease: Duration) -> Result<Vec<FillRead>> {
        let wires = keys::wire_keys(keys)?;
        let reads = wires.iter().map(|wire| fill_get(wire, lease)).collect();
        self.bounded("read_for_fill_many", async {
            let results = self.client.batch("read_for_fill_many", reads).await?;
            let reads: Vec<Result<FillRead>> = results
                .into_iter()
                .map(|result| {
                    result
                        .map(fill_result)
                        .map_err(|e| self.client.error("read_for_fill_many", e))
                })
                .collect();
            if reads.iter().any(Result::is_err) {
                self.client.give_back_leases(&wires, &reads);
            }
            all_ok(reads)
        })
        .await
    }

    /// `ms <k> C<cas> T<ttl>` for every entry, as `store_filled` stores
    /// one; an entry whose lease is not a memcached lease is not sent (it
    /// can never match) and comes back `false`.
    async fn store_filled_many(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        let mut sets = Vec::with_capacity(entries.len());
        let mut sent = Vec::with_capacity(entries.len());
        for entry in entries {
            let set = self.checked_fill_set(entry.key, entry.lease, entry.value, entry.ttl)?;
            sent.push(set.is_some());
            sets.extend(set);
        }
        let refused: Vec<Refused> = sets.iter().map(Refused::of).collect();
        self.bounded("store_filled_many", async {
            let results = self.client.batch("store_filled_many", sets).await?;
            let mut answers =
                results
                    .into_iter()
                    .zip(refused)
                    .map(|(result, refused)| match result {
                        Ok(set) => filled("store_filled_many", set.status),
                        Err(error) => {
                            Err(self.client.store_error("store_filled_many", refused, error))
                        }
                    });
            let stored = sent.iter().map(|&sent| {
                if sent {
                    answers.next().unwrap_or(Ok(false))
                } else {
                    Ok(false)
                }
            });
            all_ok(stored.collect())
        })
        .await
    }

    // ----- the rest of the surface (see the module docs) ------------------

    /// `mg <k> s c t`, no value.
    async fn exists(&self, key: &str) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        self.bounded("exists", async {
            let seen = self.client.get("exists", peek(&wire)).await?;
            self.client.hand_back(&wire, &seen).await;
            Ok(seen.status == GetStatus::Hit && !is_placeholder(&seen))
        })
        .await
    }

    /// `mg <k> s c t` and `mg <k> T<ttl> s c t`, pipelined; on a fill's
    /// placeholder, then `mg <k> T<what it had left>`.
    async fn touch(&self, key: &str, new_ttl: Duration) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        let exptime = ttl::exptime(new_ttl, "ttl")?;
        let reads = vec![peek(&wire), peek(&wire).touch(exptime)];
        self.bounded("touch", async {
            let mut results = self.client.batch("touch", reads).await?.into_iter();
            let mut next = || {
                let result = results.next().ok_or_else(|| short_batch("touch"))?;
                result.map_err(|error| self.client.error("touch", error))
            };
            let (before, after) = (next()?, next()?);
            if after.status != GetStatus::Hit {
                return Ok(false);
            }
            if won_stale(&before) || won_stale(&after) {
                let left = remaining(after.item.ttl);
                self.client.hand_back_win(&wire, after.item.cas, left).await;
            }
            if !is_placeholder(&after) {
                return Ok(true);
            }
            if before.status == GetStatus::Hit && before.item.cas == after.item.cas {
                // Put back the expiry the placeholder had before the touch.
                let had = ttl::kept(remaining(before.item.ttl));
                let restore = Get::new(&*wire).without_value().touch_raw(had);
                self.client.get("touch", restore).await?;
            }
            Ok(false)
        })
        .await
    }

    /// `ma` while the counter stays a `u64`, a compare-and-set loop where
    /// it does not: see `counter.rs` for each step and its round trips.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let wire = keys::wire_key(key)?;
        self.bounded("increment", async {
            let mut by_cas = delta < 0;
            for _ in 0..counter::MAX_ATTEMPTS {
                let step = match u64::try_from(delta) {
                    Ok(up) if !by_cas => counter::add_up(&self.client, key, &wire, up).await?,
                    _ => counter::cas_step(&self.client, key, &wire, delta).await?,
                };
                match step {
                    Step::Done(value) => return Ok(value),
                    Step::Again => {}
                    Step::ByCas => by_cas = true,
                }
            }
            Err(Error::TooManyConflicts {
                key: key.to_owned(),
                attempts: counter::MAX_ATTEMPTS,
            })
        })
        .await
    }

    /// memcached cannot list its keys: a namespace is cleared by moving
    /// it to a new generation, above this trait.
    fn clears_by_prefix(&self) -> bool {
        false
    }

    /// `flush_all` on every server for an empty prefix;
    /// [`Error::Unsupported`] for any other.
    async fn clear(&self, prefix: &str) -> Result<()> {
        if !prefix.is_empty() {
            return Err(Error::Unsupported {
                backend: KIND,
                operation: "clear",
            });
        }
        self.bounded("clear", async {
            let mut flushes = tokio::task::JoinSet::new();
            for server in self.servers.iter().cloned() {
                flushes.spawn(flush_all(server));
            }
            while let Some(flushed) = flushes.join_next().await {
                flushed.map_err(|e| Error::backend(KIND, "clear", e))??;
            }
            Ok(())
        })
        .await
    }

    // ----- coherence: what a near cache needs, by revalidation ------------
    // (what may be copied, and for how long: see `requests.rs`)

    fn coherence(&self) -> Coherence {
        Coherence::Revalidate
    }

    /// `mg <key> v f c t`: the value, its CAS (as the version, for an
    /// ordinary value only) and how long a copy may be kept. `None` where
    /// [`get`](Backend::get) finds nothing (a miss, a fill's placeholder).
    async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        let wire = keys::wire_key(key)?;
        let read = Get::new(&*wire).meta(Meta::NONE.cas().ttl());
        self.bounded("get", async {
            let result = self.client.get("get", read).await?;
            self.client.hand_back(&wire, &result).await;
            Ok(requests::versioned(result))
        })
        .await
    }

    /// `read_for_fill`, and how long a near cache may keep a copy of the
    /// value read: `Some(ttl)` only for an ordinary fresh value.
    async fn read_for_fill_near(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<(FillRead, Option<Option<Duration>>)> {
        let wire = keys::wire_key(key)?;
        let get = fill_get(&wire, lease);
        self.bounded("read_for_fill", async {
            let result = self.client.get("read_for_fill", get).await?;
            let copy = requests::copyable(&result);
            let read = fill_result(result);
            let copy = copy.filter(|_| read.lease == FillLease::NotNeeded);
            Ok((read, copy))
        })
        .await
    }

    /// `set` (`ms … c`), and the CAS of the write: the version this
    /// process's copy is known by.
    async fn set_versioned(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<CasToken>> {
        let wire = keys::wire_key(key)?;
        let set = self.checked_set(key, &wire, value, ttl)?;
        self.bounded("set", async {
            match self.client.store_returning_cas("set", set).await? {
                (MutationStatus::Applied, cas) => Ok(cas.map(CasToken::from_version)),
                (other, _) => Err(unexpected("set", other)),
            }
        })
        .await
    }

    /// `store_filled` (`ms … C<lease> c`): the CAS of the write when it
    /// stored, `None` when the lease was void.
    async fn store_filled_versioned(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<Option<CasToken>>> {
        let Some(set) = self.checked_fill_set(key, lease, value, ttl)? else {
            return Ok(None);
        };
        self.bounded("store_filled", async {
            let (status, cas) = self.client.store_returning_cas("store_filled", set).await?;
            let stored = filled("store_filled", status)?;
            Ok(stored.then(|| cas.map(CasToken::from_version)))
        })
        .await
    }

    /// `mg <key> f c t`, without the value: [`Revalidated::Same`] when the
    /// item is still the ordinary value whose CAS is `version`, with how
    /// long a copy may now be kept; [`Revalidated::Changed`] after any
    /// write, delete, expiry or stale mark since (and for a token that is
    /// not a memcached CAS, which no item can match).
    async fn revalidate(&self, key: &str, version: &CasToken) -> Result<Revalidated> {
        let Some(expected) = version.version() else {
            return Ok(Revalidated::Changed);
        };
        let wire = keys::wire_key(key)?;
        let check = Get::new(&*wire)
            .without_value()
            .meta(Meta::NONE.cas().ttl());
        self.bounded("revalidate", async {
            let result = self.client.get("revalidate", check).await?;
            self.client.hand_back(&wire, &result).await;
            Ok(
                if requests::ordinary(&result) && result.item.cas == Some(expected) {
                    Revalidated::Same(requests::copy_life(result.item.ttl))
                } else {
                    Revalidated::Changed
                },
            )
        })
        .await
    }
}

/// The steps several primitives share: the call bound, checked stores,
/// plain reads, adds that replace a fill's placeholder, and deletes.
impl MemcachedBackend {
    /// Runs `call` under the configured timeout.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(self.client.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(Error::BackendTimeout {
                    backend: KIND,
                    operation,
                    after: self.client.timeout,
                })
            })
    }

    /// Refuses a value over the configured size before it is sent.
    fn check_size(&self, key: &str, value: &[u8]) -> Result<()> {
        if value.len() > self.max_value_size {
            return Err(Error::ValueTooLarge {
                key: key.to_owned(),
                size: value.len(),
                limit: Some(self.max_value_size),
                backend: KIND,
            });
        }
        Ok(())
    }

    /// `ms <k> T<ttl>`: a store of `value` at `key` (sent as `wire_key`)
    /// with `ttl`, checked and ready to send.
    fn checked_set(
        &self,
        key: &str,
        wire_key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Set> {
        self.check_size(key, value)?;
        let set = Set::new(wire_key, value);
        Ok(match ttl {
            Some(ttl) => set.ttl(ttl::exptime(ttl, "ttl")?),
            None => set,
        })
    }

    /// `ms <k> C<cas> T<ttl>`: a fill's store, checked (key, size, TTL);
    /// `None` when `lease` is not a memcached lease (it can never match).
    fn checked_fill_set(
        &self,
        key: &str,
        lease: &LeaseToken,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<Set>> {
        let wire = keys::wire_key(key)?;
        let set = self.checked_set(key, &wire, value, ttl)?;
        Ok(lease_cas(lease).map(|cas| set.compare_cas(cas)))
    }

    /// A plain read (`mg <k> v c t`); hands back a stale item's refresh
    /// token if the read won it by accident.
    async fn plain_read(&self, operation: &'static str, wire: &str) -> Result<Option<Item>> {
        let item = self
            .client
            .read(operation, wire, Meta::NONE.cas().ttl())
            .await?;
        if let Some(item) = &item {
            if item.stale && item.won {
                self.client.hand_back_win(wire, item.cas, item.ttl).await;
            }
        }
        Ok(item)
    }

    /// `ms … ME`: `Ok(false)` when the key holds a value. A fill's empty
    /// placeholder is not a value: it is replaced, which voids the fill
    /// (see [`replace_placeholder`](Self::replace_placeholder)).
    async fn add_value(&self, operation: &'static str, wire: &str, set: Set) -> Result<bool> {
        // Kept for the rare placeholder case; a `Set` clone copies the value.
        let fallback = set.clone();
        match self.client.store(operation, set.add()).await? {
            MutationStatus::Applied => Ok(true),
            MutationStatus::AlreadyExists => {
                self.replace_placeholder(operation, wire, fallback).await
            }
            other => Err(unexpected(operation, other)),
        }
    }

    /// Replaces a fill placeholder at `wire` with `set` (an `add`, or a `cas`
    /// that the key is absent, found the key taken): the key holds no value
    /// yet, so the write goes in and voids the fill. `Ok(false)` when a real
    /// value is there.
    async fn replace_placeholder(
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

    /// `mg <k> s c t` and `md <k>` for every key, pipelined: whether each
    /// removed a value. A fill's placeholder is removed too (which voids
    /// the fill) but, as for `get`, is no value: it was not there. Single
    /// `delete`s go through here as batches of one.
    async fn removals(&self, operation: &'static str, keys: &[&str]) -> Result<Vec<bool>> {
        let wires = keys::wire_keys(keys)?;
        let ops = wires
            .iter()
            .flat_map(|wire| [Op::from(peek(wire)), Op::from(Delete::new(&**wire))])
            .collect();
        self.bounded(operation, async {
            let mut results = self.client.batch(operation, ops).await?.into_iter();
            let mut removed = Vec::with_capacity(keys.len());
            while let (Some(seen), Some(gone)) = (results.next(), results.next()) {
                removed.push(match gone {
                    Ok(OpResult::Mutation(gone)) => match gone.status {
                        MutationStatus::Applied => {
                            Ok(!matches!(seen, Ok(OpResult::Get(seen)) if is_placeholder(&seen)))
                        }
                        MutationStatus::NotFound => Ok(false),
                        other => Err(unexpected(operation, other)),
                    },
                    Ok(other) => Err(Error::backend(KIND, operation, format!("{other:?}"))),
                    Err(error) => Err(self.client.error(operation, error)),
                });
            }
            all_ok(removed)
        })
        .await
    }
}
