//! The in-process table of a near cache: copies of values by key, each with
//! the version of the write it came from, bounded by bytes, and the
//! per-key generations that keep a read's copy from landing after an
//! invalidation of that key.
//!
//! # Why a read cannot land a stale copy
//!
//! A read takes a [`Ticket`] (its key's generation, and the flush count)
//! *before* it asks the backend, and [`offer`](Tier::offer)s what it read
//! with that ticket. Every invalidation of the key raises the key's
//! generation and every flush raises the flush count. The offer compares
//! the ticket under moka's per-key compute, which invalidations of the key
//! also run under, so the two are ordered: either the invalidation came
//! first (the generation moved, the offer is dropped) or the offer did
//! (the invalidation then removes the copy). A flush cannot take every
//! key's compute, so a copy also remembers the flush count it was admitted
//! under, and a copy from before the last flush is never served.
//!
//! One exception keeps copies that are current: when exactly one
//! invalidation came in since the ticket and it announced the very version
//! the read found (the read saw the write whose announcement overtook it),
//! the copy is kept. Each stripe remembers the version its last raise
//! announced for this.
//!
//! Generations live in 4,096 stripes shared by the keys that hash to
//! them: fixed memory, no tombstones to bound, and a raise for one key
//! only ever costs its stripe-mates a copy (their offer under way is
//! dropped), never a stale one.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::ops::compute::Op;
use moka::sync::Cache as Table;

use super::config::NearCache;
use super::stats::Counters;
use crate::backend::CasToken;

const STRIPES: usize = 4096;
/// What a copy costs beyond its key and value: the entry, moka's node and
/// its bookkeeping, roughly.
const ENTRY_OVERHEAD: u32 = 160;

/// One copy.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Bytes,
    /// The write it came from; `None` for this process's own write, whose
    /// version the backend did not report.
    pub(crate) version: Option<CasToken>,
    /// How long the tier keeps it: the shorter of the tier's TTL and the
    /// backend's, as seen at the read.
    life: Duration,
    /// The flush count it was admitted under.
    flushes: u64,
    /// When it was last known to be current (ms since the tier's start).
    verified_ms: AtomicU64,
    /// The value decoded, once a typed read asked for it: later typed hits
    /// share it instead of decoding again.
    pub(crate) decoded: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

/// What this process wrote, for its copy.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) value: Bytes,
    pub(crate) ttl: Option<Duration>,
    /// The write's version; `None` when the backend did not report it
    /// (the copy then goes at the write's announcement).
    pub(crate) version: Option<CasToken>,
}

/// A read's claim to offer what it reads: taken before the read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    stripe: usize,
    generation: u64,
    flushes: u64,
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Found {
    /// A copy that may be served as it is.
    Serve(Arc<Entry>),
    /// A copy that must be checked against the backend first.
    Check(Arc<Entry>),
    /// Nothing usable.
    Miss,
}

/// How a copy is known to be current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// By the backend's feed: serve while the feed is healthy, and for
    /// `max_unverified` after it last was.
    Push,
    /// By asking: serve for `trust` after the last check.
    Revalidate,
}

pub(crate) struct Tier {
    table: Table<String, Arc<Entry>, foldhash::fast::RandomState>,
    generations: Box<[AtomicU64]>,
    /// Per stripe, the version the last raise announced (0: a removal, or
    /// not known): see [`offer`](Tier::offer).
    announced: Box<[AtomicU64]>,
    /// Hashes keys to their generation's stripe.
    stripes: foldhash::fast::RandomState,
    flushes: AtomicU64,
    mode: Mode,
    config: NearCache,
    started: Instant,
    /// The feed is up and caught up ([`Mode::Push`]).
    feed_up: AtomicBool,
    /// When the feed last confirmed it was caught up (ms since start).
    confirmed_ms: AtomicU64,
    pub(crate) counters: Counters,
}

