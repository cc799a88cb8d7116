//! Compare-and-set on [`Cache`]: `gets` and `cas`.

use std::time::Duration;

use bytes::Bytes;

use super::Cache;
use crate::backend::{Backend, CasToken};
use crate::key::check_ttl;
use crate::observe::{self, op_span};
use crate::Result;

impl Cache {
    /// Reads `key` with a [`CasToken`] for [`cas`](Cache::cas). The token
    /// changes on every write, even one that stores the same bytes.
    ///
    /// # Errors
    ///
    /// An empty key, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// A read: dropping the future changes nothing.
    pub async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        let span = op_span!("gets", self.backend_kind(), key);
        observe::traced(span, async {
            let key = self.scope.full_key(key).await?;
            self.scope.backend().gets(&key).await
        })
        .await
    }

    /// Stores `value` only if `key` is unchanged since the [`gets`](Cache::gets)
    /// that produced `token`; with `token: None`, only if `key` is absent.
    /// `Ok(false)` on a conflict, and the key keeps the other writer's value.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// let cache = stampede::Cache::memory();
    /// cache.set("k", b"v", None).await?;
    /// let seen = cache.gets("k").await?;
    /// let token = seen.as_ref().map(|(_, token)| token);
    /// assert!(cache.cas("k", b"new", token, None).await?);
    /// assert!(!cache.cas("k", b"newer", token, None).await?); // token is stale now
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`set`](Cache::set). A conflict is `Ok(false)`, not an error.
    ///
    /// # Cancel safety
    ///
    /// Once the request is sent the backend applies it whether or not the
    /// future is still there, so a dropped write may or may not have landed;
    /// it is never half-applied.
    pub async fn cas(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        token: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let span = op_span!("cas", self.backend_kind(), key);
        observe::traced(span, async {
            let ttl = self.scope.ttl_or_default(ttl);
            check_ttl(ttl)?;
            let key = self.scope.full_key(key).await?;
            let stored = self
                .scope
                .backend()
                .cas(&key, value.as_ref(), token, ttl)
                .await?;
            if stored {
                self.scope.wrote(&key);
            } else {
                crate::observe::cas_conflict(self.backend_kind(), "cas");
            }
            Ok(stored)
        })
        .await
    }
}
