//! `get_shared`: a typed read that hands out one decoded value, shared.
//!
//! With a near cache, a copy keeps the value decoded the first time a
//! typed read asks for it, so every later hit on that copy is an `Arc`
//! clone: no decode, no allocation. Without one (or on a miss) the value is
//! decoded as [`get_value`](super::Typed::get_value) does.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::typed::get_framed;
use super::{Cache, Typed};
use crate::codec::{decode, Codec, Json};
use crate::ctx::Copied;
use crate::Result;

/// A copy's decoded value, tagged with the codec that decoded it.
struct Decoded<C, T> {
    value: Arc<T>,
    codec: PhantomData<fn() -> C>,
}

impl<C: Codec> Typed<C> {
    /// Reads the value at `key`, decoded, as a shared [`Arc<T>`]. With a
    /// near cache ([`Cache::with_near_cache`]) each copy is decoded once,
    /// and every later read of it returns the same `Arc`; otherwise it is
    /// [`get_value`](Typed::get_value) in an `Arc`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use std::sync::Arc;
    ///
    /// let cache = stampede::Cache::memory();
    /// cache.set_value("user:7", &"ada".to_owned(), None).await?;
    /// let user: Option<Arc<String>> = cache.get_shared("user:7").await?;
    /// assert_eq!(user.as_deref().map(String::as_str), Some("ada"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`get_value`](Typed::get_value).
    ///
    /// # Cancel safety
    ///
    /// A read: dropping the future changes nothing.
    pub async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        get_shared(&self.cache, &self.codec, key).await
    }
}

impl Cache {
    /// [`Typed::get_shared`] with JSON values: the decoded value as a
    /// shared `Arc<T>`, decoded once per near-cache copy.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// cache.set_value("n", &7u32, None).await?;
    /// assert_eq!(cache.get_shared::<u32>("n").await?.as_deref(), Some(&7));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Cache::get_value`].
    ///
    /// # Cancel safety
    ///
    /// A read: dropping the future changes nothing.
    pub async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        get_shared(self, &Json, key).await
    }
}

async fn get_shared<C: Codec, T>(cache: &Cache, codec: &C, key: &str) -> Result<Option<Arc<T>>>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    if let Some(copied) = cache.scope.copied(key).await? {
        return shared_of(&copied, codec, key).map(Some);
    }
    Ok(get_framed(cache, codec, key)
        .await?
        .map(|(_, value)| Arc::new(value)))
}

/// The copy's value decoded by `codec` as `T`: the one decoded before, or
/// decoded now and kept (unless the copy already keeps another type).
fn shared_of<C: Codec, T>(entry: &Copied, codec: &C, key: &str) -> Result<Arc<T>>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    if let Some(decoded) = entry.decoded.get() {
        let decoded: &(dyn Any + Send + Sync) = &**decoded;
        if let Some(decoded) = decoded.downcast_ref::<Decoded<C, T>>() {
            return Ok(Arc::clone(&decoded.value));
        }
    }
    let value = Arc::new(decode(codec, key, &entry.value)?.1);
    let decoded: Arc<dyn Any + Send + Sync> = Arc::new(Decoded::<C, T> {
        value: Arc::clone(&value),
        codec: PhantomData,
    });
    let _ = entry.decoded.set(decoded);
    Ok(value)
}
