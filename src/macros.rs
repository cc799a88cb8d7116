//! What the `#[cached]` and `#[synchronized]` expansions call into. Not
//! part of the API: the names may change with any release.

use crate::typed::{Codec, Typed};
use crate::Cache;

/// A handle the attributes accept as `cache = …`: a [`Cache`] or a
/// [`Typed`] one, by reference or not.
pub trait AsCache {
    /// The cache underneath.
    fn as_cache(&self) -> &Cache;
}

impl AsCache for Cache {
    fn as_cache(&self) -> &Cache {
        self
    }
}

impl<C: Codec> AsCache for Typed<C> {
    fn as_cache(&self) -> &Cache {
        self.cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for &T {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

/// The cache behind whatever `cache = …` gave.
pub fn as_cache<T: AsCache + ?Sized>(handle: &T) -> &Cache {
    handle.as_cache()
}
