//! The context every algorithm runs in: one backend and the state this
//! process keeps beside it, shared by every clone and namespace of a
//! [`Cache`](crate::Cache).
//!
//! The locks ([`crate::lock`]), the stampede guard ([`crate::fill`]) and
//! the typed updates take a [`Scope`] (this context plus a namespace), never
//! the public handle: `Cache` is a façade over them, so the handle can name
//! the algorithms without the algorithms naming it back.
//!
//! - `wakeups`: per-key wake-ups for callers waiting on a lock or a fill;
//! - `held`: the locks this process holds, for `release_all`;
//! - `flights`: this process's one caller per missing key;
//! - `generations`: namespace generations, where a backend cannot clear a
//!   prefix.

pub(crate) mod flights;
pub(crate) mod generations;
pub(crate) mod held;
pub(crate) mod wakeups;

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use crate::backend::dispatch::{AnyBackend, SharedBackend};
use crate::backend::Backend;
use crate::key::{apply_under, check_key, Namespace};
use crate::near::backend::NearBackend;
use crate::near::Near;
use crate::Result;
use flights::Flights;
use generations::Generations;
use held::HeldLocks;
use wakeups::Wakeups;

/// One backend and this process's state beside it.
pub(crate) struct Ctx {
    /// The store itself.
    store: SharedBackend,
    /// The store behind a near tier, once one is attached: every call goes
    /// there from then on (see [`crate::near::backend`]).
    layered: OnceLock<Layered>,
    /// Callers waiting on someone else's lock record, by record key.
    pub(crate) wakeups: Wakeups,
    /// Callers waiting on someone else's fill lease, by value key.
    pub(crate) fill_wakeups: Wakeups,
    pub(crate) held: HeldLocks,
    pub(crate) flights: Flights,
    /// Namespace generations, for a backend that cannot clear by prefix.
    pub(crate) generations: Option<Generations>,
}

/// The store behind a near tier, and the tier (shared with the backend
/// that wraps the store) for the hit path and the attach API.
struct Layered {
    backend: AnyBackend,
    near: Near,
}

/// A copy this process keeps of a value (a near tier's), with its value
/// decoded once a typed read asked for it.
pub(crate) use crate::near::Entry as Copied;

impl Ctx {
    pub(crate) fn new(backend: AnyBackend) -> Ctx {
        Ctx {
            generations: (!backend.clears_by_prefix()).then(Default::default),
            store: SharedBackend(Arc::new(backend)),
            layered: OnceLock::new(),
            wakeups: Wakeups::default(),
            fill_wakeups: Wakeups::default(),
            held: HeldLocks::default(),
            flights: Flights::default(),
        }
    }

    /// The backend every call goes to: the store, or the store behind its
    /// near tier once one is attached.
    pub(crate) fn backend(&self) -> &AnyBackend {
        match self.layered.get() {
            Some(layered) => &layered.backend,
            None => &self.store.0,
        }
    }

    /// The store without a near tier: for what must not be copied (the
    /// namespace generations) and for attaching one.
    pub(crate) fn store(&self) -> &AnyBackend {
        &self.store.0
    }

    /// Puts `near` in front of the store, unless a tier is there already
    /// (then `false`, and `near` is dropped). Clones of the handle made
    /// before share it: they share this context.
    pub(crate) fn layer(&self, near: Near) -> bool {
        let wrapped = NearBackend::new(self.store.clone(), near.clone());
        let layered = Layered {
            backend: AnyBackend::Near(Box::new(wrapped)),
            near,
        };
        self.layered.set(layered).is_ok()
    }

    pub(crate) fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    pub(crate) fn fill_wakeups(&self) -> &Wakeups {
        &self.fill_wakeups
    }

    pub(crate) fn held_locks(&self) -> &HeldLocks {
        &self.held
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.flights
    }

    /// The near cache, when one is attached.
    pub(crate) fn near(&self) -> Option<&Near> {
        self.layered.get().map(|layered| &layered.near)
    }

    /// A copy of `full_key` this process may serve as it is, found
    /// without a call to the backend or a future (a near tier's copy).
    pub(crate) fn copy(&self, full_key: &str) -> Option<Bytes> {
        self.near()?.hit(full_key)
    }

    /// After this process changed or removed `full_key`: fills under way
    /// here do not land. (A near tier in front of the store has dealt with
    /// its copy in the write itself.)
    pub(crate) fn wrote(&self, full_key: &str) {
        self.flights.invalidate(full_key);
    }

