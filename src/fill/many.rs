//! `get_or_fill_many`: the stampede guard over a set of keys.
//!
//! 1. **Read** every key in one batch that also takes the fill lease of
//!    each key needing a fill ([`Backend::read_for_fill_many`]). When some
//!    keys came back leased to this caller and others busy, the busy ones
//!    are read once more, at once, so that leases given back together (by
//!    a cancelled caller) are taken together.
//! 2. **Fill** the keys whose lease this caller got, with one call of the
//!    fill, and store what it returned in one batch, each value under its
//!    key's lease ([`Backend::store_filled_many`]); leases of keys it did
//!    not return are given back. Filling before waiting means no caller
//!    holds leases while it waits for others' keys, so two callers with
//!    overlapping key sets cannot wait on each other.
//! 3. **Wait** for the keys other callers are filling, woken as their
//!    leases end, and read them again in one batch each time. If this
//!    caller has not filled yet (it led no key) and is granted the leases
//!    of keys whose fillers gave up, it gathers them for a moment
//!    (`wait::GATHER`) and fills them then.
//!
//! The fill runs at most once per call, so a key whose other filler fails
//! after this caller's fill has run cannot be filled here:
//! [`Error::FilledElsewhereFailed`] says so, and the next call fills it.
//! That includes a race: a caller that reads just as another caller's
//! leases are given back one by one may take the first, fill it, and be
//! handed the second afterwards. Values are served as read: no early
//! refresh, and a value in its stale-while-revalidate window is served
//! until the window ends.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;
use tracing::Instrument;

use super::claims::Claims;
use super::options::Fill;
use super::policy::StorePolicy;
use super::wait::index_of;
use crate::backend::{Backend, FillLease, FillRead, FilledValue, LeaseToken};
use crate::codec::frame::Meta;
use crate::codec::{decode, encode, Codec};
use crate::observe;
use crate::observe::op_span;
use crate::{Error, Result, Scope};

/// A `get_or_fill_many` closure, with the value it fills per key and its
/// error: the bounds of this file, declared once (as
/// [`Filler`](super::Filler) does for one key).
pub(crate) trait FillsMany {
    type Value: Serialize + DeserializeOwned;
    type Error: From<Error>;
    type Filling: Future<Output = Result<HashMap<String, Self::Value>, Self::Error>>;

    /// Starts the fill of `keys`.
    fn fill(self, keys: Vec<String>) -> Self::Filling;
}

impl<T, E, F, Fut> FillsMany for F
where
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce(Vec<String>) -> Fut,
    Fut: Future<Output = Result<HashMap<String, T>, E>>,
{
    type Value = T;
    type Error = E;
    type Filling = Fut;

    fn fill(self, keys: Vec<String>) -> Fut {
        self(keys)
    }
}

/// One call's keys: as the caller named them and as the backend sees them.
pub(super) struct Keys {
    pub(super) names: Vec<String>,
    pub(super) full: Vec<String>,
}

/// What one call works with: the cache, the codec, the options, its keys,
/// and when it started. It carries the call's types, so that the steps are
/// its methods, under one set of bounds.
pub(super) struct Batch<'a, C, P, F> {
    pub(super) scope: &'a Scope,
    codec: &'a C,
    pub(super) fill: &'a Fill<P>,
    pub(super) keys: Keys,
    pub(super) started: Instant,
    filler: PhantomData<fn() -> F>,
}

/// What a read of one key means for this call.
pub(super) enum Found<T> {
    Value(T),
    Lease(LeaseToken),
    Wait,
}

/// What the call has so far: values found, leases held, keys other
/// callers are filling (indexes into [`Keys`]).
struct Progress<T> {
    found: HashMap<String, T>,
    claims: Claims,
    waiting: Vec<usize>,
}

