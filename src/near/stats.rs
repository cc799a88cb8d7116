//! [`NearStats`]: what a near tier did, for diagnostics and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts kept by a near tier since it started, from
/// [`Cache::near_stats`](crate::Cache::near_stats).
///
/// ```
/// let stats = stampede::NearStats::default();
/// assert_eq!(stats.hits + stats.backend_reads, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearStats {
    /// Reads answered from the tier.
    pub hits: u64,
    /// Reads the tier could not answer.
    pub misses: u64,
    /// Reads the tier sent to the backend on a miss (a `get_or_fill`
    /// lease read included, whether or not it found a value).
    pub backend_reads: u64,
    /// Those of them that brought a value back.
    pub value_reads: u64,
    /// Version checks sent to the backend (memcached, past the trust window).
    pub revalidations: u64,
    /// Copies taken into the tier.
    pub copies: u64,
    /// Invalidations received from other processes.
    pub invalidations: u64,
    /// Times another process made the whole tier be forgotten: the feed's
    /// log no longer reached back to what it missed, or a `clear`.
    pub flushes: u64,
    /// Copies held now.
    pub entries: u64,
    /// Their weight in bytes, as counted against the capacity.
    pub weighted_bytes: u64,
    /// Whether the tier is being kept current right now: on Redis, its
    /// feed of other processes' writes is connected and caught up (copies
    /// taken before it first was are forgotten then); on memcached, always.
    pub live: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) backend_reads: AtomicU64,
    pub(crate) value_reads: AtomicU64,
    pub(crate) revalidations: AtomicU64,
    pub(crate) copies: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) flushes: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, entries: u64, weighted_bytes: u64, live: bool) -> NearStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        NearStats {
            hits: load(&self.hits),
            misses: load(&self.misses),
            backend_reads: load(&self.backend_reads),
            value_reads: load(&self.value_reads),
            revalidations: load(&self.revalidations),
            copies: load(&self.copies),
            invalidations: load(&self.invalidations),
            flushes: load(&self.flushes),
            entries,
            weighted_bytes,
            live,
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
