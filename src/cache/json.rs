//! The typed methods on [`Cache`] itself: [`Cache::with_codec`], and the
//! JSON shortcuts that forward to [`Typed`] with [`Json`].

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::typed::{get_framed, set_value};
use super::{Cache, Typed};
use crate::codec::{Codec, Json};
use crate::fill::{self, Fill, StorePolicy};
use crate::lock::update::{self, Retry};
use crate::{Error, Result};

impl Cache {
    /// This cache, with typed values encoded by `codec` instead of JSON.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use stampede::typed::Json;
    ///
    /// let cache = stampede::Cache::memory();
    /// let typed = cache.with_codec(Json);
    /// typed.set_value("scores", &[3u32, 1, 2], None).await?;
    /// assert_eq!(typed.get_value::<Vec<u32>>("scores").await?, Some(vec![3, 1, 2]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_codec<C: Codec>(&self, codec: C) -> Typed<C> {
        Typed {
            cache: self.clone(),
            codec,
        }
    }

    /// Stores `value` as JSON. See [`Typed::set_value`].
    ///
    /// # Errors
    ///
    /// As for [`Typed::set_value`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Typed::set_value`].
    pub async fn set_value<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        set_value(self, &Json, key, value, ttl).await
    }

    /// Reads a JSON value. See [`Typed::get_value`].
    ///
    /// # Errors
    ///
    /// As for [`Typed::get_value`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Typed::get_value`].
    pub async fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(get_framed(self, &Json, key).await?.map(|(_, value)| value))
    }

    /// The stampede guard as one call, with JSON values. See
    /// [`Typed::get_or_fill`].
    ///
    /// # Errors
    ///
    /// As for [`Typed::get_or_fill`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Typed::get_or_fill`].
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
        fill::get_or_fill(&self.scope, &Json, key, &fill, f).await
    }

    /// [`get_or_fill`](Cache::get_or_fill) with refreshes in the
    /// background, with JSON values. See [`Typed::get_or_fill_detached`].
    ///
    /// # Errors
    ///
    /// As for [`Typed::get_or_fill_detached`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Typed::get_or_fill_detached`].
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
        fill::get_or_fill_detached(&self.scope, &Json, key, &fill, f).await
    }

    /// Read-modify-write of a JSON value, retried on conflict. See
    /// [`Typed::update`].
    ///
    /// # Errors
    ///
    /// As for [`Typed::update`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Typed::update`].
    pub async fn update<T, F>(&self, key: &str, ttl: Option<Duration>, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T,
    {
        update::update(&self.scope, &Json, key, ttl, &Retry::default(), f).await
    }
}
