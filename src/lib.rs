#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(unreachable_pub)]

pub mod backend;
mod cache;
mod clock;
mod codec;
mod ctx;
mod error;
mod fill;
mod key;
mod lock;
#[doc(hidden)]
pub mod __private {
    pub use crate::macros::{as_cache, AsCache};
    /// For the signatures [`forward_backend!`](crate::forward_backend) writes.
    pub use tokio::sync::Notify;
}
mod macros;
mod near;
mod observe;
pub mod typed;
mod url;

pub use backend::CasToken;
pub use cache::Cache;
pub use error::{BoxError, Error, Result};
pub use fill::Fill;
pub use lock::{
    LeaseGuard, LeaseState, LockGuard, OptimisticLock, RedLock, DEFAULT_SYNCHRONIZED_LEASE,
};
pub use near::{
    NearCache, NearStats, DEFAULT_MAX_UNVERIFIED, DEFAULT_NEAR_TRUST, DEFAULT_NEAR_TTL,
};

pub use bytes::Bytes;

use ctx::Scope;

/// Caches an `async fn`'s result with [`Cache::get_or_fill`]: the stampede
/// guard as an attribute. Concurrent calls with the same key run the body
/// once, across every task and process sharing the cache; a write to the
/// key during the fill wins over it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), stampede::Error> {
/// use std::sync::LazyLock;
/// use stampede::{cached, Cache};
///
/// static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct User { id: u64, name: String }
///
/// /// Reads a user from the database (once per 5 minutes per id).
/// #[cached(cache = &*CACHE, key = "user:{id}", ttl = "5m", lease = "10s")]
/// async fn load_user(id: u64) -> Result<User, stampede::Error> {
///     Ok(User { id, name: "ada".into() })
/// }
///
/// let user = load_user(7).await?;
/// assert_eq!(user.name, "ada");
/// // The value is an ordinary cache entry:
/// let stored: Option<User> = CACHE.get_value("user:7").await?;
/// assert_eq!(stored.map(|user| user.id), Some(7));
/// # Ok(())
/// # }
/// ```
///
/// # Options
///
/// | option | value | default |
/// |---|---|---|
/// | `cache` | any expression giving a [`Cache`] or a [`Typed`](typed::Typed) handle (by reference or not), evaluated on each call: it may use `self` and the arguments | required |
/// | `key` | a format string over the arguments: `"user:{id}"`, `"report:{quarter}:{region}"`; arguments it does not use are fine | the function's module path and name, then every argument's `Display`, `:`-separated |
/// | `ttl` | a duration (below) | none: values never expire ([`Fill::forever`]) |
/// | `lease` | a duration: the fill lease ([`Fill::lease`]) | [`DEFAULT_FILL_LEASE`](typed::DEFAULT_FILL_LEASE) |
/// | `early_refresh` | an `f64` beta ([`Fill::early_refresh`]) | off |
/// | `stale_while_revalidate` | a duration ([`Fill::stale_while_revalidate`]) | off |
///
/// Durations are human strings, checked at compile time (`"500ms"`, `"10s"`,
/// `"5m"`, `"1h"`, `"1d"`, or combined: `"1m30s"`), or any expression of
/// type [`Duration`](std::time::Duration).
///
/// # Requirements
///
/// The function must be `async` and return `Result<T, E>` with
/// `T: Serialize + DeserializeOwned` and `E: From<stampede::Error>`: the
/// body's own errors come back untouched, and the cache's become `E`. It
/// keeps its signature, docs and attributes; `Send` futures stay `Send`.
/// The expansion is the `get_or_fill` call you would write by hand, with
/// the key's `format!` as its only allocation. Mistakes (not `async`, no
/// `Result`, an unknown or misspelt option, a `{name}` that is not an
/// argument, a bad duration) are compile errors at the offending token.
///
/// On a method, `cache = &self.cache` works; a [`Typed`](typed::Typed)
/// handle stores with its codec:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), stampede::Error> {
/// use stampede::{cached, Cache};
///
/// struct Reports { cache: Cache }
///
/// impl Reports {
///     #[cached(cache = &self.cache, key = "report:{quarter}:{region}", ttl = "1h", early_refresh = 1.0)]
///     async fn report(&self, quarter: u8, region: &str) -> Result<Vec<u64>, stampede::Error> {
///         Ok(vec![u64::from(quarter); region.len()])
///     }
/// }
///
/// let reports = Reports { cache: Cache::memory() };
/// assert_eq!(reports.report(3, "eu").await?, [3, 3]);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use stampede_macros::cached;

/// Runs an `async fn`'s body while holding an exclusive lock named from its
/// arguments ([`RedLock::synchronized`]): calls with the same name never
/// overlap, across every task and process sharing the cache. The lease is
/// renewed in the background while the body runs; if it is lost anyway,
/// the body is cancelled and the call returns [`Error::LockLost`] (as `E`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), stampede::Error> {
/// use stampede::{synchronized, Cache};
///
/// struct Exports { cache: Cache }
///
/// impl Exports {
///     #[synchronized(cache = &self.cache, name = "export:{account}", lease = "30s", wait = "2m")]
///     async fn export(&self, account: u64) -> Result<u64, stampede::Error> {
///         Ok(account * 2) // nobody else exports this account meanwhile
///     }
/// }
///
/// let exports = Exports { cache: Cache::memory() };
/// assert_eq!(exports.export(21).await?, 42);
/// # Ok(())
/// # }
/// ```
///
/// # Options
///
/// | option | value | default |
/// |---|---|---|
/// | `cache` | any expression giving a [`Cache`] or a [`Typed`](typed::Typed) handle, evaluated on each call | required |
/// | `name` | a format string over the arguments: `"export:{account}"` | the function's module path and name, then every argument's `Display` |
/// | `lease` | a duration: the lock's lease ([`RedLock::new`]) | [`DEFAULT_SYNCHRONIZED_LEASE`] (30 s) |
/// | `wait` | a duration: give up waiting with [`Error::LockTimeout`] ([`RedLock::wait_timeout`]) | wait until held |
/// | `auto_renew` | a `bool` ([`RedLock::auto_renew`]) | `true` |
///
/// Durations and requirements as for [`cached`] (no `Serialize` needed).
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use stampede_macros::synchronized;