pub(crate) async fn get_or_fill_many<C, P, F, K>(
    scope: &Scope,
    codec: &C,
    keys: &[K],
    fill: &Fill<P>,
    f: F,
) -> Result<HashMap<String, F::Value>, F::Error>
where
    C: Codec,
    P: StorePolicy<F::Value>,
    F: FillsMany,
    K: AsRef<str>,
{
    let span = op_span!("get_or_fill_many", scope.backend_kind(), keys.len());
    let filled = async {
        fill.check()?;
        let started = Instant::now();
        let keys = distinct(scope, keys).await?;
        if keys.names.is_empty() {
            return Ok(HashMap::new());
        }
        let batch = Batch::<C, P, F> {
            scope,
            codec,
            fill,
            keys,
            started,
            filler: PhantomData,
        };
        batch.run(f).await
    }
    .instrument(span.clone())
    .await;
    span.record("outcome", if filled.is_ok() { "ok" } else { "error" });
    filled
}

/// The keys without repeats, in order, checked and namespaced.
async fn distinct<K: AsRef<str>>(scope: &Scope, keys: &[K]) -> Result<Keys> {
    let mut names: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        let key = key.as_ref();
        if !names.iter().any(|seen| seen == key) {
            names.push(key.to_owned());
        }
    }
    let full = scope.full_keys(&names).await?;
    let full = full.iter().map(str::to_owned).collect();
    Ok(Keys { names, full })
}

