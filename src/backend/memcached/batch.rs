//! Batches on memcached: the many-key forms of `get`, `set`, `delete`,
//! `read_for_fill` and `store_filled`.
//!
//! Each sends the very commands of its single-key form, mapped keys,
//! checks and all, through the client's `run_many`: the commands for one
//! server go out as one pipelined payload (each stamped with an opaque
//! token the answer must echo), and the servers are asked at once, so a
//! batch takes one round trip whatever its size and spread. Results come
//! back in the caller's order. Every key, value and TTL is checked before
//! anything is sent; the whole batch is bounded by the configured timeout,
//! like one single-key call.
//!
//! A batch is not atomic. When some commands fail (a server down, a
//! timeout), the others may have taken effect; the call returns the first
//! failure in the caller's order. A server that answers one command with
//! an error line (`SERVER_ERROR object too large for cache`) cannot be
//! paired with the rest of its share, which fails with it, but nothing is
//! misattributed: the first failure in order is the real one.

use std::borrow::Cow;

use bytes::Bytes;
use memcache::exp::{
    Delete, Error as ClientError, Get, Meta, MutationStatus, Op, OpResult, Operation,
};
use tokio::runtime::Handle;

use super::client::{self, peek, restale, unexpected, whole_secs, Client, Refused};
use super::fill::{fill_get, fill_result, filled, is_placeholder, release_op};
use super::{keys, MemcachedBackend, KIND};
use crate::backend::{FillLease, FillRead, FilledValue};
use crate::{Error, Result};

impl Client {
    /// Runs `operations` pipelined, one exchange per server, the servers at
    /// once: one result per operation, in order. `Err` only when the batch
    /// could not be sent at all.
    pub(super) async fn batch<O: Operation>(
        &self,
        operation: &'static str,
        operations: Vec<O>,
    ) -> Result<Vec<std::result::Result<O::Output, ClientError>>> {
        self.meta
            .run_many(operations)
            .await
            .map_err(|error| self.error(operation, error))
    }

    /// Hands back stale items' refresh tokens that plain reads won by
    /// accident, in one batch. Failures only delay those refreshes (the
    /// items expire), so they are logged, not returned.
    pub(super) async fn give_back_wins(&self, wins: Vec<Delete>) {
        if wins.is_empty() {
            return;
        }
        match self.batch("give_back", wins).await {
            Ok(results) => {
                for error in results.into_iter().filter_map(|result| result.err()) {
                    tracing::debug!(%error, "could not hand back a stale item's refresh token");
                }
            }
            Err(error) => {
                tracing::debug!(%error, "could not hand back stale items' refresh tokens")
            }
        }
    }
}

/// Every key of a batch as sent, checked before anything is sent.
fn wire_keys<'k>(keys: &[&'k str]) -> Result<Vec<Cow<'k, str>>> {
    keys.iter().map(|key| keys::wire_key(key)).collect()
}

/// The give-back of a stale item's refresh token that a plain read won by
/// accident (see `Client::give_back_win`).
fn win_to_hand_back(wire: &str, item: &client::Item) -> Option<Delete> {
    match item {
        client::Item {
            stale: true,
            won: true,
            cas: Some(cas),
            ttl: Some(ttl),
            ..
        } => Some(restale(wire, whole_secs(*ttl), *cas)),
        _ => None,
    }
}

/// The first error of a batch's results in the caller's order, or the
/// results.
fn all_ok<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    results.into_iter().collect()
}

impl MemcachedBackend {
    /// `mg <k> v c t` for every key, as `get` reads one.
    pub(super) async fn many_get(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let wires = wire_keys(keys)?;
        let reads = wires
            .iter()
            .map(|wire| Get::new(&**wire).meta(Meta::NONE.cas().ttl()))
            .collect();
        self.bounded("get_many", async {
            let mut wins = Vec::new();
            let mut values = Vec::with_capacity(keys.len());
            let results = self.client.batch("get_many", reads).await?;
            for (wire, result) in wires.iter().zip(results) {
                let item = result.map(client::item_of);
                let item = item.map_err(|error| self.client.error("get_many", error));
                if let Ok(Some(item)) = &item {
                    wins.extend(win_to_hand_back(wire, item));
                }
                values.push(item.map(|item| item.map(|item| item.value)));
            }
            self.client.give_back_wins(wins).await;
            all_ok(values)
        })
        .await
    }

    /// `ms <k> T<ttl>` for every entry, as `set` stores one.
    pub(super) async fn many_set(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Option<std::time::Duration>,
    ) -> Result<()> {
        let mut sets = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let wire = keys::wire_key(key)?;
            sets.push(self.store_op(key, &wire, value, ttl)?);
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

    /// `mg <k> s c t` and `md <k>` for every key, pipelined: whether each
    /// removed a value. A fill's placeholder is removed too (which voids
    /// the fill) but, as for `get`, is no value: it was not there. Single
    /// `delete`s go through here as batches of one.
    pub(super) async fn removals(
        &self,
        operation: &'static str,
        keys: &[&str],
    ) -> Result<Vec<bool>> {
        let wires = wire_keys(keys)?;
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

    /// `mg <k> v c t N<lease>` for every key, as `read_for_fill` reads one.
    /// When some reads fail, the leases the others were granted are given
    /// back (the caller, getting an error, would never store nor release
    /// them); a lease granted by a read whose answer was lost cannot be
    /// (its CAS is unknown) and ends with its placeholder, as for one key.
    pub(super) async fn many_fill_reads(
        &self,
        keys: &[&str],
        lease: std::time::Duration,
    ) -> Result<Vec<FillRead>> {
        let wires = wire_keys(keys)?;
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
                self.give_back_leases(&wires, &reads);
            }
            all_ok(reads)
        })
        .await
    }

    /// Gives back, from a task of its own, the leases in `reads` (a batch
    /// that failed in part), so that a dropped caller cannot cut it short.
    fn give_back_leases(&self, wires: &[Cow<'_, str>], reads: &[Result<FillRead>]) {
        let granted: Vec<Delete> = wires
            .iter()
            .zip(reads)
            .filter_map(|(wire, read)| match read {
                Ok(FillRead {
                    lease: FillLease::Granted(lease),
                    ..
                }) => release_op(wire, lease),
                _ => None,
            })
            .collect();
        if granted.is_empty() {
            return;
        }
        let client = self.client.clone();
        let give_back = async move {
            let bound = client.timeout;
            let given =
                tokio::time::timeout(bound, client.batch("read_for_fill_many", granted)).await;
            if !matches!(given, Ok(Ok(_))) {
                tracing::debug!("could not give back the fill leases of a failed batch; they end with their placeholders");
            }
        };
        match Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(give_back)),
            Err(_) => tracing::debug!("no runtime to give back the fill leases of a failed batch"),
        }
    }

    /// `ms <k> C<cas> T<ttl>` for every entry, as `store_filled` stores
    /// one; an entry whose lease is not a memcached lease is not sent (it
    /// can never match) and comes back `false`.
    pub(super) async fn many_fill_stores(&self, entries: &[FilledValue<'_>]) -> Result<Vec<bool>> {
        let mut sets = Vec::with_capacity(entries.len());
        let mut sent = Vec::with_capacity(entries.len());
        for entry in entries {
            let set = self.fill_set(entry.key, entry.lease, entry.value, entry.ttl)?;
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
}
