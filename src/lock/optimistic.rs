//! [`OptimisticLock`]: compare-and-set against what was seen at acquire.

use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument;

use crate::backend::{Backend, CasToken};
use crate::key::check_ttl;
use crate::observe::{self, op_span};
use crate::{Error, Result, Scope};

/// Optimistic concurrency on one key: remember what was there, and write
/// only if it is still exactly that.
///
/// [`acquire`](OptimisticLock::acquire) reads the key with its CAS token;
/// [`cas`](OptimisticLock::cas) writes only if no write has touched the key
/// since, and fails with a conflict otherwise, leaving the other writer's
/// value in place. Nothing is locked in between: readers and writers are
/// never blocked, and a conflict costs one retry.
///
/// **Unlike aiocache**, a key that was *absent* at acquire is not a free
/// pass: aiocache lets `cas` on such a key always succeed, silently
/// overwriting whatever another writer created meanwhile. Here the `cas`
/// succeeds only if the key is still absent, and is a conflict otherwise.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stampede::Result<()> {
/// use stampede::{Cache, OptimisticLock};
///
/// let cache = Cache::memory();
/// cache.set("counter", b"41", None).await?;
///
/// let lock = OptimisticLock::acquire(&cache, "counter").await?;
/// assert_eq!(lock.value(), Some(&b"41"[..]));
///
/// cache.set("counter", b"100", None).await?; // another writer gets in first
/// let err = lock.cas(b"42", None).await.unwrap_err();
/// assert!(err.is_conflict());
/// assert_eq!(cache.get("counter").await?.as_deref(), Some(&b"100"[..])); // their write stands
/// # Ok(())
/// # }
/// ```
pub struct OptimisticLock {
    scope: Scope,
    key: String,
    full_key: String,
    seen: Option<(Bytes, CasToken)>,
}

impl OptimisticLock {
    /// [`OptimisticLock::acquire`] on a handle's scope.
    pub(crate) async fn acquire_in(
        scope: &Scope,
        key: impl Into<String>,
    ) -> Result<OptimisticLock> {
        let key = key.into();
        let span = op_span!("optimistic_acquire", scope.backend_kind(), &*key);
        let seen = async {
            let full_key = scope.full_key(&key).await?.into_owned();
            let seen = scope.backend().gets(&full_key).await?;
            Ok((full_key, seen))
        }
        .instrument(span.clone())
        .await;
        observe::outcome(&span, &seen, "ok");
        let (full_key, seen) = seen?;
        Ok(OptimisticLock {
            scope: scope.clone(),
            key,
            full_key,
            seen,
        })
    }

    /// The key, as given to [`acquire`](OptimisticLock::acquire).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value seen at acquire; `None` when the key was absent.
    pub fn value(&self) -> Option<&[u8]> {
        self.seen.as_ref().map(|(value, _)| &value[..])
    }

    /// The CAS token seen at acquire; `None` when the key was absent.
    pub fn token(&self) -> Option<&CasToken> {
        self.seen.as_ref().map(|(_, token)| token)
    }

    /// Writes `value` if the key is exactly as [`acquire`](OptimisticLock::acquire)
    /// saw it: same write (not merely the same bytes), or still absent.
    ///
    /// A successful `cas` is itself a write, so a second `cas` on the same
    /// lock conflicts: acquire again to make another change.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] ([`is_conflict`](Error::is_conflict)) when the key
    /// changed since acquire; the value written by the other writer stays. A
    /// zero TTL, or a backend failure.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the write may or may not have happened;
    /// acquire again to find out.
    pub async fn cas(&self, value: impl AsRef<[u8]>, ttl: Option<Duration>) -> Result<()> {
        let ttl = self.scope.ttl_or_default(ttl);
        check_ttl(ttl)?;
        let span = op_span!("optimistic_cas", self.scope.backend_kind(), &*self.key);
        let backend = self.scope.backend();
        let stored = backend.cas(&self.full_key, value.as_ref(), self.token(), ttl);
        let stored = stored.instrument(span.clone()).await;
        let outcome = match &stored {
            Ok(true) => "stored",
            Ok(false) => "conflict",
            Err(_) => "error",
        };
        span.record("outcome", outcome);
        let stored = stored?;
        if stored {
            self.scope.wrote(&self.full_key);
            Ok(())
        } else {
            observe::cas_conflict(self.scope.backend_kind(), "optimistic_lock");
            Err(Error::Conflict {
                key: self.key.clone(),
            })
        }
    }
}

impl std::fmt::Debug for OptimisticLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptimisticLock")
            .field("key", &self.key)
            .field("seen", &self.seen.as_ref().map(|(value, _)| value.len()))
            .finish()
    }
}
