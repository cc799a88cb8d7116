//! The meta-protocol calls the backend makes, with the client's errors
//! turned into the crate's.
//!
//! Each method is one round trip. Timeouts are applied by the caller over a
//! whole backend operation; the client's own io and connect timeouts are
//! set to the same bound as a second line.

use std::time::Duration;

use bytes::Bytes;
use memcache::exp::{
    Arithmetic, AsyncMetaClient, Delete, Error as ClientError, Get, GetResult, GetStatus,
    LeaseState, Meta, MutationStatus, Set, ValueState,
};

use super::KIND;
use crate::{Error, Result};

/// An item as `mg` returned it.
#[derive(Debug)]
pub(super) struct Item {
    pub(super) value: Bytes,
    /// The CAS unique, when asked for.
    pub(super) cas: Option<u64>,
    /// Whole seconds until expiry when asked for; `None` when it never expires.
    pub(super) ttl: Option<Duration>,
    /// The item is marked stale (`md … I`).
    pub(super) stale: bool,
    /// This read won the stale item's refresh token (`W`): a plain read
    /// must give it back (see `MemcachedBackend::give_back_win`).
    pub(super) won: bool,
}

/// The connection pools (shared by clones) and the call bound.
#[derive(Clone)]
pub(super) struct Client {
    pub(super) meta: AsyncMetaClient,
    pub(super) timeout: Duration,
}

impl Client {
    /// Turns a client error into the crate's, naming the operation.
    pub(super) fn error(&self, operation: &'static str, error: ClientError) -> Error {
        if is_timeout(&error) {
            Error::BackendTimeout {
                backend: KIND,
                operation,
                after: self.timeout,
            }
        } else {
            Error::backend(KIND, operation, error)
        }
    }

    /// `mg <key> v [c] [t]`: the value, and the CAS and TTL `meta` asks for.
    pub(super) async fn read(
        &self,
        operation: &'static str,
        key: &str,
        meta: Meta,
    ) -> Result<Option<Item>> {
        let result = self.get(operation, Get::new(key).meta(meta)).await?;
        Ok(item_of(result))
    }

    /// `mg`, with whatever flags `get` carries, as the client parsed it.
    pub(super) async fn get(&self, operation: &'static str, get: Get) -> Result<GetResult> {
        self.meta
            .run(get)
            .await
            .map_err(|e| self.error(operation, e))
    }

    /// `mg <key>` without the value: whether the key holds an item.
    pub(super) async fn exists(&self, operation: &'static str, key: &str) -> Result<bool> {
        let result = self
            .meta
            .run(Get::new(key).without_value())
            .await
            .map_err(|e| self.error(operation, e))?;
        Ok(result.status == GetStatus::Hit)
    }

    /// `mg <key>` without the value: whether a fill lease is out on the key
    /// (an empty placeholder, or a stale item whose refresh token is taken).
    /// A stale token this poll wins by accident counts as no lease: the
    /// waiters it wakes read again, and one of them takes it.
    pub(super) async fn lease_out(&self, operation: &'static str, key: &str) -> Result<bool> {
        let read = Get::new(key).without_value().meta(Meta::NONE.cas().ttl());
        let result = self.get(operation, read).await?;
        if result.lease_state == LeaseState::Granted && result.value_state == ValueState::Stale {
            // Hand the token back for a waiter to win.
            let ttl = remaining(result.item.ttl);
            self.give_back_win(operation, key, result.item.cas, ttl)
                .await?;
            return Ok(false);
        }
        Ok(result.lease_state == LeaseState::Busy)
    }

    /// Hands back a stale item's refresh token that a read won by accident:
    /// `md <k> I T<ttl> C<cas>` marks it stale again, so the next reader
    /// wins it.
    pub(super) async fn give_back_win(
        &self,
        operation: &'static str,
        key: &str,
        cas: Option<u64>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let (Some(cas), Some(ttl)) = (cas, ttl) else {
            return Ok(());
        };
        self.remove(operation, restale(key, whole_secs(ttl), cas))
            .await
            .map(|_| ())
    }

    /// Turns a client error on a store into the crate's: a value the
    /// server refused as too large is [`Error::ValueTooLarge`], with `key`
    /// as sent (mapped if it was) and no limit (the server does not say).
    pub(super) fn store_error(
        &self,
        operation: &'static str,
        refused: Refused,
        error: ClientError,
    ) -> Error {
        if !too_large(&error) {
            return self.error(operation, error);
        }
        Error::ValueTooLarge {
            key: String::from_utf8_lossy(&refused.key).into_owned(),
            size: refused.size,
            limit: None,
            backend: KIND,
        }
    }

    /// `ms`, in whatever mode `set` says.
    pub(super) async fn store(&self, operation: &'static str, set: Set) -> Result<MutationStatus> {
        let refused = Refused::of(&set);
        let result = self
            .meta
            .run(set)
            .await
            .map_err(|e| self.store_error(operation, refused, e))?;
        Ok(result.status)
    }

    /// `ms … c`, in whatever mode `set` says: the status, and the item's
    /// new CAS unique when the store was applied (memcached ≥ 1.6.13
    /// returns it for the `c` flag).
    pub(super) async fn store_returning_cas(
        &self,
        operation: &'static str,
        set: Set,
    ) -> Result<(MutationStatus, Option<u64>)> {
        let refused = Refused::of(&set);
        let result = self
            .meta
            .run(set.return_cas())
            .await
            .map_err(|e| self.store_error(operation, refused, e))?;
        Ok((result.status, result.cas))
    }

