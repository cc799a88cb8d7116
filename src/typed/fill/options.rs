//! [`Fill`] and the body of `get_or_fill`.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::flight::{Joined, Leader};
use super::frame::{now_unix_ms, Meta};
use super::{decode, encode, Codec};
use crate::key::{check_lease, check_ttl};
use crate::{Cache, Error, LockGuard, RedLock, Result};

/// The lease of a fill unless [`Fill::lease`] says otherwise.
pub const DEFAULT_FILL_LEASE: Duration = Duration::from_secs(10);

/// How [`get_or_fill`](crate::Cache::get_or_fill) stores and refreshes a
/// value: its TTL, the lease of the fill lock, and optional early refresh.
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
#[derive(Clone, Debug)]
#[must_use]
pub struct Fill {
    ttl: Option<Duration>,
    lease: Duration,
    early_refresh: Option<f64>,
    stale_for: Option<Duration>,
}

impl Fill {
    /// Values stay fresh for `ttl` after each fill.
    pub fn ttl(ttl: Duration) -> Fill {
        Fill {
            ttl: Some(ttl),
            lease: DEFAULT_FILL_LEASE,
            early_refresh: None,
            stale_for: None,
        }
    }

    /// Values never expire (the backend may still evict them).
    pub fn forever() -> Fill {
        Fill {
            ttl: None,
            ..Fill::ttl(Duration::ZERO)
        }
    }