    /// After a namespace was cleared by moving it to a new generation, a
    /// write the tier does not see as a clear: its copies go.
    pub(crate) fn moved_generation(&self) {
        if let Some(near) = self.near() {
            near.flush();
        }
    }
}

/// A context and a namespace: where an algorithm's keys live. Cheap to
/// clone (one `Arc`).
#[derive(Clone)]
pub(crate) struct Scope {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) namespace: Namespace,
    /// The TTL of writes that pass `None`.
    pub(crate) default_ttl: Option<Duration>,
}

impl Deref for Scope {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

impl Scope {
    pub(crate) fn new(backend: AnyBackend) -> Scope {
        Scope {
            ctx: Arc::new(Ctx::new(backend)),
            namespace: Namespace::default(),
            default_ttl: None,
        }
    }

    pub(crate) fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The backend's short name, for errors, spans and metrics.
    pub(crate) fn backend_kind(&self) -> &'static str {
        self.backend().kind()
    }

    /// The prefix this scope's keys are stored under now.
    pub(crate) async fn resolved_prefix(&self) -> Result<Option<Arc<str>>> {
        match &self.generations {
            // Boxed, type-erased: only memcached namespaces get here, and
            // inline this future would enlarge every call's on every backend.
            Some(generations) if !self.namespace.is_root() => {
                let resolving: futures::future::BoxFuture<'_, Result<Arc<str>>> =
                    Box::pin(generations.resolve(self.store(), &self.namespace));
                Ok(Some(resolving.await?))
            }
            _ => Ok(None),
        }
    }

    /// The key the backend sees for `key`: namespaced, and on a backend
    /// that clears namespaces by generation, in the current generation.
    pub(crate) async fn full_key<'k>(&self, key: &'k str) -> Result<Cow<'k, str>> {
        match self.resolved_prefix().await? {
            Some(prefix) => apply_under(&prefix, key),
            None => self.namespace.apply(key),
        }
    }

    /// `ttl`, or this scope's default TTL when it is `None`.
    pub(crate) fn ttl_or_default(&self, ttl: Option<Duration>) -> Option<Duration> {
        ttl.or(self.default_ttl)
    }

    /// The keys as the backend sees them, each checked, in order, in one
    /// buffer: one allocation per batch, and the namespace's prefix
    /// resolved once.
    pub(crate) async fn full_keys<K: AsRef<str>>(&self, keys: &[K]) -> Result<FullKeys> {
        for key in keys {
            check_key(key.as_ref())?;
        }
        let resolved = self.resolved_prefix().await?;
        let prefix = resolved.as_deref().unwrap_or(self.namespace.prefix());
        let size = keys
            .iter()
            .map(|key| prefix.len() + key.as_ref().len())
            .sum();
        let mut full = FullKeys {
            text: String::with_capacity(size),
            ends: Vec::with_capacity(keys.len()),
        };
        for key in keys {
            full.text.push_str(prefix);
            full.text.push_str(key.as_ref());
            full.ends.push(full.text.len());
        }
        Ok(full)
    }

    /// A copy of `key` that may be served, found without the slow path's
    /// span and future (a copy's hit is counted in the near stats only).
    /// `None` also where the key must be resolved asynchronously (a
    /// memcached namespace's generation) or is invalid: the slow path
    /// answers those.
    pub(crate) fn quick_copy(&self, key: &str) -> Option<Bytes> {
        let near = self.near()?;
        if self.generations.is_some() && !self.namespace.is_root() {
            return None;
        }
        near.hit(&self.namespace.apply(key).ok()?)
    }

    /// The copy of `key` this process may serve as it is (for its decoded
    /// value), when a near tier holds one. Without a tier the key is not
    /// even resolved.
    pub(crate) async fn copied(&self, key: &str) -> Result<Option<Arc<Copied>>> {
        let Some(near) = self.near() else {
            return Ok(None);
        };
        Ok(near.hit_entry(&self.full_key(key).await?))
    }
}

/// A batch's keys as the backend sees them, in one buffer.
pub(crate) struct FullKeys {
    text: String,
    ends: Vec<usize>,
}

impl FullKeys {
    /// The keys, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.text[start..end])
    }

    /// The keys as a slice of `&str`, for a backend batch.
    pub(crate) fn to_vec(&self) -> Vec<&str> {
        self.iter().collect()
    }
}
