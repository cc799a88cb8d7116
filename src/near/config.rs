//! [`NearCache`]: how big the near tier is and how long it trusts a copy.

use std::time::Duration;

use crate::url::CacheUrl;
use crate::{Error, Result};

/// The default [`NearCache::ttl`].
pub const DEFAULT_NEAR_TTL: Duration = Duration::from_secs(60);
/// The default [`NearCache::trust`].
pub const DEFAULT_NEAR_TRUST: Duration = Duration::from_millis(250);
/// The default [`NearCache::max_unverified`].
pub const DEFAULT_MAX_UNVERIFIED: Duration = Duration::from_secs(1);

/// The settings of a near cache: an in-process tier in front of Redis or
/// memcached, passed to [`Cache::with_near_cache`](crate::Cache::with_near_cache).
///
/// ```
/// use std::time::Duration;
/// use stampede::NearCache;
///
/// let near = NearCache::max_capacity(64 << 20) // 64 MiB of keys and values
///     .ttl(Duration::from_secs(30))
///     .trust(Duration::from_millis(100))
///     .max_unverified(Duration::from_millis(500));
/// assert_eq!(near.capacity(), 64 << 20);
/// ```
///
/// | setting | meaning | default |
/// |---|---|---|
/// | [`max_capacity`](NearCache::max_capacity) | bytes of keys and values (plus about 160 bytes per entry) held at most | required |
/// | [`ttl`](NearCache::ttl) | longest a copy is kept; never longer than the backend's TTL seen at the read | 60 s |
/// | [`trust`](NearCache::trust) | memcached: how long a copy is served before it is checked again (`mg <key> c t`) | 250 ms |
/// | [`max_unverified`](NearCache::max_unverified) | Redis: while the invalidation feed is down, how long after the feed was last known current a copy is still served | 1 s |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearCache {
    pub(crate) capacity: u64,
    pub(crate) ttl: Duration,
    pub(crate) trust: Duration,
    pub(crate) max_unverified: Duration,
}

impl NearCache {
    /// A near tier holding at most `bytes` of keys and values, with the
    /// default TTL, trust window and unverified bound.
    pub fn max_capacity(bytes: u64) -> NearCache {
        NearCache {
            capacity: bytes,
            ttl: DEFAULT_NEAR_TTL,
            trust: DEFAULT_NEAR_TRUST,
            max_unverified: DEFAULT_MAX_UNVERIFIED,
        }
    }

    /// The longest a copy is kept (it is kept no longer than the value's
    /// own TTL on the backend, either).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> NearCache {
        self.ttl = ttl;
        self
    }

    /// memcached, which cannot announce writes: how long a copy is served
    /// before the tier asks the server whether it is still current (one
    /// metadata-only round trip, re-reading only on a change). This is the
    /// window in which another process's write may go unseen.
    #[must_use]
    pub fn trust(mut self, trust: Duration) -> NearCache {
        self.trust = trust;
        self
    }

    /// Redis: while the invalidation feed is down (a lost or silent
    /// connection), copies are served for at most this long after the feed
    /// was last known to be current; after that every read goes to the
    /// server until the feed is back and has caught up.
    #[must_use]
    pub fn max_unverified(mut self, max_unverified: Duration) -> NearCache {
        self.max_unverified = max_unverified;
        self
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Refuses settings the tier cannot honour.
    pub(crate) fn check(&self) -> Result<()> {
        let zero = |name, reason| Err(Error::InvalidArgument { name, reason });
        if self.capacity == 0 {
            return zero(
                "max_capacity",
                "a near cache needs room for at least one entry",
            );
        }
        if self.ttl.is_zero() {
            return zero("ttl", "the near cache's TTL must be longer than zero");
        }
        if self.trust.is_zero() {
            return zero("trust", "the trust window must be longer than zero");
        }
        if self.max_unverified.is_zero() {
            return zero("max_unverified", "max_unverified must be longer than zero");
        }
        Ok(())
    }

    /// The settings a URL asks for (`near_capacity`, `near_ttl_ms`,
    /// `near_trust_ms`, `near_max_unverified_ms`); `None` without
    /// `near_capacity`.
    pub(crate) fn from_url(url: &mut CacheUrl<'_>) -> Result<Option<NearCache>> {
        let capacity = url.take("near_capacity");
        let mut millis = |name: &'static str| -> Result<Option<Duration>> {
            let Some(value) = url.take(name) else {
                return Ok(None);
            };
            value
                .parse::<u64>()
                .map(|ms| Some(Duration::from_millis(ms)))
                .map_err(|_| {
                    Error::invalid_config(
                        url.original,
                        format!("{name} must be a whole number of milliseconds, not {value:?}"),
                    )
                })
        };
        let (ttl, trust, unverified) = (
            millis("near_ttl_ms")?,
            millis("near_trust_ms")?,
            millis("near_max_unverified_ms")?,
        );
        let Some(capacity) = capacity else {
            if ttl.is_some() || trust.is_some() || unverified.is_some() {
                return Err(Error::invalid_config(
                    url.original,
                    "near_ttl_ms, near_trust_ms and near_max_unverified_ms need near_capacity (the near cache's size in bytes)",
                ));
            }
            return Ok(None);
        };
        let capacity = capacity.parse::<u64>().map_err(|_| {
            Error::invalid_config(
                url.original,
                format!("near_capacity must be a number of bytes, not {capacity:?}"),
            )
        })?;
        let mut near = NearCache::max_capacity(capacity);
        near.ttl = ttl.unwrap_or(near.ttl);
        near.trust = trust.unwrap_or(near.trust);
        near.max_unverified = unverified.unwrap_or(near.max_unverified);
        near.check()
            .map_err(|error| Error::invalid_config(url.original, error.to_string()))?;
        Ok(Some(near))
    }
}
