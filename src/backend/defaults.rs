//! The provided bodies of [`Backend`]'s methods, for backends that only
//! have the required primitives; `contract.rs` calls them from the trait's
//! default methods, and a backend overrides a method where it has a faster
//! or stronger form.
//!
//! - **Fill leases** ([`read_for_fill`], [`store_filled`],
//!   [`release_fill`]): the lease is a lock record at
//!   [`default_lease_key`]; the write-back is a `cas` that the key is still
//!   absent. Documented on [`Backend::read_for_fill`]: a delete of a key
//!   that was absent when the fill began is not seen.
//! - **Batches** ([`get_many`], [`set_many`], [`delete_many`],
//!   [`read_for_fill_many`], [`store_filled_many`]): one call per key, in
//!   turn.
//! - **Read-modify-writes** ([`touch`], [`increment`]): a `gets` / `cas`
//!   loop, with [`parse_counter`] and [`add_to_counter`], the counter rules
//!   every backend shares.

use std::time::Duration;

use bytes::Bytes;

use super::{Backend, Fencing, FillLease, FillRead, FilledValue, LeaseToken, LockAttempt};
use crate::{Error, Result};

// ----- fill leases ------------------------------------------------------

/// A fresh random lease id: a uuid v4 in text form.
pub(crate) fn random_lease_id() -> Bytes {
    let mut text = [0u8; 32];
    uuid::Uuid::new_v4().simple().encode_lower(&mut text);
    Bytes::copy_from_slice(&text)
}

/// Where the default lease record lives: beside the key, with a unit
/// separator that ordinary keys do not contain.
pub(crate) fn default_lease_key(key: &str) -> String {
    format!("{key}\u{1f}fill")
}

pub(crate) async fn read_for_fill<B: Backend + ?Sized>(
    backend: &B,
    key: &str,
    lease: Duration,
) -> Result<FillRead> {
    if let Some((value, token)) = backend.gets(key).await? {
        return Ok(FillRead::hit(value, token));
    }
    let id = random_lease_id();
    let attempt = backend
        .try_lock(&default_lease_key(key), &id, lease, Fencing::Skip)
        .await?;
    Ok(FillRead::missing(match attempt {
        LockAttempt::Acquired { .. } => FillLease::Granted(LeaseToken::from_bytes(id)),
        LockAttempt::Held { .. } => FillLease::Busy,
    }))
}

pub(crate) async fn store_filled<B: Backend + ?Sized>(
    backend: &B,
    key: &str,
    lease: &LeaseToken,
    value: &[u8],
    ttl: Option<Duration>,
) -> Result<bool> {
    let Some(id) = lease.bytes() else {
        return Ok(false);
    };
    let lease_key = default_lease_key(key);
    let ours = backend
        .lock_record(&lease_key)
        .await?
        .is_some_and(|record| record.owner == id);
    let stored = ours && backend.cas(key, value, None, ttl).await?;
    backend.release(&lease_key, id).await?;
    Ok(stored)
}

pub(crate) async fn release_fill<B: Backend + ?Sized>(
    backend: &B,
    key: &str,
    lease: &LeaseToken,
) -> Result<bool> {
    match lease.bytes() {
        Some(id) => backend.release(&default_lease_key(key), id).await,
        None => Ok(false),
    }
}

// ----- batches ----------------------------------------------------------

pub(crate) async fn get_many<B: Backend + ?Sized>(
    backend: &B,
    keys: &[&str],
) -> Result<Vec<Option<Bytes>>> {
    let mut values = Vec::with_capacity(keys.len());
    for key in keys {
        values.push(backend.get(key).await?);
    }
    Ok(values)
}

pub(crate) async fn set_many<B: Backend + ?Sized>(
    backend: &B,
    entries: &[(&str, &[u8])],
    ttl: Option<Duration>,
) -> Result<()> {
    for (key, value) in entries {
        backend.set(key, value, ttl).await?;
    }
    Ok(())
}

pub(crate) async fn delete_many<B: Backend + ?Sized>(backend: &B, keys: &[&str]) -> Result<usize> {
    let mut removed = 0;
    for key in keys {
        removed += usize::from(backend.delete(key).await?);
    }
    Ok(removed)
}

