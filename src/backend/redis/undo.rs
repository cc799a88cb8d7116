//! Taking back a create whose caller gave up on it.
//!
//! A call that times out, or whose future is dropped, stops waiting for
//! its reply, but the request may already be on the wire: a frozen server
//! runs it when it resumes. For a create (a lock record, a fill lease) that
//! leaves a record held by nobody, blocking everyone for a whole lease.
//!
//! So a create carries its [`Undo`]: an owner-checked release. While the
//! create is in flight on a connection, an [`InFlight`] guard is armed;
//! when the caller gets the reply it is disarmed. Dropped armed (timeout,
//! cancellation, or the connection's own response timeout), it sends the
//! undo on **the same connection**, from a spawned task. Redis runs one
//! connection's commands in the order they were sent, so the undo runs
//! right after the create, whenever the server gets to it: it removes the
//! record if the create made one, and does nothing otherwise (someone
//! else's record, or a create that was never sent). The task keeps the
//! connection open until the undo is answered, for at most
//! [`UNDO_PATIENCE`]; Redis runs what it has read even from a client that
//! hung up since.
//!
//! On a cluster the create and its undo go through the same cluster
//! connection, which keeps one link per node, so both reach the slot's
//! master on one link, in order. If the slot moved in between (a
//! failover), the undo reaches the new master: it removes the record if it
//! was replicated there, and if it was not, the record was lost with the
//! old master anyway.
//!
//! A create whose connection broke (I/O error, reset) is not undone here:
//! nothing more can be sent on that connection, and the server either ran
//! the create before the break or never will. Lock records are then
//! released by their claim's own drop, on a fresh connection; a fill lease
//! runs out with its (short) lease.
//!
//! A batch fill read has a second way to lose its leases: requests that
//! *were* answered granted some, and then the batch did not reach its
//! caller after all (another group failed, or the whole call was
//! dropped). [`Unclaimed`] gives those back from a background task.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::ScriptInvocation;

use super::commands::fill_release_script;
use super::conn::{Connections, Resend};
use super::topology::Conn;

/// How long the task sending an undo waits for its reply (and keeps the
/// connection open): past the longest freeze or failover worth waiting for.
pub(super) const UNDO_PATIENCE: Duration = Duration::from_secs(60);

/// What takes back a create: owner-checked release scripts (one per
/// record a batch may have made), each replying 1 when it removed
/// something.
pub(super) struct Undo {
    /// The create's operation, for the logs.
    operation: &'static str,
    scripts: Vec<ScriptInvocation<'static>>,
}

impl Undo {
    pub(super) fn new(operation: &'static str, script: ScriptInvocation<'static>) -> Self {
        Undo::all(operation, vec![script])
    }

    /// The undo of a batch of creates: every script, in order.
    pub(super) fn all(operation: &'static str, scripts: Vec<ScriptInvocation<'static>>) -> Self {
        Undo { operation, scripts }
    }
}

/// Armed while a create with an undo is in flight on a connection.
pub(super) struct InFlight {
    undo: Option<Undo>,
    on: Option<Conn>,
}

impl InFlight {
    pub(super) fn new(undo: Option<Undo>) -> Self {
        InFlight { undo, on: None }
    }

    /// The request is about to be sent on `conn`.
    pub(super) fn sending(&mut self, conn: &Conn) {
        if self.undo.is_some() {
            self.on = Some(conn.clone());
        }
    }

    /// The caller has the answer (or the connection is gone): nothing to
    /// take back.
    pub(super) fn answered(&mut self) {
        self.on = None;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (Some(undo), Some(conn)) = (self.undo.take(), self.on.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                operation = undo.operation,
                "a create was given up on outside a tokio runtime; what it made stays until its lease runs out"
            );
            return;
        };
        runtime.spawn(send(undo, conn));
    }
}

/// Sends `undo`'s scripts on `conn`, all at once (each after the create,
/// which is all that order matters for), and logs the outcome of each.
async fn send(undo: Undo, conn: Conn) {
    let operation = undo.operation;
    let replies = undo.scripts.iter().map(|script| {
        let mut conn = conn.clone();
        async move {
            conn.be_patient(UNDO_PATIENCE);
            // Bounded here too: a cluster connection keeps its own response timeout.
            tokio::time::timeout(UNDO_PATIENCE, script.invoke_async::<i64>(&mut conn)).await
        }
    });
    for reply in futures::future::join_all(replies).await {
        log(operation, reply);
    }
}

/// Logs what one undo script did.
fn log(
    operation: &'static str,
    reply: Result<redis::RedisResult<i64>, tokio::time::error::Elapsed>,
) {
    match reply {
        Ok(Ok(1)) => tracing::debug!(
            operation,
            "took back what a create whose caller gave up on it had made"
        ),
        Ok(Ok(_)) => tracing::debug!(
            operation,
            "a create given up on had made nothing to take back"
        ),
        Ok(Err(error)) => tracing::warn!(
            operation,
            %error,
            "could not take back a create given up on; what it made stays until its lease runs out"
        ),
        Err(_) => tracing::warn!(
            operation,
            patience = ?UNDO_PATIENCE,
            "no answer to the take-back of a create given up on; what it made stays until its lease runs out"
        ),
    }
}

/// The leases a batch read asked for, until its caller has them: dropped
/// before [`claimed`](Unclaimed::claimed), it releases every one of them
/// (owner-checked, so only those actually granted go) from a background
/// task.
pub(super) struct Unclaimed {
    conns: Arc<Connections>,
    publish: &'static str,
    leases: Vec<(String, Bytes)>,
}

impl Unclaimed {
    /// The leases `ids` asked for on `keys` (in order), released with
    /// `publish` if the caller never gets them.
    pub(super) fn new(
        conns: Arc<Connections>,
        publish: &'static str,
        keys: &[&str],
        ids: &[Bytes],
    ) -> Self {
        Unclaimed {
            conns,
            publish,
            leases: keys
                .iter()
                .map(|key| key.to_string())
                .zip(ids.iter().cloned())
                .collect(),
        }
    }

    /// The caller has the leases: nothing to give back.
    pub(super) fn claimed(mut self) {
        self.leases.clear();
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        if self.leases.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "a batch fill read was given up on outside a tokio runtime; its leases stay until they run out"
            );
            return;
        };
        let leases = std::mem::take(&mut self.leases);
        runtime.spawn(give_back(Arc::clone(&self.conns), self.publish, leases));
    }
}

/// Releases `leases` (key and lease id), one pipeline per group.
async fn give_back(conns: Arc<Connections>, publish: &'static str, leases: Vec<(String, Bytes)>) {
    const READ: &str = "read_for_fill_many";
    let keys: Vec<&str> = leases.iter().map(|(key, _)| key.as_str()).collect();
    let groups = conns.groups(&keys);
    let conns = &conns;
    let leases = &leases[..];
    let released = conns
        .per_group(READ, &groups, |group| {
            let scripts: Vec<_> = group
                .iter()
                .map(|&at| fill_release_script(&leases[at].0, &leases[at].1, publish))
                .collect();
            async move {
                let resend = Resend::IfConnectionLost;
                conns.scripts::<u8>(READ, &scripts, resend, &|_| None).await
            }
        })
        .await;
    match released {
        Ok(released) => tracing::debug!(
            released = released.iter().filter(|&&released| released == 1).count(),
            "gave back the fill leases of a batch read whose caller never got them"
        ),
        Err(error) => tracing::warn!(
            %error,
            "could not give back the fill leases of a batch read given up on; they stay until they run out"
        ),
    }
}
