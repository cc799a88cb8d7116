//! Namespace generations: how [`Cache::clear`](crate::Cache::clear) clears
//! a namespace on a backend that cannot list its keys (memcached).
//!
//! Each namespace segment has a generation, a counter at
//! `%gen:<namespace path>` (so `%gen:app:` and `%gen:app:users:` for the
//! namespace `app` / `users`). Keys are stored under each segment followed
//! by its generation, `app%g3:users:k`, or by nothing while it is 0, so a
//! namespace that was never cleared keeps its plain keys. Clearing bumps the
//! namespace's counter: every key written under the old generation,
//! nested namespaces' included, is out of reach at once and left for the
//! server to evict. (`%` never appears unescaped in a namespace segment, so
//! `%g3` cannot be part of a user's namespace.)
//!
//! **The cost.** Before the first operation on a namespace, and again once
//! [`REFRESH`] has passed since the last read, an operation reads the
//! namespace's generations first (one extra round trip, one request per
//! segment, batched). A clear in this process is seen here at once; a clear
//! in another process is seen here within [`REFRESH`]: until then this
//! process reads and writes the old generation's keys. If memcached evicts
//! a generation counter (it is read by every process every second, so it
//! stays at the hot end of the LRU), the namespace goes back to generation
//! 0, whose keys are those from before its first clear.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::dispatch::AnyBackend;
use crate::backend::parse_counter;
use crate::backend::Backend;
use crate::key::Namespace;
use crate::{Error, Result};

/// How long a process trusts the generations it read.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// The root of every generation counter's key.
const COUNTER_ROOT: &str = "%gen:";

/// The generations this process has read, by namespace prefix.
#[derive(Default)]
pub(crate) struct Generations {
    seen: Mutex<HashMap<Arc<str>, Seen>>,
}

#[derive(Clone)]
struct Seen {
    /// The prefix with every segment's generation in it.
    resolved: Arc<str>,
    read_at: Instant,
}

impl Generations {
    /// The prefix keys of `namespace` are stored under now.
    pub(crate) async fn resolve(
        &self,
        backend: &AnyBackend,
        namespace: &Namespace,
    ) -> Result<Arc<str>> {
        let prefix = namespace.prefix();
        if let Some(seen) = self.lock().get(prefix) {
            if seen.read_at.elapsed() < REFRESH {
                return Ok(Arc::clone(&seen.resolved));
            }
        }
        let read_at = Instant::now();
        let counters = counter_keys(prefix);
        let keys: Vec<&str> = counters.iter().map(String::as_str).collect();
        let stored = backend.get_many(&keys).await.map_err(|error| match error {
            // Name the namespace, not the counter key the user never wrote.
            Error::InvalidKey { reason, .. } => Error::InvalidKey {
                key: prefix.to_owned(),
                reason,
            },
            other => other,
        })?;
        let mut resolved = String::with_capacity(prefix.len() + 8 * keys.len());
        for (segment, (counter, value)) in segments(prefix).zip(keys.iter().zip(&stored)) {
            let generation = match value {
                Some(value) => parse_counter(counter, value)?,
                None => 0,
            };
            resolved.push_str(segment);
            if generation != 0 {
                resolved.push_str("%g");
                resolved.push_str(&generation.to_string());
            }
            resolved.push(':');
        }
        let resolved: Arc<str> = resolved.into();
        let seen = Seen {
            resolved: Arc::clone(&resolved),
            read_at,
        };
        self.lock().insert(Arc::from(prefix), seen);
        Ok(resolved)
    }

    /// Moves `namespace` (not the root) to a new generation, and forgets
    /// what this process read for it and for the namespaces inside it.
    pub(crate) async fn bump(&self, backend: &AnyBackend, namespace: &Namespace) -> Result<()> {
        let prefix = namespace.prefix();
        let counter = format!("{COUNTER_ROOT}{prefix}");
        backend.increment(&counter, 1).await?;
        self.lock()
            .retain(|seen_prefix, _| !seen_prefix.starts_with(prefix));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Seen>> {
        // The map is a cache: a panic elsewhere cannot leave it wrong.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The escaped segments of a prefix (`"a:b:"` → `a`, `b`).
fn segments(prefix: &str) -> impl Iterator<Item = &str> {
    prefix.split_terminator(':')
}

/// The counter key of each segment: `%gen:a:`, `%gen:a:b:`.
fn counter_keys(prefix: &str) -> Vec<String> {
    let mut path = String::from(COUNTER_ROOT);
    segments(prefix)
        .map(|segment| {
            path.push_str(segment);
            path.push(':');
            path.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_segment_has_its_own_counter() {
        assert_eq!(counter_keys("a:b%3Ac:"), ["%gen:a:", "%gen:a:b%3Ac:"]);
        assert_eq!(segments("a:b:").collect::<Vec<_>>(), ["a", "b"]);
    }
}
