//! The connections: two pools per server list, and the meta-protocol
//! calls the backend makes, with the client's errors turned into the
//! crate's.
//!
//! Each call is one round trip. Timeouts are applied by the caller over a
//! whole backend operation; the client's own io and connect timeouts are
//! set to the same bound as a second line.

use std::borrow::Cow;
use std::time::Duration;

use memcache::exp::{
    Arithmetic, AsyncMetaClient, Delete, Error as ClientError, Get, GetResult, GetStatus,
    LeaseState, Meta, MetaClientBuilder, MutationStatus, Operation, Set, ValueState,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::runtime::Handle;

use super::locks::CREATE_PATIENCE;
use super::requests::{
    item_of, release_op, remaining, restale, unexpected, whole_secs, won_stale, Item,
};
use super::{MemcachedConfig, KIND};
use crate::backend::{FillLease, FillRead};
use crate::{Error, Result};

/// Opens the two pools to `servers` within the configured timeout: one for
/// everything but lock creates, and one for lock creates, whose exchanges
/// outlast the call bound (see the `locks::create` module).
pub(super) async fn connect(
    config: &MemcachedConfig,
    servers: &[String],
) -> Result<(Client, Client)> {
    let connecting = async {
        let meta = pool(config, config.timeout)
            .connect_multiple_async(servers.to_vec())
            .await?;
        let creates = pool(config, CREATE_PATIENCE)
            .connect_multiple_async(servers.to_vec())
            .await?;
        Ok::<_, memcache::exp::Error>((meta, creates))
    };
    let (meta, creates) = match tokio::time::timeout(config.timeout, connecting).await {
        Ok(Ok(clients)) => clients,
        Ok(Err(error)) => return Err(Error::backend(KIND, "connect", error)),
        Err(_) => {
            return Err(Error::BackendTimeout {
                backend: KIND,
                operation: "connect",
                after: config.timeout,
            })
        }
    };
    let timeout = config.timeout;
    let creates = Client {
        meta: creates,
        timeout,
    };
    Ok((Client { meta, timeout }, creates))
}

/// A client configuration: `config`'s pool, with `io_timeout` for each
/// exchange.
fn pool(config: &MemcachedConfig, io_timeout: Duration) -> MetaClientBuilder {
    AsyncMetaClient::builder()
        .max_connections(Some(config.max_connections))
        .max_idle(config.max_connections)
        .io_timeout(Some(io_timeout))
        .connect_timeout(Some(config.timeout))
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

    /// Hands back a stale item's refresh token that `result`'s read won by
    /// accident (memcached gives it to the first reader of any kind), so
    /// that a fill wins it. Failures only delay the refresh (the item
    /// expires), so they are logged, not returned.
    pub(super) async fn hand_back(&self, wire: &str, result: &GetResult) {
        if won_stale(result) {
            let left = remaining(result.item.ttl);
            self.hand_back_win(wire, result.item.cas, left).await;
        }
    }

    /// [`give_back_win`](Self::give_back_win), with a failure logged: it
    /// only delays the refresh (the item expires).
    pub(super) async fn hand_back_win(&self, wire: &str, cas: Option<u64>, ttl: Option<Duration>) {
        if let Err(error) = self.give_back_win("give_back", wire, cas, ttl).await {
            tracing::debug!(key = wire, %error, "could not hand back a stale item's refresh token");
        }
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

    /// Gives back, from a task of its own, the leases in `reads` (a batch
    /// that failed in part), so that a dropped caller cannot cut it short.
    pub(super) fn give_back_leases(&self, wires: &[Cow<'_, str>], reads: &[Result<FillRead>]) {
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
        let client = self.clone();
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
}

/// `flush_all` on `server`, over a connection of its own (the meta client
/// has no such command): every item there is gone at once.
pub(super) async fn flush_all(server: String) -> Result<()> {
    let failed = |error: std::io::Error| Error::backend(KIND, "clear", error);
    let mut stream = TcpStream::connect(&server).await.map_err(failed)?;
    stream.write_all(b"flush_all\r\n").await.map_err(failed)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .await
        .map_err(failed)?;
    if answer.trim_end() == "OK" {
        return Ok(());
    }
    Err(Error::backend(
        KIND,
        "clear",
        format!("{server} answered flush_all with {:?}", answer.trim_end()),
    ))
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
