//! Lock-record creates that always see their answer.
//!
//! A create (`ms <key> ME T<lease> c`) whose caller stops waiting can still
//! land: its future was dropped while the request was out, or the call
//! timed out on a frozen server and the server ran the request when it
//! woke. The `memcache` client discards a connection whose exchange was cut
//! short (it may hold half a request or an unread answer), so nobody would
//! read that answer, and a release sent meanwhile on another connection can
//! reach the server first and find nothing. The record would then be held
//! by nobody for its whole lease, plus the clock margin.
//!
//! So the create runs on a task of its own, on a connection pool whose io
//! timeout is [`CREATE_PATIENCE`] rather than the call bound. The caller
//! waits for the answer under its own bound; the task keeps waiting after
//! the caller is gone. An answer that created the record is handed over as
//! a [`Landed`] guard, and a guard nobody keeps (the caller was gone, timed
//! out, or was dropped before it finished with the record) gives the record
//! back when it drops: `md <key> C<cas>` with the CAS from the create's own
//! answer, sent after that answer arrived, so it can never overtake the
//! create nor remove anyone else's record.
//!
//! A create whose answer has not come within [`CREATE_PATIENCE`] (a server
//! frozen or cut off for that long) is given up on, with a warning: if it
//! lands after that, its record stays until its lease runs out.

use std::sync::Arc;
use std::time::Duration;

use memcache::exp::{MutationStatus, Set};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::remembered::Remembered;
use crate::backend::memcached::client::Client;
use crate::backend::memcached::requests::unexpected;
use crate::backend::memcached::KIND;
use crate::{Error, Result};

/// How long a lock create waits for memcached's answer, whether or not its
/// caller still does (5 minutes). A record created for a caller that is gone
/// is given back as soon as the answer arrives; a create that gets no answer
/// within this time and lands later leaves its record until its lease runs
/// out. See the [backend's docs](crate::backend::memcached#failures).
pub const CREATE_PATIENCE: Duration = Duration::from_secs(300);

/// What a lock create needs once its caller may be gone: cheap to clone.
#[derive(Clone)]
pub(in crate::backend::memcached) struct Creates {
    /// A pool of its own, with [`CREATE_PATIENCE`] as its io timeout.
    pub(in crate::backend::memcached) client: Client,
    pub(in crate::backend::memcached) remembered: Arc<Remembered>,
}

/// What a create found.
pub(in crate::backend::memcached) enum Created {
    /// The record is ours; keep the guard or it is given back.
    Landed(Box<Landed>),
    /// Someone else's record is there.
    Held,
}

impl Creates {
    /// Sends `create` (an add of `owner` at `key`, asking for the CAS) from
    /// a task of its own and waits for its answer. When the record is
    /// created its CAS is remembered, with the lease ending at `lease_end`.
    pub(in crate::backend::memcached) async fn create(
        &self,
        key: &str,
        owner: &[u8],
        create: Set,
        lease_end: Instant,
    ) -> Result<Created> {
        let (key, owner) = (key.to_owned(), owner.to_vec());
        let Ok(runtime) = Handle::try_current() else {
            // No runtime to leave a task on: the caller waits for it.
            return self.run(key, owner, create, lease_end).await;
        };
        let (answer, answered) = oneshot::channel();
        let creates = self.clone();
        runtime.spawn(async move {
            if answer.is_closed() {
                return; // the caller left before anything was sent
            }
            let outcome = creates.run(key, owner, create, lease_end).await;
            match answer.send(outcome) {
                Ok(()) => {}
                Err(Ok(Created::Landed(landed))) => landed.give_back().await,
                Err(Ok(Created::Held)) => {}
                Err(Err(error)) if error.is_timeout() => tracing::warn!(
                    %error,
                    "a lock create timed out; if it reached the server, its record stays until its lease runs out"
                ),
                Err(Err(error)) => tracing::debug!(%error, "a lock create nobody waits for failed"),
            }
        });
        answered.await.unwrap_or_else(|_| {
            Err(Error::backend(
                KIND,
                "try_lock",
                "the lock create was abandoned (is the runtime shutting down?)",
            ))
        })
    }

    /// The create itself, on whatever task calls it.
    async fn run(
        &self,
        key: String,
        owner: Vec<u8>,
        create: Set,
        lease_end: Instant,
    ) -> Result<Created> {
        match self.client.store_returning_cas("try_lock", create).await? {
            (MutationStatus::Applied, cas) => {
                if let Some(cas) = cas {
                    self.remembered.remember(&key, &owner, cas, lease_end);
                }
                // A server that ignored the `c` flag sent no CAS: release
                // and extend take the two-trip path.
                Ok(Created::Landed(Box::new(Landed {
                    creates: self.clone(),
                    key,
                    owner,
                    cas,
                    armed: true,
                    runtime: Handle::try_current().ok(),
                })))
            }
            // The failed add does not say how long the holder has left;
            // callers that want it ask `lock_record`.
            (MutationStatus::AlreadyExists, _) => Ok(Created::Held),
            (other, _) => Err(unexpected("try_lock", other)),
        }
    }
}

/// A lock record we created: given back when dropped, unless the caller
/// [keeps](Landed::keep) it.
pub(in crate::backend::memcached) struct Landed {
    creates: Creates,
    key: String,
    owner: Vec<u8>,
    /// The CAS from the create's answer, when the server sent one.
    cas: Option<u64>,
    armed: bool,
    /// Where a drop sends the give-back: the runtime the create ran on.
    runtime: Option<Handle>,
}

impl Landed {
    /// The caller holds the record now, and answers for releasing it.
    pub(in crate::backend::memcached) fn keep(mut self) {
        self.armed = false;
    }

    /// Deletes the record if it is still the one we created.
    async fn give_back(mut self) {
        self.armed = false;
        let Landed {
            creates,
            key,
            owner,
            ..
        } = &self;
        creates.remembered.forget(key, owner);
        let given_back = creates
            .client
            .delete_owned("try_lock", key, owner, self.cas)
            .await;
        match given_back {
            Ok(removed) => {
                tracing::debug!(lock = key, removed, "gave back a lock nobody took");
            }
            Err(error) => tracing::warn!(
                lock = key,
                %error,
                "could not give back a lock nobody took; it stays until its lease runs out"
            ),
        }
    }
}

impl Drop for Landed {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        let Some(runtime) = self.runtime.take().or_else(|| Handle::try_current().ok()) else {
            tracing::warn!(
                lock = self.key,
                "a lock nobody took was dropped outside a tokio runtime; it stays until its lease runs out"
            );
            return;
        };
        let landed = Landed {
            creates: self.creates.clone(),
            key: std::mem::take(&mut self.key),
            owner: std::mem::take(&mut self.owner),
            cas: self.cas,
            armed: true,
            runtime: None,
        };
        runtime.spawn(landed.give_back());
    }
}
