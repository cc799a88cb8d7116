//! The near cache: an in-process tier of copies in front of a shared
//! backend (Redis or memcached), kept coherent by versions, not clocks.
//!
//! - `config`: [`NearCache`], the settings.
//! - `tier`: the table of copies, and why a read never lands a stale one.
//! - `stats`: [`NearStats`].
//! - `backend`: the tier as a [`Backend`] that wraps the store: once a
//!   tier is attached, every call of the cache, the locks and the
//!   stampede guard goes through it, and it keeps this process's copies on
//!   the way.
//!
//! It asks the store for versioned reads and version checks and follows
//! its feed of other processes' writes
//! ([`Coherence`](crate::backend::Coherence)); the store knows nothing of
//! it, and neither do the cache's calls and the guard above it.

pub(crate) mod backend;
mod config;
mod stats;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod tier;

use std::sync::{Arc, Weak};

use bytes::Bytes;

use crate::backend::{Backend, CasToken, ChangeSink, Coherence};
use crate::{Error, Result};
pub use config::{NearCache, DEFAULT_MAX_UNVERIFIED, DEFAULT_NEAR_TRUST, DEFAULT_NEAR_TTL};
use stats::Counters;
pub use stats::NearStats;
pub(crate) use tier::Entry;
use tier::{Found, Mode, Tier};
pub(crate) use tier::{Ticket, Written};

/// A running near tier, shared by every clone of its cache (a clone is
/// the same tier).
#[derive(Clone, Debug)]
pub(crate) struct Near {
    tier: Arc<Tier>,
}

impl Near {
    /// A tier for `backend`, or why it cannot have one.
    pub(crate) fn new<B: Backend>(backend: &B, config: NearCache) -> Result<Near> {
        config.check()?;
        let mode = match backend.coherence() {
            Coherence::Push => Mode::Push,
            Coherence::Revalidate => Mode::Revalidate,
            Coherence::Unsupported(reason) => {
                return Err(Error::NearCacheUnsupported {
                    backend: backend.kind(),
                    reason,
                })
            }
        };
        let near = Near {
            tier: Arc::new(Tier::new(config, mode)),
        };
        if mode == Mode::Push {
            let tier: Arc<dyn ChangeSink> = near.tier.clone();
            let sink: Weak<dyn ChangeSink> = Arc::downgrade(&tier);
            // The origin names this process in the announcements, for
            // diagnostics: its own writes come back like anyone's.
            backend.announce_changes(fastrand::u64(..), sink);
            // Now if there is a runtime (else with the first read): copies
            // taken before the feed listens are flushed when it starts.
            backend.follow_changes();
        }
        Ok(near)
    }

    pub(crate) fn config(&self) -> &NearCache {
        self.tier.config()
    }

    /// A copy of `key` that may be served as it is.
    pub(crate) fn hit(&self, key: &str) -> Option<Bytes> {
        self.hit_entry(key).map(|entry| entry.value.clone())
    }

    /// As [`hit`](Self::hit), the copy itself (for its decoded value).
    pub(crate) fn hit_entry(&self, key: &str) -> Option<Arc<tier::Entry>> {
        match self.tier.lookup(key) {
            Found::Serve(entry) => {
                Counters::bump(&self.tier.counters.hits);
                Some(entry)
            }
            Found::Check(_) | Found::Miss => None,
        }
    }

    /// Taken before this process writes `key`.
    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        self.tier.ticket(key)
    }

    /// This process wrote `key`: its copy becomes what was written, or
    /// goes (`None`: removed, or not known).
    pub(crate) fn wrote(&self, key: &str, ticket: Ticket, written: Option<Written>) {
        self.tier.wrote(key, ticket, written);
    }

    /// This process changed or removed `key` and keeps no copy.
    pub(crate) fn forget(&self, key: &str) {
        let ticket = self.tier.ticket(key);
        self.tier.wrote(key, ticket, None);
    }

    /// Forgets every copy in this process (after a `clear`).
    pub(crate) fn flush(&self) {
        self.tier.flush();
    }

    pub(crate) fn stats(&self) -> NearStats {
        let (entries, bytes) = self.tier.size();
        self.tier
            .counters
            .snapshot(entries, bytes, self.tier.live())
    }
}

impl ChangeSink for Tier {
    fn changed(&self, key: &str, version: Option<CasToken>) {
        self.invalidate(key, version.as_ref());
    }

    fn flush(&self) {
        Tier::flush(self);
        Counters::bump(&self.counters.flushes);
    }

    fn started(&self) {
        Tier::flush(self);
    }

    fn confirmed(&self) {
        self.feed_confirmed();
    }

    fn link(&self, up: bool) {
        self.feed_link(up);
    }
}
