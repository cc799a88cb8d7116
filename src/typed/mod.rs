//! Typed values over the byte cache: serde in and out, the stampede guard as
//! one call ([`get_or_fill`](Typed::get_or_fill)), and read-modify-write with
//! retry ([`update`](Typed::update)).
//!
//! The methods on [`Cache`] use [`Json`]; [`Cache::with_codec`] gives the same
//! methods with another [`Codec`].
//!
//! Typed values are stored in a small frame (14 bytes: freshness and fill
//! time, which early refresh needs in every process) followed by the codec's
//! bytes. Reading a value without a frame, such as JSON written by another
//! client, decodes the whole value.

mod codec;
mod fill;
pub(crate) mod flight;
mod frame;
mod json;
mod shared;
mod update;

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

#[cfg(feature = "postcard")]
pub use codec::Postcard;
pub use codec::{Codec, Json};
pub use fill::{CacheIf, Fill, StoreAll, StorePolicy, TtlWith, DEFAULT_FILL_LEASE};
pub use update::Retry;

use crate::key::check_ttl;
use crate::{Cache, Error, Result};
use frame::Meta;

/// A [`Cache`] whose typed methods use the codec `C`. Made by
/// [`Cache::with_codec`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct Typed<C: Codec = Json> {
    cache: Cache,
    codec: C,
}

impl<C: Codec> Typed<C> {
    /// The cache underneath.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Stores `value`, encoded with the codec, at `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the codec cannot encode it; as for
    /// [`Cache::set`] otherwise.
    ///
    /// # Cancel safety
    ///
    /// Once the request is sent the backend applies it whether or not the
    /// future is still there, so a dropped write may or may not have landed;
    /// it is never half-applied.
    pub async fn set_value<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        set_value(&self.cache, &self.codec, key, value, ttl).await
    }

    /// Reads and decodes the value at `key`. `None` when absent.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`], naming the key, when the stored bytes are not a
    /// `T`; as for [`Cache::get`] otherwise.
    ///
    /// # Cancel safety
    ///
    /// A read: dropping the future changes nothing.
    pub async fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(get_framed(&self.cache, &self.codec, key)
            .await?
            .map(|(_, value)| value))
    }

    /// Returns the value at `key`, running `f` to fill it on a miss, at most
    /// once at a time per key across every task and process that shares the
    /// backend; everyone else waits for that fill and reads its result.
    ///
    /// - **Leases, not locks.** The read that misses takes the key's *fill
    ///   lease* in the same round trip (Facebook's memcache leases). Only
    ///   the lease holder runs `f`, and its value is stored only while the
    ///   lease is valid: a [`delete`](Cache::delete), `set`, `add`, `cas` or
    ///   [`mark_stale`](Cache::mark_stale) of the key during the fill voids
    ///   the lease, and so does the lease running out (a fill slower than
    ///   [`Fill::lease`]). The holder's caller still gets what `f` computed;
    ///   nobody else is handed it, and no read that starts after the write
    ///   sees it. Waiters are woken when the lease ends (in this process at
    ///   once, in others through the backend) and read again.
    /// - If `f` fails, its error goes to the holder's caller as it is, and
    ///   the lease is given back at once: one waiter takes over the fill,
    ///   the rest wait for it.
    /// - **Never hangs.** A caller waits on other callers' leases for at
    ///   most twice the lease (on memcached, whose leases are whole seconds
    ///   plus a 2 s margin, twice that). Past it, say because a record that
    ///   is not ours holds the key's lease and never expires, it runs `f`
    ///   itself and returns the value *without* storing it, and logs a
    ///   warning.
    /// - With [`Fill::early_refresh`], readers refresh a value before it
    ///   expires with a probability that grows as expiry nears (XFetch), so a
    ///   hot key never goes missing; with [`Fill::stale_while_revalidate`],
    ///   readers get the old value while one caller refreshes it (also after
    ///   [`mark_stale`](Cache::mark_stale)). The refresher holds the key's
    ///   [`RedLock`](crate::RedLock) (or the lease, after `mark_stale`) and
    ///   stores with a compare-and-set, so a write during the refresh wins.
    ///   Here the caller that refreshes waits for its own fill; everyone
    ///   else returns at once. [`get_or_fill_detached`](Typed::get_or_fill_detached)
    ///   refreshes in the background instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    /// use stampede::typed::Fill;
    ///
    /// let cache = stampede::Cache::memory();
    /// let fill = Fill::ttl(Duration::from_secs(300)).lease(Duration::from_secs(10));
    /// let total: u64 = cache
    ///     .get_or_fill("report:q3", fill.clone(), || async { Ok::<_, stampede::Error>(42) })
    ///     .await?;
    /// assert_eq!(total, 42);
    /// // Filled once; now a hit:
    /// let again: u64 = cache
    ///     .get_or_fill("report:q3", fill, || async { unreachable!("not called on a hit") })
    ///     .await?;
    /// assert_eq!(again, 42);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// `f`'s own error, as it is. The crate's errors (a bad key or fill
    /// option, a backend failure while reading, a stored value that does not
    /// decode as `T`) are converted with `E::from`, as in diesel's
    /// `transaction`: use [`stampede::Error`](Error) itself,
    /// `anyhow::Error`, or your own error type with a `From<stampede::Error>`
    /// impl. A value that `f` computed but that could not be *stored*
    /// (backend failure) is still returned; the failure is logged.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `f`'s future too and gives the lease back
    /// in the background, which wakes the waiters; one of them takes over.
    pub async fn get_or_fill<T, E, F, Fut>(
        &self,
        key: &str,
        fill: Fill<impl StorePolicy<T>>,
        f: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        fill::get_or_fill(&self.cache, &self.codec, key, &fill, f).await
    }

    /// [`get_or_fill`](Typed::get_or_fill) with background revalidation:
    /// a caller that reads a value due for a refresh (stale within
    /// [`Fill::stale_while_revalidate`], marked stale, or picked by
    /// [`Fill::early_refresh`]) returns that value at once, and the one
    /// refresh runs on a spawned tokio task. A refresh that fails leaves the
    /// old value in place and logs the error. On a miss the caller fills
    /// and waits, as with `get_or_fill`. Needs a closure that is
    /// `Send + 'static`; use `get_or_fill` for one that is not.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::time::Duration;
    /// use stampede::typed::Fill;
    ///
    /// let cache = stampede::Cache::memory();
    /// let fill = Fill::ttl(Duration::from_secs(60)).stale_while_revalidate(Duration::from_secs(600));
    /// let v: u32 = cache.get_or_fill_detached("k", fill.clone(), || async { Ok::<_, stampede::Error>(1) }).await?;
    /// cache.mark_stale("k", Duration::from_secs(600)).await?;
    /// // Stale: returned at once; the refresh to 2 runs in the background.
    /// let v: u32 = cache.get_or_fill_detached("k", fill, || async { Ok::<_, stampede::Error>(2) }).await?;
    /// assert_eq!(v, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`get_or_fill`](Typed::get_or_fill). A background refresh's
    /// error is logged, not returned.
    ///
    /// # Cancel safety
    ///
    /// As for [`get_or_fill`](Typed::get_or_fill); a refresh already
    /// spawned runs to its end.
    pub async fn get_or_fill_detached<T, E, F, Fut>(
        &self,
        key: &str,
        fill: Fill<impl StorePolicy<T> + Clone + Send + Sync + 'static>,
        f: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: From<Error> + std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        fill::get_or_fill_detached(&self.cache, &self.codec, key, &fill, f).await
    }

    /// Reads the value at `key`, passes it to `f` (`None` when absent) and
    /// writes back what `f` returns, only if nobody wrote the key in between
    /// ([`OptimisticLock`](crate::OptimisticLock) underneath). On a conflict
    /// it reads again and calls `f` again, after a jittered backoff; after
    /// three conflicts it escalates to the key's lock
    /// ([`RedLock::lock`](crate::RedLock::lock) on `<key>-lock`), so that
    /// contending updaters queue instead of giving up, and retries under it,
    /// up to [`Retry::default`]'s bound in all. Returns the value written.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// let n: u64 = cache.update("hits", None, |old: Option<u64>| old.unwrap_or(0) + 1).await?;
    /// assert_eq!(n, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::TooManyConflicts`] ([`is_conflict`](Error::is_conflict)) when
    /// every attempt conflicted, which takes writers that bypass the lock
    /// (plain `set`s, or updaters still in their first tries) winning every
    /// time; decode, encode and backend errors, including those of the
    /// lock's wait.
    ///
    /// # Cancel safety
    ///
    /// If dropped, the last attempt's write may or may not have landed.
    pub async fn update<T, F>(&self, key: &str, ttl: Option<Duration>, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T,
    {
        update::update(&self.cache, &self.codec, key, ttl, &Retry::default(), f).await
    }

    /// [`update`](Typed::update) with your own retry bound and backoff.
    ///
    /// # Errors
    ///
    /// As for [`update`](Typed::update).
    ///
    /// # Cancel safety
    ///
    /// As for [`Typed::update`].
    pub async fn update_with<T, F>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        retry: &Retry,
        f: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T,
    {
        update::update(&self.cache, &self.codec, key, ttl, retry, f).await
    }
}