impl Tier {
    pub(crate) fn new(config: NearCache, mode: Mode) -> Tier {
        let table = Table::builder()
            .max_capacity(config.capacity)
            .weigher(|key: &String, entry: &Arc<Entry>| {
                let bytes = key.len().saturating_add(entry.value.len());
                u32::try_from(bytes)
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .expire_after(Life)
            .build_with_hasher(foldhash::fast::RandomState::default());
        Tier {
            table,
            generations: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            announced: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            stripes: foldhash::fast::RandomState::default(),
            flushes: AtomicU64::new(0),
            mode,
            config,
            started: Instant::now(),
            feed_up: AtomicBool::new(false),
            confirmed_ms: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    pub(crate) fn config(&self) -> &NearCache {
        &self.config
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn stripe(&self, key: &str) -> usize {
        (self.stripes.hash_one(key) as usize) % STRIPES
    }

    /// The copy of `key`, judged by the tier's mode.
    pub(crate) fn lookup(&self, key: &str) -> Found {
        let Some(entry) = self.table.get(key) else {
            return Found::Miss;
        };
        if entry.flushes != self.flushes.load(Ordering::Acquire) {
            return Found::Miss;
        }
        match self.mode {
            Mode::Push if self.feed_up.load(Ordering::Acquire) => Found::Serve(entry),
            Mode::Push => {
                let verified = entry
                    .verified_ms
                    .load(Ordering::Relaxed)
                    .max(self.confirmed_ms.load(Ordering::Acquire));
                if self.now_ms().saturating_sub(verified) <= millis(self.config.max_unverified) {
                    Found::Serve(entry)
                } else {
                    Found::Miss
                }
            }
            Mode::Revalidate => {
                let verified = entry.verified_ms.load(Ordering::Relaxed);
                if self.now_ms().saturating_sub(verified) <= millis(self.config.trust) {
                    Found::Serve(entry)
                } else {
                    Found::Check(entry)
                }
            }
        }
    }

    /// Taken before reading `key` from the backend.
    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        let stripe = self.stripe(key);
        Ticket {
            stripe,
            // The flush count first: a flush raises it before it clears.
            flushes: self.flushes.load(Ordering::Acquire),
            generation: self.generations[stripe].load(Ordering::Acquire),
        }
    }

    fn current(&self, ticket: &Ticket) -> bool {
        self.generations[ticket.stripe].load(Ordering::Acquire) == ticket.generation
            && self.flushes.load(Ordering::Acquire) == ticket.flushes
    }

    /// Whether a read that took `ticket` and found `version` may keep its
    /// copy: nothing raised the stripe since, or exactly one raise did and
    /// it announced that very version (the write the read found, whose
    /// announcement came in while the read was on its way back).
    fn may_keep(&self, ticket: &Ticket, version: &CasToken) -> bool {
        let generation = self.generations[ticket.stripe].load(Ordering::Acquire);
        if self.flushes.load(Ordering::Acquire) != ticket.flushes {
            return false;
        }
        if generation == ticket.generation {
            return true;
        }
        // Called under the key's compute, which the key's invalidations also
        // take: a raise for this key is complete, and a raise for a
        // stripe-mate stores its own version before it raises.
        let announced = self.announced[ticket.stripe].load(Ordering::Acquire);
        generation == ticket.generation.wrapping_add(1)
            && announced != 0
            && version.version() == Some(announced)
    }

    /// Raises `stripe`, recording what the raise announced.
    fn raise(&self, stripe: usize, announced: Option<&CasToken>) {
        let announced = announced.and_then(CasToken::version).unwrap_or(0);
        self.announced[stripe].store(announced, Ordering::Release);
        self.generations[stripe].fetch_add(1, Ordering::AcqRel);
    }

    fn entry(
        &self,
        value: Bytes,
        version: Option<CasToken>,
        ttl: Option<Duration>,
        ticket: &Ticket,
    ) -> Arc<Entry> {
        let life = ttl.map_or(self.config.ttl, |ttl| ttl.min(self.config.ttl));
        Arc::new(Entry {
            value,
            version,
            life,
            flushes: ticket.flushes,
            verified_ms: AtomicU64::new(self.now_ms()),
            decoded: std::sync::OnceLock::new(),
        })
    }

    /// Keeps a copy of what a read that took `ticket` found, unless `key`
    /// was invalidated (or the tier flushed) since. `true` when kept.
    pub(crate) fn offer(
        &self,
        key: &str,
        ticket: Ticket,
        value: Bytes,
        version: CasToken,
        ttl: Option<Duration>,
    ) -> bool {
        if ttl.is_some_and(|ttl| ttl.is_zero()) {
            return false;
        }
        let keep = |version: &CasToken| self.may_keep(&ticket, version);
        let kept_version = version.clone();
        let entry = self.entry(value, Some(version), ttl, &ticket);
        let outcome = self.table.entry_by_ref(key).and_compute_with(|_| {
            if keep(&kept_version) {
                Op::Put(entry)
            } else {
                Op::Nop
            }
        });
        let kept = !matches!(
            outcome,
            moka::ops::compute::CompResult::StillNone(_)
                | moka::ops::compute::CompResult::Unchanged(_)
        );
        if kept {
            self.counters.copies.fetch_add(1, Ordering::Relaxed);
        }
        kept
    }

    /// This process wrote `key` (it took `ticket` before the write): the
    /// copy becomes `written` (value, TTL, and the write's version where
    /// the backend reported it) or goes. Invalidates reads under way
    /// either way.
    pub(crate) fn wrote(&self, key: &str, ticket: Ticket, written: Option<Written>) {
        self.table.entry_by_ref(key).and_compute_with(|current| {
            // Unchanged since the ticket, or changed only by this very
            // write's announcement (which may overtake the call's return).
            let unchanged = match written
                .as_ref()
                .and_then(|written| written.version.as_ref())
            {
                Some(version) => self.may_keep(&ticket, version),
                None => self.current(&ticket),
            };
            self.raise(ticket.stripe, None);
            match written {
                // A change from elsewhere since the ticket may be newer than
                // this write: keep nothing then.
                Some(written) if unchanged && !written.ttl.is_some_and(|ttl| ttl.is_zero()) => {
                    Op::Put(self.entry(written.value, written.version, written.ttl, &ticket))
                }
                _ if current.is_some() => Op::Remove,
                _ => Op::Nop,
            }
        });
    }

    /// Another process changed `key` to `version` (`None`: removed or
    /// unknown). The copy stays only if it is of that very write.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn invalidate(&self, key: &str, version: Option<&CasToken>) {
        let stripe = self.stripe(key);
        self.table.entry_by_ref(key).and_compute_with(|current| {
            // Raised even when the copy stays: a read under way may have
            // read the write before this one.
            self.raise(stripe, version);
            match current {
                Some(entry) if version.is_some() && entry.value().version.as_ref() == version => {
                    Op::Nop
                }
                Some(_) => Op::Remove,
                None => Op::Nop,
            }
        });
        self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets every copy.
    pub(crate) fn flush(&self) {
        self.flushes.fetch_add(1, Ordering::AcqRel);
        self.table.invalidate_all();
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn feed_confirmed(&self) {
        self.confirmed_ms.store(self.now_ms(), Ordering::Release);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn feed_link(&self, up: bool) {
        if up {
            self.feed_confirmed();
        }
        self.feed_up.store(up, Ordering::Release);
    }

    /// Copies held now, and their weight in bytes (after pending
    /// evictions are applied).
    /// Whether copies are being kept current: the feed is up (push), or
    /// always (revalidate).
    pub(crate) fn live(&self) -> bool {
        self.mode == Mode::Revalidate || self.feed_up.load(Ordering::Acquire)
    }

    pub(crate) fn size(&self) -> (u64, u64) {
        self.table.run_pending_tasks();
        (self.table.entry_count(), self.table.weighted_size())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Each copy lives as long as its entry says.
struct Life;

impl moka::Expiry<String, Arc<Entry>> for Life {
    fn expire_after_create(&self, _: &String, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(entry.life)
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.life)
    }
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("mode", &self.mode)
            .field("copies", &self.table.entry_count())
            .field("feed_up", &self.feed_up.load(Ordering::Relaxed))
            .finish()
    }
}
