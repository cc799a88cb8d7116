//! [`Cache::get_or_fill_many`] and its [`Typed`] form: the stampede guard
//! for a set of keys ([`crate::fill`]).

use std::collections::HashMap;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Cache, Typed};
use crate::codec::{Codec, Json};
use crate::fill::{self, Fill, StorePolicy};
use crate::{Error, Result};

impl Cache {
    /// [`get_or_fill`](Cache::get_or_fill) for a set of keys, with JSON
    /// values: returns the value of every key that has one, filling the
    /// missing ones with **one** call of `f`.
    ///
    /// - One batch reads every key and takes the fill lease of each key
    ///   that needs a fill (one request per server).
    /// - `f` gets the keys this caller leads, in the order given (without
    ///   repeats), and returns a map of the values it found. They are
    ///   stored in one batch, each under its key's lease: as with
    ///   `get_or_fill`, a write to a key during the fill voids its lease, and
    ///   that value is returned but not stored. Keys `f` leaves out are
    ///   absent from the result and not cached; keys it adds are ignored.
    /// - Keys another caller (here or in another process) is filling are
    ///   waited for, woken when their leases end, so concurrent callers
    ///   with overlapping key sets never fill a key twice.
    /// - [`Fill::cache_if`] and [`Fill::ttl_with`] apply per value. Values
    ///   are served as stored: no early refresh; a value marked stale is
    ///   refilled when this caller wins its lease, or served within
    ///   [`Fill::stale_while_revalidate`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    /// use stampede::Fill;
    ///
    /// let cache = stampede::Cache::memory();
    /// cache.set_value("user:1", "ada", None).await?;
    /// let ids = vec!["user:1".to_string(), "user:2".to_string(), "user:404".to_string()];
    /// let users: HashMap<String, String> = cache
    ///     .get_or_fill_many(&ids, Fill::ttl(Duration::from_secs(60)), |missing: Vec<String>| async move {
    ///         assert_eq!(missing, ["user:2", "user:404"]); // user:1 was a hit
    ///         Ok::<_, stampede::Error>(HashMap::from([("user:2".to_string(), "grace".to_string())]))
    ///     })
    ///     .await?;
    /// assert_eq!(users.len(), 2); // user:404 was not found, and is not cached
    /// assert_eq!(users["user:2"], "grace");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// `f`'s error as it is (every lease this call holds is given back, so
    /// waiters take over); an empty key or bad [`Fill`] before anything is
    /// sent; [`Error::Decode`] for a stored value that is not a `T`;
    /// [`Error::FilledElsewhereFailed`] when another caller's fill of one
    /// of the keys ended without a value after `f` had run (call again);
    /// a backend failure.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives back every lease it holds, from a
    /// background task, so other callers take over at once; values already
    /// stored stay.
    pub async fn get_or_fill_many<K, T, E, F, Fut>(
        &self,
        keys: &[K],
        fill: Fill<impl StorePolicy<T>>,
        f: F,
    ) -> Result<HashMap<String, T>, E>
    where
        K: AsRef<str>,
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<HashMap<String, T>, E>>,
    {
        fill::get_or_fill_many(&self.scope, &Json, keys, &fill, f).await
    }
}

impl<C: Codec> Typed<C> {
    /// [`Cache::get_or_fill_many`] with this handle's codec.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::collections::HashMap;
    /// use stampede::{typed::Json, Fill};
    ///
    /// let typed = stampede::Cache::memory().with_codec(Json);
    /// let squares: HashMap<String, u64> = typed
    ///     .get_or_fill_many(&["2", "3"], Fill::forever(), |keys: Vec<String>| async move {
    ///         Ok::<_, stampede::Error>(keys.into_iter().map(|k| { let n: u64 = k.parse().unwrap_or(0); (k, n * n) }).collect())
    ///     })
    ///     .await?;
    /// assert_eq!(squares["3"], 9);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Cache::get_or_fill_many`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Cache::get_or_fill_many`].
    pub async fn get_or_fill_many<K, T, E, F, Fut>(
        &self,
        keys: &[K],
        fill: Fill<impl StorePolicy<T>>,
        f: F,
    ) -> Result<HashMap<String, T>, E>
    where
        K: AsRef<str>,
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<HashMap<String, T>, E>>,
    {
        fill::get_or_fill_many(self.cache.scope(), &self.codec, keys, &fill, f).await
    }
}
