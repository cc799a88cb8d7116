//! Wake-ups between [`Cache`](crate::Cache) handles that share one memory
//! backend (clones of a [`MemoryBackend`](super::MemoryBackend)), the way
//! Redis pub/sub wakes other processes: a handle's waiters register here for
//! a key, and every write to that key notifies them.

use std::collections::HashMap;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::backend::ReleaseWatch;

/// Key → each watch's id and the notify it wakes.
type ByKey = HashMap<String, Vec<(u64, Arc<Notify>)>>;

/// Key → the notifies of the handles watching it.
#[derive(Debug, Default)]
pub(super) struct Watchers {
    by_key: Mutex<ByKey>,
    /// Watches registered anywhere, so that a write with nobody watching
    /// (the common case) skips the mutex.
    count: AtomicUsize,
    next_id: AtomicU64,
}

/// Unregisters its watch when dropped.
struct Registration {
    watchers: Arc<Watchers>,
    key: String,
    id: u64,
}

impl Watchers {
    fn by_key(&self) -> MutexGuard<'_, ByKey> {
        // Every statement leaves the map consistent; a poisoned lock is fine.
        self.by_key.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notifies `wake` on every write to `key` until the watch is dropped.
    pub(super) fn watch(self: &Arc<Self>, key: &str, wake: Arc<Notify>) -> ReleaseWatch {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.by_key()
            .entry(key.to_owned())
            .or_default()
            .push((id, wake));
        self.count.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `wake`: either the writer sees this watch,
        // or the watcher's re-check after it sees the write.
        fence(Ordering::SeqCst);
        ReleaseWatch::new(Registration {
            watchers: Arc::clone(self),
            key: key.to_owned(),
            id,
        })
    }

    /// Wakes every watcher of `key`; call after each write to it.
    pub(super) fn wake(&self, key: &str) {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(watching) = self.by_key().get(key) {
            for (_, notify) in watching {
                notify.notify_waiters();
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut by_key = self.watchers.by_key();
        if let Some(watching) = by_key.get_mut(&self.key) {
            let before = watching.len();
            watching.retain(|(id, _)| *id != self.id);
            if watching.len() < before {
                self.watchers.count.fetch_sub(1, Ordering::SeqCst);
            }
            if watching.is_empty() {
                by_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_is_woken_until_dropped_and_leaves_nothing() {
        let watchers = Arc::new(Watchers::default());
        let notify = Arc::new(Notify::new());
        let watch = watchers.watch("k", Arc::clone(&notify));
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        watchers.wake("other");
        watchers.wake("k");
        woken.await;
        drop(watch);
        assert_eq!(watchers.count.load(Ordering::SeqCst), 0);
        assert!(watchers.by_key().is_empty());
    }
}
