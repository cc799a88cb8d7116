//! Sending commands: one multiplexed connection taken from the pool, every
//! call bounded by the timeout, errors mapped to [`Error`].
//!
//! deadpool checks a pooled connection with a `PING` each time it is handed
//! out, which would double the round trips of every operation. Instead the
//! backend takes one connection out of the pool (the pool then counts it as
//! gone and may open another for its other users) and sends every command on
//! it: a multiplexed connection (one per node on a cluster) pipelines
//! concurrent requests. When a
//! call fails in a way that may have broken the connection (I/O error,
//! dropped connection, timeout), the connection is dropped and the next call
//! takes a fresh one from the pool, which is bounded by the pool's own
//! create timeout. So a restarted server is picked up without rebuilding the
//! cache. Requests that may run twice are resent at once on the fresh
//! connection ([`Resend`]); the others fail, and the next call reconnects.
//! A create given up on after it was sent is followed on its connection by
//! its undo ([`query_or_undo`](Connections::query_or_undo)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use deadpool_redis::PoolError;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, ScriptInvocation, ServerErrorKind};

use super::naming::key_slot;
use super::topology::{Conn, RedisPool};
use super::undo::{InFlight, Undo};
use crate::{Error, Result};

/// The backend's name in errors.
pub(super) const KIND: &str = "redis";

