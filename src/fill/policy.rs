//! Conditional caching: which fill results are stored, and for how long.
//! [`Fill::cache_if`](super::Fill::cache_if) and
//! [`Fill::ttl_with`](super::Fill::ttl_with) build these; most code never
//! names them.

use std::fmt;
use std::time::Duration;

/// Decides, for each value a fill computed, whether it is stored and with
/// which TTL. Implemented by [`StoreAll`] (the default), [`CacheIf`] and
/// [`TtlWith`]; implement it for a policy of your own.
///
/// ```
/// use std::time::Duration;
/// use stampede::typed::{StoreAll, StorePolicy};
///
/// let ttl = Some(Duration::from_secs(60));
/// assert_eq!(StorePolicy::<u32>::store_for(&StoreAll, &7, ttl), Some(ttl));
/// ```
pub trait StorePolicy<T> {
    /// `None`: do not store `value`. `Some(ttl)`: store it with `ttl`
    /// (`None` inside: no expiry), where `ttl` is the [`Fill`](super::Fill)'s
    /// own TTL as this policy receives it.
    fn store_for(&self, value: &T, ttl: Option<Duration>) -> Option<Option<Duration>>;
}

/// Stores every value with the fill's TTL: the default policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreAll;

impl<T> StorePolicy<T> for StoreAll {
    fn store_for(&self, _value: &T, ttl: Option<Duration>) -> Option<Option<Duration>> {
        Some(ttl)
    }
}

/// Stores a value only when a predicate accepts it. Made by
/// [`Fill::cache_if`](super::Fill::cache_if).
#[derive(Clone)]
pub struct CacheIf<P, F> {
    pub(super) inner: P,
    pub(super) keep: F,
}

impl<T, P: StorePolicy<T>, F: Fn(&T) -> bool> StorePolicy<T> for CacheIf<P, F> {
    fn store_for(&self, value: &T, ttl: Option<Duration>) -> Option<Option<Duration>> {
        if (self.keep)(value) {
            self.inner.store_for(value, ttl)
        } else {
            None
        }
    }
}

impl<P: fmt::Debug, F> fmt::Debug for CacheIf<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheIf")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Stores each value with a TTL computed from it. Made by
/// [`Fill::ttl_with`](super::Fill::ttl_with).
#[derive(Clone)]
pub struct TtlWith<P, F> {
    pub(super) inner: P,
    pub(super) ttl: F,
}

impl<T, P: StorePolicy<T>, F: Fn(&T) -> Duration> StorePolicy<T> for TtlWith<P, F> {
    fn store_for(&self, value: &T, _ttl: Option<Duration>) -> Option<Option<Duration>> {
        let ttl = (self.ttl)(value);
        if ttl.is_zero() {
            return None; // expires at once: not worth a round trip
        }
        self.inner.store_for(value, Some(ttl))
    }
}

impl<P: fmt::Debug, F> fmt::Debug for TtlWith<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtlWith")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
