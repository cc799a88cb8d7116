//! [`Fill`]: the options of `get_or_fill`, and how a read value is judged.

use std::time::Duration;

use super::policy::{CacheIf, StoreAll, TtlWith};
use crate::codec::frame::Meta;
use crate::key::{check_lease, check_ttl};
use crate::{Error, Result};

/// The lease of a fill unless [`Fill::lease`] says otherwise.
pub const DEFAULT_FILL_LEASE: Duration = Duration::from_secs(10);

/// How [`get_or_fill`](crate::Cache::get_or_fill) stores and refreshes a
/// value: its TTL, the lease of a fill, and optional early refresh.
///
/// ```
/// use std::time::Duration;
/// use stampede::typed::Fill;
///
/// let fill = Fill::ttl(Duration::from_secs(300))
///     .lease(Duration::from_secs(10))            // the longest anyone waits for a fill
///     .early_refresh(1.0)                          // XFetch: refresh hot keys before they expire
///     .stale_while_revalidate(Duration::from_secs(30)); // serve the old value while one caller refreshes
/// # let _ = fill;
/// ```
///
/// **Conditional caching.** [`cache_if`](Fill::cache_if) stores only the
/// values a predicate accepts, and [`ttl_with`](Fill::ttl_with) computes
/// each value's TTL from it. The predicate's type is part of the `Fill`
/// (`Fill<P>`), so a predicate for the wrong value type is a compile error.
///
/// ```
/// use std::time::Duration;
/// use stampede::typed::Fill;
///
/// // Don't cache empty results; keep big ones longer.
/// let fill = Fill::ttl(Duration::from_secs(60))
///     .cache_if(|users: &Vec<String>| !users.is_empty())
///     .ttl_with(|users: &Vec<String>| Duration::from_secs(60 * users.len().min(10) as u64));
/// # let _ = fill;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Fill<P = StoreAll> {
    pub(super) ttl: Option<Duration>,
    pub(super) lease: Duration,
    pub(super) early_refresh: Option<f64>,
    pub(super) stale_for: Option<Duration>,
    /// Set by `ttl_with`: values get a TTL even when `ttl` is `None`.
    pub(super) computes_ttl: bool,
    pub(super) policy: P,
}

impl Fill {
    /// Values stay fresh for `ttl` after each fill.
    pub fn ttl(ttl: Duration) -> Fill {
        Fill {
            ttl: Some(ttl),
            lease: DEFAULT_FILL_LEASE,
            early_refresh: None,
            stale_for: None,
            computes_ttl: false,
            policy: StoreAll,
        }
    }

    /// Values never expire (the backend may still evict them).
    pub fn forever() -> Fill {
        Fill {
            ttl: None,
            ..Fill::ttl(Duration::ZERO)
        }
    }
}

impl<P> Fill<P> {
    /// Stores a fill's value only when `keep` returns `true` for it; the
    /// caller gets the value either way. A value not stored is not shared:
    /// callers in this process waiting on the fill get it too, but the next
    /// caller after them (and other processes' waiters) fills again.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    /// use stampede::Fill;
    ///
    /// let cache = stampede::Cache::memory();
    /// let fill = Fill::ttl(Duration::from_secs(60)).cache_if(|hits: &Vec<u32>| !hits.is_empty());
    /// let hits: Vec<u32> = cache.get_or_fill("search:zzz", fill, || async { Ok::<_, stampede::Error>(vec![]) }).await?;
    /// assert!(hits.is_empty());
    /// assert!(!cache.exists("search:zzz").await?); // the empty result was not stored
    /// # Ok(())
    /// # }
    /// ```
    pub fn cache_if<T, F>(self, keep: F) -> Fill<CacheIf<P, F>>
    where
        F: Fn(&T) -> bool,
    {
        let policy = CacheIf {
            inner: self.policy,
            keep,
        };
        Fill {
            ttl: self.ttl,
            lease: self.lease,
            early_refresh: self.early_refresh,
            stale_for: self.stale_for,
            computes_ttl: self.computes_ttl,
            policy,
        }
    }

    /// Stores each value with the TTL `ttl` computes from it, in place of
    /// [`Fill::ttl`]'s (which then only applies to nothing; use
    /// [`Fill::forever`] as the base if you like). A zero TTL means "do not
    /// store". Early refresh and stale-while-revalidate work from the
    /// computed TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stampede::Fill;
    ///
    /// // Hot prices for a minute, cold ones for an hour.
    /// let fill = Fill::forever().ttl_with(|price: &(u64, bool)| {
    ///     Duration::from_secs(if price.1 { 60 } else { 3600 })
    /// });
    /// # let _ = fill;
    /// ```
    pub fn ttl_with<T, F>(self, ttl: F) -> Fill<TtlWith<P, F>>
    where
        F: Fn(&T) -> Duration,
    {
        let policy = TtlWith {
            inner: self.policy,
            ttl,
        };
        Fill {
            ttl: self.ttl,
            lease: self.lease,
            early_refresh: self.early_refresh,
            stale_for: self.stale_for,
            computes_ttl: true,
            policy,
        }
    }

