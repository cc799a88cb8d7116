//! The everyday cache surface on a [`Backend`]: batches, counters, touch.
//! [`FilledValue`] for [`Backend::store_filled_many`], and the defaults for
//! backends that only have the basic primitives.

use std::time::Duration;

use super::{Backend, LeaseToken};

/// One fill's value for [`Backend::store_filled_many`]: what
/// [`Backend::store_filled`] takes, as one entry of a batch.
///
/// ```
/// use stampede::backend::{FilledValue, LeaseToken};
///
/// let lease = LeaseToken::from_version(7);
/// let entry = FilledValue { key: "user:1", lease: &lease, value: b"{}", ttl: None };
/// assert_eq!(entry.key, "user:1");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FilledValue<'a> {
    /// The key, as the backend sees it.
    pub key: &'a str,
    /// The lease [`Backend::read_for_fill`] granted for it.
    pub lease: &'a LeaseToken,
    /// The bytes to store.
    pub value: &'a [u8],
    /// The value's TTL; `None` keeps it until evicted.
    pub ttl: Option<Duration>,
}

/// How often the default `touch` and `increment` retry a conflicting
/// compare-and-set before giving up with [`Error::TooManyConflicts`].
const MAX_ATTEMPTS: u32 = 64;

/// Reads a counter's stored text by Redis's rule for `INCRBY`, so every
/// backend agrees on what a counter is: an optional `-`, then digits with
/// no leading zero (`0` itself excepted), in `i64` range; no spaces, no
/// `+`, no `-0`.
pub(crate) fn parse_counter(key: &str, stored: &[u8]) -> crate::Result<i64> {
    let digits = stored.strip_prefix(b"-").unwrap_or(stored);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == stored.len(), // "0", not "-0"
        [first, ..] => *first != b'0' && digits.iter().all(u8::is_ascii_digit),
    };
    canonical
        .then(|| std::str::from_utf8(stored).ok()?.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| crate::Error::NotACounter {
            key: key.to_owned(),
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

/// `current + delta`, or [`Error::CounterOverflow`] naming the key.
pub(crate) fn add_to_counter(key: &str, current: i64, delta: i64) -> crate::Result<i64> {
    current
        .checked_add(delta)
        .ok_or_else(|| crate::Error::CounterOverflow {
            key: key.to_owned(),
            delta,
        })
}

pub(crate) mod defaults {
    use bytes::Bytes;

    use super::*;
    use crate::backend::FillRead;
    use crate::{Error, Result};

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

    pub(crate) async fn delete_many<B: Backend + ?Sized>(
        backend: &B,
        keys: &[&str],
    ) -> Result<usize> {
        let mut removed = 0;
        for key in keys {
            removed += usize::from(backend.delete(key).await?);
        }
        Ok(removed)
    }

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
}