    /// The lease of the fill lock: how long the filler has before another
    /// caller may start a second fill, and so the longest any caller waits
    /// for someone else's fill. Make it longer than a fill takes.
    /// Default: [`DEFAULT_FILL_LEASE`].
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
    /// first to take the fill lock refreshes.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_for = Some(window);
        self
    }

    fn check(&self) -> Result<()> {
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
        if refreshes && self.ttl.is_none() {
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

    /// How long the backend keeps a value: fresh time plus the stale window.
    fn storage_ttl(&self) -> Option<Duration> {
        self.ttl
            .map(|ttl| ttl + self.stale_for.unwrap_or(Duration::ZERO))
    }

    /// What a reader should do with a value carrying `meta`.
    fn judge(&self, meta: Option<Meta>, now_ms: u64) -> Verdict {
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
enum Verdict {
    /// Return it.
    Fresh,
    /// Return it unless we can take the fill lock without waiting, then refresh.
    Refresh,
    /// Treat as a miss.
    Missing,
}

pub(super) async fn get_or_fill<C, T, E, F, Fut>(
    cache: &Cache,
    codec: &C,
    key: &str,
    fill: &Fill,
    f: F,
) -> Result<T, E>
where
    C: Codec,
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    fill.check()?;
    let flight_key = cache.namespace().apply(key)?;
    let flights = cache.flights();
    loop {
        // A fill for this key is under way in this process: wait for it
        // without touching the backend.
        if let Some(follower) = flights.in_progress(&flight_key) {
            match follower.landed().await {
                Some(bytes) => return Ok(decode(codec, key, &bytes)?.1),
                None => continue, // it failed or was cancelled: try again
            }
        }
        if let Some(read) = read::<C, T>(cache, codec, key, fill).await? {
            match read.verdict {
                Verdict::Fresh => return Ok(read.value),
                Verdict::Refresh => {
                    // One caller refreshes; everyone else keeps what they read.
                    let seen = Some(read.fresh_until_ms());
                    let lock = RedLock::new(cache, key, fill.lease);
                    return match lock.try_acquire().await? {
                        Some(guard) => {
                            fill_holding(cache, codec, key, fill, guard, seen, None, f).await
                        }
                        None => Ok(read.value),
                    };
                }
                Verdict::Missing => {}
            }
        }
        match flights.join(&flight_key) {
            Joined::Follow(follower) => match follower.landed().await {
                Some(bytes) => return Ok(decode(codec, key, &bytes)?.1),
                None => continue,
            },
            Joined::Lead(leader) => return lead(cache, codec, key, fill, &leader, f).await,
        }
    }
}

/// This process's one caller for a missing key: takes the cross-process
/// guard, then fills, or reads what another process filled, and lands the
/// bytes for its followers.
async fn lead<C, T, E, F, Fut>(
    cache: &Cache,
    codec: &C,
    key: &str,
    fill: &Fill,
    leader: &Leader<'_>,
    f: F,
) -> Result<T, E>
where
    C: Codec,
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let lock = RedLock::new(cache, key, fill.lease);
    loop {
        let guard = lock.acquire().await?;
        if guard.holds_lock() {
            return fill_holding(cache, codec, key, fill, guard, None, Some(leader), f).await;
        }
        // We waited for someone's fill. Read it; if it is still missing (the
        // fill failed, or its lease ran out), take the lock in turn.
        if let Some(read) = read::<C, T>(cache, codec, key, fill).await? {
            if read.verdict != Verdict::Missing {
                leader.land(read.bytes);
                return Ok(read.value);
            }
        }
        tracing::debug!(
            key,
            "still missing after waiting; taking the fill lock in turn"
        );
    }
}

/// A value as read, with what to do about it.
struct Read<T> {
    verdict: Verdict,
    meta: Option<Meta>,
    value: T,
    /// As stored, for a flight's followers to decode.
    bytes: Bytes,
}

impl<T> Read<T> {
    /// When the value goes stale; 0 for values without a frame.
    fn fresh_until_ms(&self) -> u64 {
        self.meta.and_then(|meta| meta.fresh_until_ms).unwrap_or(0)
    }
}

/// Reads the value and judges it.
async fn read<C: Codec, T: DeserializeOwned>(
    cache: &Cache,
    codec: &C,
    key: &str,
    fill: &Fill,
) -> Result<Option<Read<T>>> {
    let Some(bytes) = cache.get(key).await? else {
        return Ok(None);
    };
    let (meta, value) = decode(codec, key, &bytes)?;
    let verdict = fill.judge(meta, now_unix_ms());
    Ok(Some(Read {
        verdict,
        meta,
        value,
        bytes,
    }))
}

/// Holding the fill lock: re-check, fill, store, land, release. `seen` is
/// the freshness of the value a refresh is replacing (`None` on a miss);
/// `leader` is the flight whose followers wait for the result, if any.
#[allow(clippy::too_many_arguments)]
async fn fill_holding<C, T, E, F, Fut>(
    cache: &Cache,
    codec: &C,
    key: &str,
    fill: &Fill,
    guard: LockGuard,
    seen: Option<u64>,
    leader: Option<&Leader<'_>>,
    f: F,
) -> Result<T, E>
where
    C: Codec,
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // Someone may have filled between our read and our lock. (Not a second
    // XFetch draw: a refresh we already won is skipped only if someone else
    // did it first.)
    if let Some(read) = read::<C, T>(cache, codec, key, fill).await? {
        let newer = seen.is_none_or(|seen| read.fresh_until_ms() > seen);
        if read.verdict != Verdict::Missing && newer {
            if let Some(leader) = leader {
                leader.land(read.bytes);
            }
            release(&guard, key).await;
            return Ok(read.value);
        }
    }
    let started = Instant::now();
    let outcome = f().await;
    if let Ok(value) = &outcome {
        let meta = Meta::fresh_for(fill.ttl, started.elapsed());
        let bytes = Bytes::from(encode(codec, key, value, meta)?);
        cache.set(key, &bytes, fill.storage_ttl()).await?;
        tracing::debug!(key, fill_time = ?meta.fill_time, "filled");
        // Stored: this process's followers can have it before the release.
        if let Some(leader) = leader {
            leader.land(bytes);
        }
    } else {
        tracing::debug!(key, "fill failed; releasing so that a waiter takes over");
    }
    // Waiters wake now: to the value, or to take over a failed fill.
    release(&guard, key).await;
    outcome
}

/// Releases the fill lock; a failure only delays waiters until the lease
/// runs out (the guard's drop retries), so it is logged, not returned.
async fn release(guard: &LockGuard, key: &str) {
    if let Err(error) = guard.release().await {
        tracing::warn!(key, %error, "could not release the fill lock; waiters fall back to its lease");
    }
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
