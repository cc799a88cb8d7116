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
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;
use tracing::Instrument;

use super::claims::Claims;
use super::options::Fill;
use super::policy::StorePolicy;
use super::wait::{index_of, wait_for_others};
use crate::backend::{Backend, FillLease, FillRead, FilledValue, LeaseToken};
use crate::observe;
use crate::observe::op_span;
use crate::typed::frame::Meta;
use crate::typed::{decode, encode, Codec, Json, Typed};
use crate::{Cache, Error, Result};

/// One call's keys: as the caller named them and as the backend sees them.
pub(super) struct Keys {
    pub(super) names: Vec<String>,
    pub(super) full: Vec<String>,
}

/// What a read of one key means for this call.
pub(super) enum Found<T> {
    Value(T),
    Lease(LeaseToken),
    Wait,
}

/// Judges one key's read: a value to serve, a lease to fill under, or
/// someone else's fill to wait for.
pub(super) fn judge<C: Codec, P, T: DeserializeOwned>(
    codec: &C,
    fill: &Fill<P>,
    name: &str,
    read: FillRead,
) -> Result<Found<T>> {
    if let Some((bytes, _)) = &read.value {
        match read.lease {
            // Marked stale, and ours to refresh: fill it with the rest.
            FillLease::Granted(lease) if read.stale => return Ok(Found::Lease(lease)),
            _ if !read.stale || fill.stale_for.is_some() => {
                return Ok(Found::Value(decode::<C, T>(codec, name, bytes)?.1));
            }
            _ => {}
        }
    }
    Ok(match read.lease {
        FillLease::Granted(lease) => Found::Lease(lease),
        FillLease::Busy | FillLease::NotNeeded | FillLease::NotAsked => Found::Wait,
    })
}