pub(crate) async fn read_for_fill_many<B: Backend + ?Sized>(
    backend: &B,
    keys: &[&str],
    lease: Duration,
) -> Result<Vec<FillRead>> {
    let mut reads = Vec::with_capacity(keys.len());
    for key in keys {
        reads.push(backend.read_for_fill(key, lease).await?);
    }
    Ok(reads)
}

pub(crate) async fn store_filled_many<B: Backend + ?Sized>(
    backend: &B,
    entries: &[FilledValue<'_>],
) -> Result<Vec<bool>> {
    let mut stored = Vec::with_capacity(entries.len());
    for entry in entries {
        stored.push(
            backend
                .store_filled(entry.key, entry.lease, entry.value, entry.ttl)
                .await?,
        );
    }
    Ok(stored)
}

// ----- read-modify-writes: touch and counters ---------------------------

/// How often the default `touch` and `increment` retry a conflicting
/// compare-and-set before giving up with [`Error::TooManyConflicts`].
const MAX_ATTEMPTS: u32 = 64;

pub(crate) async fn touch<B: Backend + ?Sized>(
    backend: &B,
    key: &str,
    ttl: Duration,
) -> Result<bool> {
    for _ in 0..MAX_ATTEMPTS {
        let Some((value, token)) = backend.gets(key).await? else {
            return Ok(false);
        };
        if backend.cas(key, &value, Some(&token), Some(ttl)).await? {
            return Ok(true);
        }
    }
    Err(Error::TooManyConflicts {
        key: key.to_owned(),
        attempts: MAX_ATTEMPTS,
    })
}

pub(crate) async fn increment<B: Backend + ?Sized>(
    backend: &B,
    key: &str,
    delta: i64,
) -> Result<i64> {
    for _ in 0..MAX_ATTEMPTS {
        let seen = backend.gets(key).await?;
        let current = match &seen {
            Some((stored, _)) => parse_counter(key, stored)?,
            None => 0,
        };
        let next = add_to_counter(key, current, delta)?;
        let token = seen.as_ref().map(|(_, token)| token);
        if backend
            .cas(key, next.to_string().as_bytes(), token, None)
            .await?
        {
            return Ok(next);
        }
    }
    Err(Error::TooManyConflicts {
        key: key.to_owned(),
        attempts: MAX_ATTEMPTS,
    })
}

/// Reads a counter's stored text by Redis's rule for `INCRBY`, so every
/// backend agrees on what a counter is: an optional `-`, then digits with
/// no leading zero (`0` itself excepted), in `i64` range; no spaces, no
/// `+`, no `-0`.
pub(crate) fn parse_counter(key: &str, stored: &[u8]) -> Result<i64> {
    let digits = stored.strip_prefix(b"-").unwrap_or(stored);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == stored.len(), // "0", not "-0"
        [first, ..] => *first != b'0' && digits.iter().all(u8::is_ascii_digit),
    };
    canonical
        .then(|| std::str::from_utf8(stored).ok()?.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| Error::NotACounter {
            key: key.to_owned(),
        })
}

/// `current + delta`, or [`Error::CounterOverflow`] naming the key.
pub(crate) fn add_to_counter(key: &str, current: i64, delta: i64) -> Result<i64> {
    current
        .checked_add(delta)
        .ok_or_else(|| Error::CounterOverflow {
            key: key.to_owned(),
            delta,
        })
}

#[cfg(test)]
mod tests {
    use super::parse_counter;

    #[test]
    fn counters_are_what_redis_counts() {
        for (text, want) in [("0", Some(0)), ("-8", Some(-8)), ("42", Some(42))] {
            assert_eq!(parse_counter("k", text.as_bytes()).ok(), want, "{text}");
        }
        let max = i64::MAX.to_string();
        assert_eq!(parse_counter("k", max.as_bytes()).ok(), Some(i64::MAX));
        for text in [
            "",
            "-",
            "-0",
            "007",
            "+5",
            " 5",
            "5 ",
            "1e3",
            "9223372036854775808",
            "x",
        ] {
            assert!(parse_counter("k", text.as_bytes()).is_err(), "{text:?}");
        }
    }
}
