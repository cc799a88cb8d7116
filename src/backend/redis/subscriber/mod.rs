//! Cross-process wake-ups: one pub/sub connection per backend, owned by a
//! task, on which each watched lock key's release channel is subscribed.
//!
//! [`Subscriber::watch`] asks the task to subscribe and resolves once the
//! server confirmed it. The [`ReleaseWatch`] it returns sends an unsubscribe
//! when dropped. Watches carry ids, and a channel is unsubscribed only when
//! its last watch goes, so an old watch's late unsubscribe never cancels a
//! newer watch of the same key; the task handles requests in order, so the
//! server sees them in order too.
//!
//! The task starts on the first watch and stops when the backend and every
//! watch are gone. If the link drops, it reconnects with a jittered backoff,
//! subscribes every live channel again, and then asks (one `EXISTS`
//! pipeline) which watched records are gone: their releases may have been
//! published while nobody listened, so their waiters are woken. Until then
//! waiters fall back to their lease bound, and new watches fail at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::{oneshot, Notify};

use super::conn::{Connections, KIND};
use super::naming;
use crate::backend::ReleaseWatch;
use crate::{Error, Result};

mod link;
mod task;

pub(super) use link::{Dialer, Link};
use task::Task;

/// First wait before reconnecting a dropped link.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often an idle link with subscriptions is checked with a `PING`, so a
/// half-open connection is noticed. (The near cache's feed has its own,
/// sub-second heartbeat: a silent feed means stale copies, a silent
/// wake-up link only waiters falling back to their lease bound.)
const KEEPALIVE: Duration = Duration::from_secs(15);

const OPERATION: &str = "watch_releases";

/// The backend's handle on its pub/sub task.
pub(super) struct Subscriber {
    dialer: Arc<Dialer>,
    conns: Arc<Connections>,
    /// `None` until the first watch; replaced if the task has stopped (its
    /// runtime shut down).
    commands: Mutex<Option<UnboundedSender<Command>>>,
    next_id: AtomicU64,
}

enum Command {
    Watch {
        channel: Vec<u8>,
        record: Vec<u8>,
        id: u64,
        wake: Arc<Notify>,
        done: oneshot::Sender<Result<()>>,
    },
    Unwatch {
        channel: Vec<u8>,
        id: u64,
    },
}

/// Unsubscribes its watch when dropped.
struct WatchGuard {
    commands: UnboundedSender<Command>,
    channel: Vec<u8>,
    id: u64,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        // If the task is gone, so is the subscription.
        let _ = self.commands.send(Command::Unwatch {
            channel: std::mem::take(&mut self.channel),
            id: self.id,
        });
    }
}

impl Subscriber {
    pub(super) fn new(dialer: Dialer, conns: Arc<Connections>) -> Self {
        Subscriber {
            dialer: Arc::new(dialer),
            conns,
            commands: Mutex::new(None),
            next_id: AtomicU64::new(0),
        }
    }

    /// What dials this backend's pub/sub links.
    pub(super) fn dialer(&self) -> Arc<Dialer> {
        Arc::clone(&self.dialer)
    }

    /// Subscribes to `lock_key`'s release channel; `wake` is notified on
    /// each release until the returned watch is dropped.
    pub(super) async fn watch(&self, lock_key: &str, wake: Arc<Notify>) -> Result<ReleaseWatch> {
        self.watch_record(lock_key, lock_key.as_bytes().to_vec(), wake)
            .await
    }

    /// Subscribes to `key`'s channel, as [`watch`](Self::watch); after the
    /// link was down, the watch is woken if `record` (the lock record, or a
    /// value's fill lease record) is gone by then.
    pub(super) async fn watch_record(
        &self,
        key: &str,
        record: Vec<u8>,
        wake: Arc<Notify>,
    ) -> Result<ReleaseWatch> {
        let channel = naming::release_channel(key);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, confirmed) = oneshot::channel();
        let commands = self.send(Command::Watch {
            channel: channel.clone(),
            record,
            id,
            wake,
            done,
        });
        // Made before waiting, so a watch given up on (timeout, cancelled
        // future) is unsubscribed once the task gets to it.
        let guard = WatchGuard {
            commands,
            channel,
            id,
        };
        match tokio::time::timeout(self.conns.timeout(), confirmed).await {
            Ok(Ok(Ok(()))) => Ok(ReleaseWatch::new(guard)),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(Error::backend(
                KIND,
                OPERATION,
                "the pub/sub task stopped before confirming the subscription",
            )),
            Err(_) => Err(self.conns.timed_out(OPERATION)),
        }
    }

    /// Hands `command` to the task, starting one if there is none running.
    fn send(&self, command: Command) -> UnboundedSender<Command> {
        let mut slot = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        let command = match slot.as_ref() {
            Some(commands) => match commands.send(command) {
                Ok(()) => return commands.clone(),
                Err(returned) => returned.0,
            },
            None => command,
        };
        let (commands, receiver) = unbounded_channel();
        let task = Task::new(Arc::clone(&self.dialer), Arc::clone(&self.conns));
        tokio::spawn(task.run(receiver));
        // The receiver is alive in the task we just spawned.
        let _ = commands.send(command);
        *slot = Some(commands.clone());
        commands
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|commands| !commands.is_closed());
        f.debug_struct("Subscriber")
            .field("running", &running)
            .finish()
    }
}
