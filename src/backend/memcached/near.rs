//! What a near cache needs from memcached: reads with their CAS and TTL,
//! and a metadata-only check that a CAS is still the stored one.

use crate::backend::coherence::{Revalidated, Versioned};
use crate::backend::CasToken;
use crate::{Error, Result};

use super::MemcachedBackend;

impl MemcachedBackend {
    /// `mg <key> v c t`: the value, its CAS and remaining TTL.
    pub(crate) async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        let _ = key;
        Err(Error::Unsupported {
            backend: "memcached",
            operation: "read_versioned",
        })
    }

    /// `mg <key> c t`: whether `version` is still the stored CAS.
    pub(crate) async fn revalidate(&self, key: &str, version: &CasToken) -> Result<Revalidated> {
        let _ = (key, version);
        Err(Error::Unsupported {
            backend: "memcached",
            operation: "revalidate",
        })
    }
}