    /// `md`, conditional or not.
    pub(super) async fn remove(
        &self,
        operation: &'static str,
        delete: Delete,
    ) -> Result<MutationStatus> {
        let result = self
            .meta
            .run(delete)
            .await
            .map_err(|e| self.error(operation, e))?;
        Ok(result.status)
    }

    /// The CAS unique of the record at `key`, when it holds `owner`
    /// (`mg <key> v c`).
    pub(super) async fn owned_cas(
        &self,
        operation: &'static str,
        key: &str,
        owner: &[u8],
    ) -> Result<Option<u64>> {
        let Some(item) = self.read(operation, key, Meta::NONE.cas()).await? else {
            return Ok(None);
        };
        if item.value != owner {
            return Ok(None);
        }
        item.cas
            .map(Some)
            .ok_or_else(|| Error::backend(KIND, operation, "memcached sent no CAS unique"))
    }

    /// Deletes the record at `key` if it is `owner`'s: `md <key> C<cas>`
    /// with `cas` when it is known to be the record's, otherwise first
    /// `mg <key> v c` and a comparison of the owner. `Ok(false)` when the
    /// record is gone or someone else's.
    pub(super) async fn delete_owned(
        &self,
        operation: &'static str,
        key: &str,
        owner: &[u8],
        cas: Option<u64>,
    ) -> Result<bool> {
        let cas = match cas {
            Some(cas) => cas,
            None => match self.owned_cas(operation, key, owner).await? {
                Some(cas) => cas,
                None => return Ok(false),
            },
        };
        match self
            .remove(operation, Delete::new(key).compare_cas(cas))
            .await?
        {
            MutationStatus::Applied => Ok(true),
            MutationStatus::CasMismatch | MutationStatus::NotFound => Ok(false),
            other => Err(unexpected(operation, other)),
        }
    }

    /// `ma`: the counter's value after the operation.
    pub(super) async fn count(
        &self,
        operation: &'static str,
        arithmetic: Arithmetic,
    ) -> Result<u64> {
        let result = self
            .meta
            .run(arithmetic)
            .await
            .map_err(|e| self.error(operation, e))?;
        match (result.status, result.value) {
            (MutationStatus::Applied, Some(value)) => Ok(value),
            (status, _) => Err(Error::backend(
                KIND,
                operation,
                format!("the counter was not updated ({status:?})"),
            )),
        }
    }
}

/// The item a plain `mg` found; `None` on a miss. A `Pending` item is
/// another client's empty lease placeholder: no value has been stored there.
pub(super) fn item_of(result: GetResult) -> Option<Item> {
    if result.status != GetStatus::Hit {
        return None;
    }
    Some(Item {
        stale: result.value_state == ValueState::Stale,
        won: result.lease_state == LeaseState::Granted,
        value: result.value.map(Bytes::from).unwrap_or_default(),
        cas: result.item.cas,
        ttl: remaining(result.item.ttl),
    })
}

/// `mg <k> s c t` without the value: what is at the key, for `exists`,
/// `touch` and `delete`.
pub(super) fn peek(key: &str) -> Get {
    Get::new(key)
        .without_value()
        .meta(Meta::NONE.cas().ttl().size())
}

/// Whether a read won a stale item's refresh token by accident.
pub(super) fn won_stale(result: &GetResult) -> bool {
    result.value_state == ValueState::Stale && result.lease_state == LeaseState::Granted
}

/// `md <key> I T<secs> C<cas>`: marks the item stale (again) for `secs`,
/// at least one, if it is still the one whose CAS unique is `cas`. The next
/// reader wins its refresh token.
pub(super) fn restale(key: &str, secs: u32, cas: u64) -> Delete {
    Delete::new(key)
        .invalidate()
        .stale_for_raw(secs.max(1))
        .compare_cas(cas)
}

/// Whole seconds of `duration`, as memcached's 32-bit fields take them.
pub(super) fn whole_secs(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}

/// A TTL reply (`t` flag) as a duration; `None` when the item never expires.
pub(super) fn remaining(ttl: Option<i64>) -> Option<Duration> {
    ttl.and_then(|secs| u64::try_from(secs).ok())
        .map(Duration::from_secs)
}

/// Whether the client gave up waiting, whether or not the request landed.
fn is_timeout(error: &ClientError) -> bool {
    match error {
        ClientError::Timeout { .. } => true,
        ClientError::Io(io) => io.kind() == std::io::ErrorKind::TimedOut,
        ClientError::Ambiguous { source, .. } => is_timeout(source),
        _ => false,
    }
}

/// What a too-large error names: the key and size of a store, kept before
/// the store is sent.
pub(super) struct Refused {
    key: Vec<u8>,
    size: usize,
}

impl Refused {
    pub(super) fn of(set: &Set) -> Refused {
        Refused {
            key: set.key.clone(),
            size: set.value.len(),
        }
    }
}

/// Whether the server refused a value over its item size limit
/// (`SERVER_ERROR object too large for cache`). The client reports that
/// answer as an outcome it cannot know, but memcached stored nothing (and
/// removed the key's old item, which it does whenever it cannot store one).
fn too_large(error: &ClientError) -> bool {
    match error {
        ClientError::Server(message) => message.contains("too large"),
        ClientError::Ambiguous { source, .. } => too_large(source),
        _ => false,
    }
}

/// An unexpected answer to a command, as an error.
pub(super) fn unexpected(operation: &'static str, status: MutationStatus) -> Error {
    Error::backend(
        KIND,
        operation,
        format!("unexpected answer from memcached: {status:?}"),
    )
}