/// One request: a command, a pipeline or a script.
pub(super) enum Request<'a> {
    Cmd(&'a Cmd),
    Pipeline(&'a Pipeline),
    Script(&'a ScriptInvocation<'a>),
    /// A command without keys (`SCAN`) for the master of a slot on a
    /// cluster; on one server, for that server.
    OnNode(&'a Cmd, u16),
}

/// Whether a request may be sent again after its connection was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resend {
    /// Running it twice is the same as once.
    IfConnectionLost,
    /// It must not run twice: any write (a repeated `SET` of one envelope
    /// could land after another writer's value and revive an old token).
    Never,
}

/// Where commands go. Shared by the backend and its pub/sub task.
pub(super) struct Connections {
    pool: RedisPool,
    timeout: Duration,
    current: Mutex<Option<Current>>,
    /// Held while taking a connection from the pool, so that concurrent
    /// callers finding none take one, not one each.
    refill: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

#[derive(Clone)]
struct Current {
    id: u64,
    conn: Conn,
}

impl Connections {
    pub(super) fn new(pool: RedisPool, timeout: Duration) -> Self {
        Connections {
            pool,
            timeout,
            current: Mutex::new(None),
            refill: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(0),
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(super) fn pool(&self) -> &RedisPool {
        &self.pool
    }

    fn current(&self) -> MutexGuard<'_, Option<Current>> {
        // Only ever assigned whole, so a panic cannot leave it half-written.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `request` and decodes the reply, within the timeout.
    ///
    /// With [`Resend::IfConnectionLost`], a request that failed because its
    /// connection was lost is sent once more on a fresh connection, within
    /// the same timeout. Only for requests whose repetition changes nothing
    /// (reads, `PEXPIRE`): whether a request on a lost connection ran cannot
    /// be known.
    pub(super) async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
        resend: Resend,
    ) -> Result<T> {
        self.query_or_undo(operation, request, resend, None).await
    }

    /// As [`query`](Self::query), for a create: if the reply is given up
    /// on (timeout, cancellation) after the request was sent, `undo` is
    /// sent after it on the same connection (see [`undo`](super::undo)).
    pub(super) async fn query_or_undo<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: Request<'_>,
        resend: Resend,
        undo: Option<Undo>,
    ) -> Result<T> {
        let mut used = None;
        let attempt = self.attempts(operation, &request, resend, undo, &mut used);
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                // A connection that does not answer may be half-open; the next
                // call should not wait on it too.
                if let Some(id) = used {
                    self.discard(id);
                }
                Err(self.timed_out(operation))
            }
        }
    }

    /// The body of [`query_or_undo`](Self::query_or_undo) without its
    /// timeout: sends on the current connection (noting its id in `used`,
    /// so a timeout discards it), resending once on a fresh one if allowed.
    async fn attempts<T: FromRedisValue>(
        &self,
        operation: &'static str,
        request: &Request<'_>,
        resend: Resend,
        undo: Option<Undo>,
        used: &mut Option<u64>,
    ) -> Result<T> {
        let mut in_flight = InFlight::new(undo);
        let mut resends_left = usize::from(resend == Resend::IfConnectionLost);
        loop {
            let mut current = self
                .checkout()
                .await
                .map_err(|e| self.pool_error(operation, e))?;
            *used = Some(current.id);
            in_flight.sending(&current.conn);
            let error = match send(request, &mut current.conn).await {
                Ok(reply) => {
                    in_flight.answered();
                    return Ok(reply);
                }
                Err(error) => error,
            };
            // Still armed only for a reply that did not come in time:
            // the connection may yet deliver the request to a server
            // that is just slow or frozen. A server's error reply, or a
            // connection that broke, leaves nothing to send the undo on.
            if !error.is_timeout() {
                in_flight.answered();
            }
            if may_break_connection(&error) {
                self.discard(current.id);
                if resends_left > 0 && !error.is_timeout() {
                    resends_left -= 1;
                    tracing::debug!(operation, %error, "Redis connection lost; resending once");
                    continue;
                }
            }
            return Err(self.redis_error(operation, error));
        }
    }

    /// Which of `records` exist: one `EXISTS` pipeline on one server; on a
    /// cluster one pipeline per slot (a cluster pipeline keeps to one
    /// slot), sent together. Resent if the connection was lost.
    pub(super) async fn exist(
        &self,
        operation: &'static str,
        records: &[&[u8]],
    ) -> Result<Vec<bool>> {
        if !self.pool.is_cluster() {
            let mut pipeline = redis::pipe();
            for record in records {
                pipeline.exists(*record);
            }
            let request = Request::Pipeline(&pipeline);
            return self
                .query(operation, request, Resend::IfConnectionLost)
                .await;
        }
        let mut by_slot: std::collections::BTreeMap<u16, Vec<usize>> = Default::default();
        for (at, record) in records.iter().enumerate() {
            by_slot.entry(key_slot(record)).or_default().push(at);
        }
        let pipelines: Vec<(Vec<usize>, Pipeline)> = by_slot
            .into_values()
            .map(|ats| {
                let mut pipeline = redis::pipe();
                for &at in &ats {
                    pipeline.exists(records[at]);
                }
                (ats, pipeline)
            })
            .collect();
        let replies = futures::future::try_join_all(pipelines.iter().map(|(_, pipeline)| {
            self.query::<Vec<bool>>(
                operation,
                Request::Pipeline(pipeline),
                Resend::IfConnectionLost,
            )
        }))
        .await?;
        let mut exists = vec![false; records.len()];
        for ((ats, _), reply) in pipelines.iter().zip(replies) {
            for (&at, found) in ats.iter().zip(reply) {
                exists[at] = found;
            }
        }
        Ok(exists)
    }

    /// The current connection, or a fresh one from the pool.
    async fn checkout(&self) -> Result<Current, PoolError> {
        if let Some(current) = self.current().clone() {
            return Ok(current);
        }
        let _refilling = self.refill.lock().await;
        if let Some(current) = self.current().clone() {
            return Ok(current);
        }
        let conn = self.pool.take().await?;
        let current = Current {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            conn,
        };
        *self.current() = Some(current.clone());
        tracing::debug!(
            connection = current.id,
            "took a Redis connection from the pool"
        );
        Ok(current)
    }

    /// Drops connection `id` if it is still the current one.
    fn discard(&self, id: u64) {
        let mut current = self.current();
        if current.as_ref().is_some_and(|c| c.id == id) {
            *current = None;
            tracing::debug!(
                connection = id,
                "dropped a Redis connection after a failure"
            );
        }
    }

    pub(super) fn timed_out(&self, operation: &'static str) -> Error {
        Error::BackendTimeout {
            backend: KIND,
            operation,
            after: self.timeout,
        }
    }

    pub(super) fn redis_error(&self, operation: &'static str, error: RedisError) -> Error {
        if error.is_timeout() {
            self.timed_out(operation)
        } else {
            Error::backend(KIND, operation, error)
        }
    }

    fn pool_error(&self, operation: &'static str, error: PoolError) -> Error {
        match error {
            PoolError::Timeout(_) => self.timed_out(operation),
            PoolError::Backend(error) => self.redis_error(operation, error),
            other => Error::backend(KIND, operation, other),
        }
    }
}

/// Whether a failed call may have left its connection unusable. A server
/// reply such as `WRONGTYPE` or `NOSCRIPT` does not; `READONLY` does: the
/// server it is on is a replica now (a Sentinel failover demoted it), and
/// a fresh connection goes to the new master.
fn may_break_connection(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || error.is_timeout()
        || error.kind() == redis::ErrorKind::Server(ServerErrorKind::ReadOnly)
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("pool", &self.pool.status())
            .field("timeout", &self.timeout)
            .field("connected", &self.current().is_some())
            .finish()
    }
}

/// Sends `request` on `conn` and decodes the reply.
async fn send<T: FromRedisValue>(request: &Request<'_>, conn: &mut Conn) -> redis::RedisResult<T> {
    match request {
        Request::Cmd(cmd) => cmd.query_async(conn).await,
        Request::Pipeline(pipeline) => pipeline.query_async(conn).await,
        Request::Script(script) => script.invoke_async(conn).await,
        Request::OnNode(cmd, slot) => conn.query_on(cmd, *slot).await,
    }
}