pub(super) async fn get_or_fill_many<C, P, T, E, F, Fut, K>(
    cache: &Cache,
    codec: &C,
    keys: &[K],
    fill: &Fill<P>,
    f: F,
) -> Result<HashMap<String, T>, E>
where
    C: Codec,
    P: StorePolicy<T>,
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    K: AsRef<str>,
    F: FnOnce(Vec<String>) -> Fut,
    Fut: Future<Output = Result<HashMap<String, T>, E>>,
{
    let span = op_span!("get_or_fill_many", cache.backend_kind(), keys.len());
    let filled: Result<HashMap<String, T>, E> = async {
        fill.check()?;
        let started = Instant::now();
        let keys = distinct(cache, keys).await?;
        let mut found = HashMap::with_capacity(keys.names.len());
        if keys.names.is_empty() {
            return Ok(found);
        }
        let full: Vec<&str> = keys.full.iter().map(String::as_str).collect();
        let reads = cache
            .backend()
            .read_for_fill_many(&full, fill.lease)
            .await?;
        let mut claims = Claims::new(cache);
        let mut waiting = Vec::new();
        for (i, read) in reads.into_iter().enumerate() {
            // A decode error drops `claims`, which gives the leases back.
            match judge(codec, fill, &keys.names[i], read)? {
                Found::Value(value) => {
                    found.insert(keys.names[i].clone(), value);
                }
                Found::Lease(lease) => claims.held.push((keys.full[i].clone(), lease)),
                Found::Wait => waiting.push(i),
            }
        }
        let kind = cache.backend_kind();
        observe::hits(kind, "get_or_fill_many", found.len() as u64);
        let missing = claims.held.len() + waiting.len();
        observe::misses(kind, "get_or_fill_many", missing as u64);
        let mut fills = Some(f);
        while !claims.held.is_empty() || !waiting.is_empty() {
            if !waiting.is_empty() {
                // While we may still fill, gather the leases of keys whose
                // fillers give up (for a moment, if we hold some already);
                // after our fill, a lease we are granted is a key nobody fills.
                let waited = wait_for_others(cache, codec, fill, &keys, &waiting, started, claims);
                let waited = waited.await?;
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
                .map(|(key, _)| index_of(&keys, key))
                .collect();
            let Some(f) = fills.take() else {
                claims.give_back().await;
                let key = keys.names[led[0]].clone();
                return Err(Error::FilledElsewhereFailed { key }.into());
            };
            let names = led.iter().map(|&i| keys.names[i].clone()).collect();
            let filled = fill_led(cache, codec, fill, &keys, &led, &mut claims, f(names)).await?;
            found.extend(filled);
        }
        Ok(found)
    }
    .instrument(span.clone())
    .await;
    span.record("outcome", if filled.is_ok() { "ok" } else { "error" });
    filled
}

impl Cache {
    /// [`get_or_fill`](Cache::get_or_fill) for a set of keys, with JSON
    /// values: returns the value of every key that has one, filling the
    /// missing ones with **one** call of `f`.
    ///
    /// - One batch reads every key and takes the fill lease of each key
    ///   that needs a fill (one request per server).
    /// - `f` gets the keys this caller leads, in the order given (without
    ///   repeats), and returns a map of the values it found. They are
    ///   stored in one batch, each under its key's lease: as with
    ///   `get_or_fill`, a write to a key during the fill voids its lease, and
    ///   that value is returned but not stored. Keys `f` leaves out are
    ///   absent from the result and not cached; keys it adds are ignored.
    /// - Keys another caller (here or in another process) is filling are
    ///   waited for, woken when their leases end, so concurrent callers
    ///   with overlapping key sets never fill a key twice.
    /// - [`Fill::cache_if`] and [`Fill::ttl_with`] apply per value. Values
    ///   are served as stored: no early refresh; a value marked stale is
    ///   refilled when this caller wins its lease, or served within
    ///   [`Fill::stale_while_revalidate`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use stampede::Fill;
    ///
    /// let cache = stampede::Cache::memory();
    /// cache.set_value("user:1", "ada", None).await?;
    /// let ids = vec!["user:1".to_string(), "user:2".to_string(), "user:404".to_string()];
    /// let users: HashMap<String, String> = cache
    ///     .get_or_fill_many(&ids, Fill::ttl(Duration::from_secs(60)), |missing: Vec<String>| async move {
    ///         assert_eq!(missing, ["user:2", "user:404"]); // user:1 was a hit
    ///         Ok::<_, stampede::Error>(HashMap::from([("user:2".to_string(), "grace".to_string())]))
    ///     })
    ///     .await?;
    /// assert_eq!(users.len(), 2); // user:404 was not found, and is not cached
    /// assert_eq!(users["user:2"], "grace");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// `f`'s error as it is (every lease this call holds is given back, so
    /// waiters take over); an empty key or bad [`Fill`] before anything is
    /// sent; [`Error::Decode`] for a stored value that is not a `T`;
    /// [`Error::FilledElsewhereFailed`] when another caller's fill of one
    /// of the keys ended without a value after `f` had run (call again);
    /// a backend failure.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives back every lease it holds, from a
    /// background task, so other callers take over at once; values already
    /// stored stay.
    pub async fn get_or_fill_many<K, T, E, F, Fut>(
        &self,
        keys: &[K],
        fill: Fill<impl StorePolicy<T>>,
        f: F,
    ) -> Result<HashMap<String, T>, E>
    where
        K: AsRef<str>,
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<HashMap<String, T>, E>>,
    {
        get_or_fill_many(self, &Json, keys, &fill, f).await
    }
}

impl<C: Codec> Typed<C> {
    /// [`Cache::get_or_fill_many`] with this handle's codec.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::collections::HashMap;
    /// use stampede::{typed::Json, Fill};
    ///
    /// let typed = stampede::Cache::memory().with_codec(Json);
    /// let squares: HashMap<String, u64> = typed
    ///     .get_or_fill_many(&["2", "3"], Fill::forever(), |keys: Vec<String>| async move {
    ///         Ok::<_, stampede::Error>(keys.into_iter().map(|k| { let n: u64 = k.parse().unwrap_or(0); (k, n * n) }).collect())
    ///     })
    ///     .await?;
    /// assert_eq!(squares["3"], 9);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Cache::get_or_fill_many`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Cache::get_or_fill_many`].
    pub async fn get_or_fill_many<K, T, E, F, Fut>(
        &self,
        keys: &[K],
        fill: Fill<impl StorePolicy<T>>,
        f: F,
    ) -> Result<HashMap<String, T>, E>
    where
        K: AsRef<str>,
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<HashMap<String, T>, E>>,
    {
        get_or_fill_many(&self.cache, &self.codec, keys, &fill, f).await
    }
}

/// The keys without repeats, in order, checked and namespaced.
async fn distinct<K: AsRef<str>>(cache: &Cache, keys: &[K]) -> Result<Keys> {
    let mut names: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        let key = key.as_ref();
        if !names.iter().any(|seen| seen == key) {
            names.push(key.to_owned());
        }
    }
    let full = cache.full_keys(&names).await?;
    let full = full.iter().map(str::to_owned).collect();
    Ok(Keys { names, full })
}