impl<C: Codec, P: StorePolicy<F::Value>, F: FillsMany> Batch<'_, C, P, F> {
    /// Read, then fill and wait until every key has a value.
    async fn run(&self, f: F) -> Result<HashMap<String, F::Value>, F::Error> {
        let Progress {
            mut found,
            mut claims,
            mut waiting,
        } = self.first_read().await?;
        let mut fills = Some(f);
        while !claims.held.is_empty() || !waiting.is_empty() {
            if !waiting.is_empty() {
                // While we may still fill, gather the leases of keys whose
                // fillers give up (for a moment, if we hold some already);
                // after our fill, a lease we are granted is a key nobody fills.
                let waited = self.wait_for_others(&waiting, claims).await?;
                found.extend(waited.found);
                waiting = waited.left;
                claims = waited.claims;
            }
            if claims.held.is_empty() {
                continue;
            }
            let led: Vec<usize> = claims
                .held
                .iter()
                .map(|(key, _)| index_of(&self.keys, key))
                .collect();
            let Some(f) = fills.take() else {
                claims.give_back().await;
                let key = self.keys.names[led[0]].clone();
                return Err(Error::FilledElsewhereFailed { key }.into());
            };
            let names = led.iter().map(|&i| self.keys.names[i].clone()).collect();
            found.extend(self.fill_led(&led, &mut claims, f.fill(names)).await?);
        }
        Ok(found)
    }

    /// Reads every key in one batch, taking the leases of those that need
    /// a fill.
    async fn first_read(&self) -> Result<Progress<F::Value>> {
        let keys = &self.keys;
        let full: Vec<&str> = keys.full.iter().map(String::as_str).collect();
        let reads = self
            .scope
            .backend()
            .read_for_fill_many(&full, self.fill.lease)
            .await?;
        let mut found = HashMap::with_capacity(keys.names.len());
        let mut claims = Claims::new(self.scope);
        let mut waiting = Vec::new();
        for (i, read) in reads.into_iter().enumerate() {
            // A decode error drops `claims`, which gives the leases back.
            match self.judge(i, read)? {
                Found::Value(value) => {
                    found.insert(keys.names[i].clone(), value);
                }
                Found::Lease(lease) => claims.held.push((keys.full[i].clone(), lease)),
                Found::Wait => waiting.push(i),
            }
        }
        let kind = self.scope.backend_kind();
        observe::hits(kind, "get_or_fill_many", found.len() as u64);
        let missing = claims.held.len() + waiting.len();
        observe::misses(kind, "get_or_fill_many", missing as u64);
        Ok(Progress {
            found,
            claims,
            waiting,
        })
    }

    /// Judges the read of key `i`: a value to serve, a lease to fill under,
    /// or someone else's fill to wait for.
    pub(super) fn judge(&self, i: usize, read: FillRead) -> Result<Found<F::Value>> {
        if let Some((bytes, _)) = &read.value {
            match read.lease {
                // Marked stale, and ours to refresh: fill it with the rest.
                FillLease::Granted(lease) if read.stale => return Ok(Found::Lease(lease)),
                _ if !read.stale || self.fill.stale_for.is_some() => {
                    let name = &self.keys.names[i];
                    return Ok(Found::Value(decode(self.codec, name, bytes)?.1));
                }
                _ => {}
            }
        }
        Ok(match read.lease {
            FillLease::Granted(lease) => Found::Lease(lease),
            FillLease::Busy | FillLease::NotNeeded | FillLease::NotAsked => Found::Wait,
        })
    }

    /// Runs the fill for the keys this caller leads and stores what it
    /// returned under their leases, in one batch.
    async fn fill_led(
        &self,
        led: &[usize],
        claims: &mut Claims,
        filling: F::Filling,
    ) -> Result<HashMap<String, F::Value>, F::Error> {
        let started = Instant::now();
        let mut values = match filling.await {
            Ok(values) => values,
            Err(error) => {
                observe::fill_error(self.scope.backend_kind(), started.elapsed());
                claims.give_back().await;
                return Err(error);
            }
        };
        let took = started.elapsed();
        let in_time = took < self.fill.lease;
        let mut batch = Vec::new();
        let mut filled = HashMap::with_capacity(led.len());
        for &i in led {
            let name = &self.keys.names[i];
            let Some(value) = values.remove(name) else {
                continue; // not returned: not cached, and its lease goes back
            };
            let fill = self.fill;
            if let (true, Some(ttl)) = (in_time, fill.policy.store_for(&value, fill.ttl)) {
                let bytes = encode(self.codec, name, &value, Meta::fresh_for(ttl, took))?;
                batch.push((i, bytes, fill.storage_ttl(ttl)));
            }
            filled.insert(name.clone(), value);
        }
        self.store_led(&batch, claims, took).await?;
        Ok(filled)
    }

    /// Stores the encoded values of `batch` (key index, bytes, TTL) under
    /// their leases in one batch, and gives back every lease not used up
    /// by a store. Only a backend's refusal of invalid input is an error.
    async fn store_led(
        &self,
        batch: &[(usize, Vec<u8>, Option<Duration>)],
        claims: &mut Claims,
        took: Duration,
    ) -> Result<()> {
        let leases: HashMap<&str, &LeaseToken> = claims.leases();
        let entries: Vec<FilledValue<'_>> = batch
            .iter()
            .filter_map(|(i, bytes, ttl)| {
                let key = self.keys.full[*i].as_str();
                Some(FilledValue {
                    key,
                    lease: leases.get(key)?,
                    value: bytes,
                    ttl: *ttl,
                })
            })
            .collect();
        let stored = self.scope.backend().store_filled_many(&entries).await;
        let stored_keys: Vec<String> = match &stored {
            Ok(stored) => entries
                .iter()
                .zip(stored)
                .filter(|(_, stored)| **stored)
                .map(|(entry, _)| entry.key.to_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        drop(leases);
        for (i, _, _) in batch {
            let stored = stored_keys.contains(&self.keys.full[*i]);
            observe::fill(self.scope.backend_kind(), stored, took);
        }
        match stored {
            Err(error) if error.is_invalid_input() => {
                claims.give_back().await;
                return Err(error);
            }
            Err(error) => tracing::warn!(%error, "could not store the filled values"),
            Ok(_) => {}
        }
        claims.forget(&stored_keys);
        claims.give_back().await;
        Ok(())
    }

    /// How long a caller waits for others' fills in all: twice the lease,
    /// as the backend keeps it (the single-key guard's patience).
    pub(super) fn patience(&self) -> Duration {
        self.scope
            .backend()
            .lease_life(self.fill.lease)
            .saturating_mul(2)
    }
}
