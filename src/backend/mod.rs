//! The storage contract the locks are written against, and the backends.
//!
//! [`Backend`] is the whole contract: a handful of atomic primitives on bytes.
//! [`RedLock`](crate::RedLock), [`OptimisticLock`](crate::OptimisticLock) and
//! [`Cache`](crate::Cache) are written once, above it; every backend-specific
//! trick (Lua scripts, meta-protocol flags, moka's entry API, pub/sub, polling)
//! lives below it.
//!
//! # The methods at a glance
//!
//! A backend must write ten methods; the rest are provided, built on those,
//! and a backend overrides them where it has a faster or stronger form.
//!
//! | family | required | provided |
//! |---|---|---|
//! | identity | [`kind`](Backend::kind) | |
//! | values and compare-and-set | [`get`](Backend::get) [`set`](Backend::set) [`add`](Backend::add) [`delete`](Backend::delete) [`gets`](Backend::gets) [`cas`](Backend::cas) | [`exists`](Backend::exists) [`touch`](Backend::touch) |
//! | lock records | [`try_lock`](Backend::try_lock) [`lock_record`](Backend::lock_record) [`release`](Backend::release) [`extend`](Backend::extend) | [`lease_life`](Backend::lease_life) |
//! | waking other processes | | [`watch_releases`](Backend::watch_releases) [`watch_fills`](Backend::watch_fills) |
//! | fill leases | | [`read_for_fill`](Backend::read_for_fill) [`peek_for_fill`](Backend::peek_for_fill) [`store_filled`](Backend::store_filled) [`release_fill`](Backend::release_fill) [`mark_stale`](Backend::mark_stale) |
//! | batches | | [`get_many`](Backend::get_many) [`set_many`](Backend::set_many) [`delete_many`](Backend::delete_many) [`read_for_fill_many`](Backend::read_for_fill_many) [`store_filled_many`](Backend::store_filled_many) |
//! | counters | | [`increment`](Backend::increment) |
//! | clearing | | [`clears_by_prefix`](Backend::clears_by_prefix) [`clear`](Backend::clear) |
//! | coherence (a near cache) | | [`coherence`](Backend::coherence) [`announce_changes`](Backend::announce_changes) [`follow_changes`](Backend::follow_changes) [`read_versioned`](Backend::read_versioned) [`read_for_fill_near`](Backend::read_for_fill_near) [`set_versioned`](Backend::set_versioned) [`store_filled_versioned`](Backend::store_filled_versioned) [`revalidate`](Backend::revalidate) |
//!
//! The defaults are correct for any store that has the required methods,
//! except where a method's docs say otherwise (the default fill lease
//! misses a `delete` of a key that was absent when the fill began; the
//! coherence family answers "no near cache"). A backend that wraps another
//! one forwards what it does not change with
//! [`forward_backend!`](crate::forward_backend).
//!
//! | backend | module | feature | URL |
//! |---|---|---|---|
//! | in-process, on moka | [`memory`] | always | `memory://` |
//! | Redis, on deadpool-redis | `redis` | `redis` | `redis://…`, `rediss://…` |
//! | memcached, meta protocol | `memcached` | `memcached` | `memcached://…` |
//!
//! Keys reaching a backend are final: the namespace is already applied and
//! they are never empty. TTLs and leases are never zero.

pub use coherence::{ChangeSink, Coherence, NoSink, Revalidated, Versioned};
pub use contract::Backend;
#[cfg(feature = "redis")]
pub(crate) use defaults::random_lease_id;
pub(crate) use defaults::{add_to_counter, parse_counter};
pub use types::{
    CasToken, Fencing, FillLease, FillRead, FilledValue, LeaseToken, LockAttempt, LockRecord,
    ReleaseWatch,
};

pub(crate) mod coherence;
mod contract;
mod defaults;
pub(crate) mod dispatch;
mod forward;
#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub mod memcached;
pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod types;