    /// The fill lease: how long the filler has before another caller may
    /// start a second fill. A fill that takes longer does not store its
    /// value (the next lease holder's fill may have read newer data), and
    /// callers waiting on someone else's lease give up after twice the
    /// lease. Make it longer than a fill takes. Default: [`DEFAULT_FILL_LEASE`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Recomputes values early with the XFetch rule (Vattani, Chierichetti
    /// and Lowenstein, VLDB 2015): a reader refreshes when
    /// `now + fill_time × beta × −ln(rand()) ≥ expiry`, where `fill_time` is
    /// how long the last fill took (stored with the value). Refreshes become
    /// likelier as expiry nears and as fills get slower, so one reader
    /// refreshes a hot key before it expires and nobody sees it missing.
    /// `beta = 1.0` is the paper's choice; larger refreshes earlier.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = Some(beta);
        self
    }

    /// Keeps values for `window` after they go stale, and serves them while
    /// one caller refreshes: readers of a stale value return at once; the
    /// first to take the key's fill lock refreshes. Values marked stale by
    /// [`Cache::mark_stale`](crate::Cache::mark_stale) are served the same
    /// way while one caller refreshes under the fill lease.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_for = Some(window);
        self
    }

    pub(super) fn check(&self) -> Result<()> {
        check_ttl(self.ttl)?;
        check_lease(self.lease)?;
        if let Some(beta) = self.early_refresh {
            if !(beta.is_finite() && beta > 0.0) {
                return Err(Error::InvalidArgument {
                    name: "early_refresh beta",
                    reason: "beta must be a finite number above zero (1.0 is the usual choice)",
                });
            }
        }
        let refreshes = self.early_refresh.is_some() || self.stale_for.is_some();
        if refreshes && self.ttl.is_none() && !self.computes_ttl {
            return Err(Error::InvalidArgument {
                name: "fill",
                reason: "early refresh and stale-while-revalidate need a TTL (Fill::ttl)",
            });
        }
        if self.stale_for.is_some_and(|window| window.is_zero()) {
            return Err(Error::InvalidArgument {
                name: "stale_while_revalidate window",
                reason: "the window must be longer than zero",
            });
        }
        Ok(())
    }

    /// How long the backend keeps a value fresh for `ttl`: that plus the
    /// stale window.
    pub(super) fn storage_ttl(&self, ttl: Option<Duration>) -> Option<Duration> {
        ttl.map(|ttl| ttl.saturating_add(self.stale_for.unwrap_or(Duration::ZERO)))
    }

    /// What a reader should do with a value carrying `meta`.
    pub(super) fn judge(&self, meta: Option<Meta>, now_ms: u64) -> Verdict {
        let Some(left_ms) = meta.and_then(|meta| meta.fresh_for_ms(now_ms)) else {
            return Verdict::Fresh; // no expiry, or not written by get_or_fill
        };
        if left_ms == 0 {
            return match self.stale_for {
                Some(_) => Verdict::Refresh, // still stored, so within the window
                None => Verdict::Missing,
            };
        }
        if let (Some(beta), Some(meta)) = (self.early_refresh, meta) {
            let draw = 1.0 - fastrand::f64(); // (0, 1]: ln is finite
            let head_start_ms = meta.fill_time.as_secs_f64() * 1_000.0 * beta * -draw.ln();
            if head_start_ms >= left_ms as f64 {
                return Verdict::Refresh;
            }
        }
        Verdict::Fresh
    }
}

/// What to do with a value that was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Return it.
    Fresh,
    /// Return it unless we can take the fill lock without waiting, then refresh.
    Refresh,
    /// Treat as a miss.
    Missing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(left_ms: u64, fill_ms: u64, now_ms: u64) -> Option<Meta> {
        Some(Meta {
            fresh_until_ms: Some(now_ms + left_ms),
            fill_time: Duration::from_millis(fill_ms),
        })
    }

    #[test]
    fn xfetch_refreshes_more_often_as_expiry_nears() {
        let fill = Fill::ttl(Duration::from_secs(60)).early_refresh(1.0);
        let now = 1_000_000;
        let rate = |left_ms| {
            (0..20_000)
                .filter(|_| fill.judge(meta(left_ms, 100, now), now) == Verdict::Refresh)
                .count() as f64
                / 20_000.0
        };
        // P(refresh) = exp(-left / (fill_time * beta)).
        let (far, mid, near) = (rate(1_000), rate(100), rate(10));
        assert!(far < 0.01, "{far}");
        assert!((mid - (-1.0f64).exp()).abs() < 0.03, "{mid}");
        assert!(near > 0.85, "{near}");
    }

    #[test]
    fn stale_values_refresh_only_within_the_window() {
        let now = 1_000_000;
        let expired = Some(Meta {
            fresh_until_ms: Some(now - 1),
            fill_time: Duration::ZERO,
        });
        let plain = Fill::ttl(Duration::from_secs(1));
        assert_eq!(plain.judge(expired, now), Verdict::Missing);
        let swr = plain.clone().stale_while_revalidate(Duration::from_secs(5));
        assert_eq!(swr.judge(expired, now), Verdict::Refresh);
        assert_eq!(
            plain.judge(None, now),
            Verdict::Fresh,
            "foreign values follow the backend TTL"
        );
        assert_eq!(
            plain.judge(meta(500, 100, now), now),
            Verdict::Fresh,
            "no early refresh unless asked"
        );
    }

    #[test]
    fn bad_fill_options_are_refused() {
        let ttl = Duration::from_secs(1);
        assert!(Fill::ttl(Duration::ZERO).check().is_err());
        assert!(Fill::ttl(ttl).lease(Duration::ZERO).check().is_err());
        assert!(Fill::ttl(ttl).early_refresh(0.0).check().is_err());
        assert!(Fill::ttl(ttl).early_refresh(f64::NAN).check().is_err());
        assert!(Fill::forever().early_refresh(1.0).check().is_err());
        assert!(Fill::forever().stale_while_revalidate(ttl).check().is_err());
        assert!(Fill::ttl(ttl)
            .stale_while_revalidate(Duration::ZERO)
            .check()
            .is_err());
        assert!(Fill::forever().check().is_ok());
    }
}
