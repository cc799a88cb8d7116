//! The near cache: an in-process tier of copies in front of a shared
//! backend (Redis or memcached), kept coherent by versions, not clocks.
//!
//! - `config`: [`NearCache`], the settings.
//! - `tier`: the table of copies, and why a read never lands a stale one.
//! - `stats`: [`NearStats`].
//!
//! This module sits between the [`Cache`](crate::Cache) handle and the
//! backends: it asks the backend for versioned reads and version checks
//! and follows its feed of other processes' writes
//! ([`Coherence`](crate::backend::Coherence)); the backend knows nothing
//! of it.

mod config;
mod stats;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod tier;

use std::sync::{Arc, Weak};

use bytes::Bytes;

use crate::backend::dispatch::AnyBackend;
use crate::backend::{Backend, CasToken, ChangeSink, Coherence, Revalidated};
use crate::{Error, Result};
pub use config::{NearCache, DEFAULT_MAX_UNVERIFIED, DEFAULT_NEAR_TRUST, DEFAULT_NEAR_TTL};
use stats::Counters;
pub use stats::NearStats;
use tier::{Found, Mode, Tier};
pub(crate) use tier::{Ticket, Written};

/// A running near tier, shared by every clone of its cache.
#[derive(Debug)]
pub(crate) struct Near {
    tier: Arc<Tier>,
}

impl Near {
    /// A tier for `backend`, or why it cannot have one.
    pub(crate) fn new(backend: &AnyBackend, config: NearCache) -> Result<Near> {
        config.check()?;
        let mode = match backend.coherence() {
            Coherence::Push => Mode::Push,
            Coherence::Revalidate => Mode::Revalidate,
            Coherence::Unsupported(reason) => {
                return Err(Error::NearCacheUnsupported {
                    backend: crate::backend::Backend::kind(backend),
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

    /// Reads `key` through the tier: a copy if one may be served, else
    /// from the backend (checking a copy past its trust window by version
    /// first), keeping a copy of what was read.
    pub(crate) async fn get(&self, backend: &AnyBackend, key: &str) -> Result<Option<Bytes>> {
        let entry = match self.tier.lookup(key) {
            Found::Serve(entry) => {
                Counters::bump(&self.tier.counters.hits);
                return Ok(Some(entry.value.clone()));
            }
            Found::Check(entry) => Some(entry),
            Found::Miss => None,
        };
        Counters::bump(&self.tier.counters.misses);
        if let Some(entry) = entry {
            if let Some(version) = &entry.version {
                let ticket = self.tier.ticket(key);
                Counters::bump(&self.tier.counters.revalidations);
                if let Revalidated::Same(ttl) = backend.revalidate(key, version).await? {
                    // Still the stored write: a fresh copy, with the TTL
                    // the server has now (unless invalidated meanwhile).
                    let value = entry.value.clone();
                    self.tier
                        .offer(key, ticket, value.clone(), version.clone(), ttl);
                    return Ok(Some(value));
                }
            }
            // Of an older write, or of this process's own (whose version is
            // not known): it goes, or it would be checked again on every
            // read while the key holds nothing to copy (a stale value, a
            // delete).
            self.forget(key);
        }
        self.read(backend, key).await
    }

    /// Reads `keys` through the tier: copies where they may be served, the
    /// rest in one batch from the backend (of which no copies are kept: a
    /// batch read carries no versions).
    pub(crate) async fn get_many(
        &self,
        backend: &AnyBackend,
        keys: &[&str],
    ) -> Result<Vec<Option<Bytes>>> {
        let mut values: Vec<Option<Bytes>> = keys.iter().map(|key| self.hit(key)).collect();
        let missing: Vec<&str> = keys
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| *key)
            .collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let mut read = crate::backend::Backend::get_many(backend, &missing)
            .await?
            .into_iter();
        for value in values.iter_mut().filter(|value| value.is_none()) {
            *value = read.next().flatten();
        }
        Ok(values)
    }

    /// The fill's read of `key` (taking the fill lease when the key needs
    /// filling), keeping a copy of a fresh value it finds.
    pub(crate) async fn lease_read(
        &self,
        backend: &AnyBackend,
        key: &str,
        lease: std::time::Duration,
    ) -> Result<crate::backend::FillRead> {
        backend.follow_changes();
        let ticket = self.tier.ticket(key);
        Counters::bump(&self.tier.counters.backend_reads);
        let (read, copy) = backend.read_for_fill_near(key, lease).await?;
        if read.value.is_some() {
            Counters::bump(&self.tier.counters.value_reads);
        }
        if let (Some(ttl), Some((value, token))) = (copy, &read.value) {
            self.tier
                .offer(key, ticket, value.clone(), token.clone(), ttl);
        }
        Ok(read)
    }

    /// Reads `key` from the backend and keeps a copy.
    pub(crate) async fn read(&self, backend: &AnyBackend, key: &str) -> Result<Option<Bytes>> {
        backend.follow_changes();
        let ticket = self.tier.ticket(key);
        Counters::bump(&self.tier.counters.backend_reads);
        let Some(read) = backend.read_versioned(key).await? else {
            return Ok(None);
        };
        Counters::bump(&self.tier.counters.value_reads);
        if let Some(version) = read.version {
            self.tier
                .offer(key, ticket, read.value.clone(), version, read.ttl);
        }
        Ok(Some(read.value))
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