/// Frames and encodes `value`.
fn encode<C: Codec, T: Serialize + ?Sized>(
    codec: &C,
    key: &str,
    value: &T,
    meta: Meta,
) -> Result<Vec<u8>> {
    let mut bytes = frame::start(meta);
    codec
        .encode_into(value, &mut bytes)
        .map_err(|source| Error::Encode {
            key: key.to_owned(),
            source,
        })?;
    Ok(bytes)
}

/// Unframes and decodes stored bytes.
fn decode<C: Codec, T: DeserializeOwned>(
    codec: &C,
    key: &str,
    bytes: &[u8],
) -> Result<(Option<Meta>, T)> {
    let (meta, payload) = frame::split(bytes);
    let value = codec.decode(payload).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })?;
    Ok((meta, value))
}

async fn set_value<C: Codec, T: Serialize + ?Sized>(
    cache: &Cache,
    codec: &C,
    key: &str,
    value: &T,
    ttl: Option<Duration>,
) -> Result<()> {
    let ttl = cache.ttl_or_default(ttl);
    check_ttl(ttl)?;
    let bytes = encode(codec, key, value, Meta::fresh_for(ttl, Duration::ZERO))?;
    cache.set(key, bytes, ttl).await
}

async fn get_framed<C: Codec, T: DeserializeOwned>(
    cache: &Cache,
    codec: &C,
    key: &str,
) -> Result<Option<(Option<Meta>, T)>> {
    match cache.get(key).await? {
        None => Ok(None),
        Some(bytes) => decode(codec, key, &bytes).map(Some),
    }
}
