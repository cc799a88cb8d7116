//! The fill leases a `get_or_fill_many` call holds, and giving them back.

use std::collections::HashMap;

use crate::backend::{Backend, LeaseToken};
use crate::Scope;

/// The fill leases a call holds. Given back on every way out; dropped with
/// leases still held (the call was cancelled), it gives them back from a
/// background task so that waiters take over at once.
pub(super) struct Claims {
    scope: Scope,
    pub(super) held: Vec<(String, LeaseToken)>,
}

impl Claims {
    pub(super) fn new(scope: &Scope) -> Claims {
        Claims {
            scope: scope.clone(),
            held: Vec::new(),
        }
    }

    pub(super) fn leases(&self) -> HashMap<&str, &LeaseToken> {
        self.held
            .iter()
            .map(|(key, lease)| (key.as_str(), lease))
            .collect()
    }

    /// Drops the leases that ended with a store, and wakes their waiters.
    pub(super) fn forget(&mut self, stored: &[String]) {
        self.held.retain(|(key, _)| !stored.contains(key));
        for key in stored {
            self.scope.fill_wakeups().wake(key);
        }
    }

    /// Gives every lease still held back, all at once.
    pub(super) async fn give_back(&mut self) {
        let held = std::mem::take(&mut self.held);
        give_back_all(&self.scope, held).await;
    }
}

impl Drop for Claims {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "fill leases dropped outside a tokio runtime; they run out on their own"
            );
            return;
        };
        let scope = self.scope.clone();
        runtime.spawn(async move { give_back_all(&scope, held).await });
    }
}

/// Gives leases back, all at once, and wakes their waiters here only when
/// every one is back: a waiter woken by the first finds the rest free too,
/// rather than leading some keys while the others still look busy.
async fn give_back_all(scope: &Scope, held: Vec<(String, LeaseToken)>) {
    let gives = held
        .iter()
        .map(|(key, lease)| scope.backend().release_fill(key, lease));
    for ((key, _), given) in held.iter().zip(futures::future::join_all(gives).await) {
        if let Err(error) = given {
            tracing::warn!(key, %error, "could not give a fill lease back; waiters fall back to its end");
        }
    }
    for (key, _) in &held {
        scope.fill_wakeups().wake(key);
    }
}