/// Runs the fill for the keys this caller leads and stores what it
/// returned under their leases, in one batch.
async fn fill_led<C, P, T, E, Fut>(
    cache: &Cache,
    codec: &C,
    fill: &Fill<P>,
    keys: &Keys,
    led: &[usize],
    claims: &mut Claims,
    filling: Fut,
) -> Result<HashMap<String, T>, E>
where
    C: Codec,
    P: StorePolicy<T>,
    T: Serialize,
    E: From<Error>,
    Fut: Future<Output = Result<HashMap<String, T>, E>>,
{
    let started = Instant::now();
    let mut values = match filling.await {
        Ok(values) => values,
        Err(error) => {
            observe::fill_error(cache.backend_kind(), started.elapsed());
            claims.give_back().await;
            return Err(error);
        }
    };
    let took = started.elapsed();
    let in_time = took < fill.lease;
    let mut batch = Vec::new();
    let mut filled = HashMap::with_capacity(led.len());
    for &i in led {
        let name = &keys.names[i];
        let Some(value) = values.remove(name) else {
            continue; // not returned: not cached, and its lease goes back
        };
        if let (true, Some(ttl)) = (in_time, fill.policy.store_for(&value, fill.ttl)) {
            let bytes = encode(codec, name, &value, Meta::fresh_for(ttl, took))?;
            batch.push((i, bytes, fill.storage_ttl(ttl)));
        }
        filled.insert(name.clone(), value);
    }
    let leases: HashMap<&str, &LeaseToken> = claims.leases();
    let entries: Vec<FilledValue<'_>> = batch
        .iter()
        .filter_map(|(i, bytes, ttl)| {
            let key = keys.full[*i].as_str();
            Some(FilledValue {
                key,
                lease: leases.get(key)?,
                value: bytes,
                ttl: *ttl,
            })
        })
        .collect();
    let stored = cache.backend().store_filled_many(&entries).await;
    let stored_keys: Vec<String> = match &stored {
        Ok(stored) => entries
            .iter()
            .zip(stored)
            .filter(|(_, stored)| **stored)
            .map(|(entry, _)| entry.key.to_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    if let Some(near) = cache.near() {
        for key in &stored_keys {
            near.forget(key);
        }
    }
    drop(leases);
    for (i, _, _) in &batch {
        observe::fill(
            cache.backend_kind(),
            stored_keys.contains(&keys.full[*i]),
            took,
        );
    }
    match stored {
        Err(error) if error.is_invalid_input() => {
            claims.give_back().await;
            return Err(error.into());
        }
        Err(error) => tracing::warn!(%error, "could not store the filled values"),
        Ok(_) => {}
    }
    claims.forget(&stored_keys);
    claims.give_back().await;
    Ok(filled)
}

/// How long a caller waits for others' fills in all: twice the lease, as
/// the backend keeps it (the single-key guard's patience).
pub(super) fn patience<P>(cache: &Cache, fill: &Fill<P>) -> Duration {
    cache.backend().lease_life(fill.lease).saturating_mul(2)
}
