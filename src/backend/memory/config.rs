//! Configuration of the memory backend: its builder, and `memory://` URLs.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::keyspace::{KeySpace, ENTRY_OVERHEAD};
use super::{Inner, MemoryBackend};
use crate::url::CacheUrl;
use crate::{Error, Result};

/// Default bound of the value table: 128 MiB of keys and values.
pub const DEFAULT_MAX_CAPACITY: u64 = 128 * 1024 * 1024;

/// The smallest bound that holds an entry: the weight of the lightest one,
/// a 1-byte key with an empty value, plus the overhead charged per entry.
///
/// ```
/// assert_eq!(stampede::backend::memory::MIN_MAX_CAPACITY, 65);
/// ```
pub const MIN_MAX_CAPACITY: u64 = 1 + ENTRY_OVERHEAD;

/// Builder for [`MemoryBackend`].
#[derive(Clone, Debug)]
#[must_use]
pub struct MemoryBackendBuilder {
    max_capacity: u64,
}

impl MemoryBackendBuilder {
    /// Bounds the value table to about `bytes` of keys and values (each entry
    /// is also charged a small fixed overhead). Past it, moka evicts the
    /// entries least likely to be used again. Held lock records are never
    /// evicted, whatever the bound.
    ///
    /// A bound under [`MIN_MAX_CAPACITY`] holds no entry at all: every
    /// write is accepted and dropped. [`Cache::from_url`](crate::Cache::from_url)
    /// refuses such a `max_capacity`.
    ///
    /// Default: [`DEFAULT_MAX_CAPACITY`].
    pub fn max_capacity(mut self, bytes: u64) -> Self {
        self.max_capacity = bytes;
        self
    }

    /// Builds the backend.
    pub fn build(self) -> MemoryBackend {
        MemoryBackend {
            inner: Arc::new(Inner {
                keys: KeySpace::new(self.max_capacity),
                last_version: AtomicU64::new(0),
                last_fence: AtomicU64::new(0),
                watchers: Arc::default(),
            }),
        }
    }
}

impl Default for MemoryBackendBuilder {
    fn default() -> Self {
        MemoryBackendBuilder {
            max_capacity: DEFAULT_MAX_CAPACITY,
        }
    }
}

impl MemoryBackend {
    /// The backend for a `memory://[?max_capacity=<bytes>]` URL; see
    /// [`Cache::from_url`](crate::Cache::from_url). A `max_capacity` under
    /// [`MIN_MAX_CAPACITY`] is refused: it would accept writes and store
    /// nothing.
    pub(crate) fn from_url(url: &mut CacheUrl<'_>) -> Result<MemoryBackend> {
        if !url.rest.is_empty() {
            return Err(Error::invalid_config(
                url.original,
                "a memory:// URL takes no host or path",
            ));
        }
        let mut builder = MemoryBackend::builder();
        if let Some(bytes) = url.take_u64("max_capacity")? {
            if bytes < MIN_MAX_CAPACITY {
                return Err(Error::invalid_config(
                    url.original,
                    format!(
                        "parameter `max_capacity` must be at least {MIN_MAX_CAPACITY} bytes, \
                         or the cache can store nothing; got {bytes}"
                    ),
                ));
            }
            builder = builder.max_capacity(bytes);
        }
        Ok(builder.build())
    }
}
