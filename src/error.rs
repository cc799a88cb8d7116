//! The crate's one error type.
//!
//! Contention is not an error inside the crate: "the lock is held" and "the
//! value changed" travel as values ([`LockAttempt`](crate::backend::LockAttempt),
//! `Ok(false)` from [`Cache::cas`](crate::Cache::cas)). They become an
//! [`Error`] only at the public edges that promise to fail on them, such as
//! [`OptimisticLock::cas`](crate::OptimisticLock::cas).

use std::time::Duration;

/// A boxed error from a backend client, kept as the [`source`](std::error::Error::source)
/// of [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `stampede`.
///
/// Match on the helpers ([`is_conflict`](Error::is_conflict),
/// [`is_timeout`](Error::is_timeout), [`is_locked`](Error::is_locked), …)
/// rather than on variants where you can: the enum is `#[non_exhaustive]` and
/// grows with the crate.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use stampede::Cache;
///
/// let cache = Cache::memory();
/// let err = cache.get("").await.unwrap_err();
/// assert!(err.is_invalid_input());
/// assert_eq!(err.to_string(), "invalid key \"\": a key must not be empty");
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key that the crate or the backend cannot store.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as it would have been sent (namespace included).
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An argument that can never be valid, such as a zero lease or TTL.
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// Which argument.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A cache URL or backend configuration that cannot be used.
    #[error("invalid cache configuration {url:?}: {reason}")]
    InvalidConfig {
        /// The URL or setting as given, without any password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A value over the backend's item size limit: refused before it was
    /// sent, or by the server.
    #[error("value for key {key:?} is {size} bytes, over the {}", SizeLimit(backend, *limit))]
    ValueTooLarge {
        /// The key, namespace included.
        key: String,
        /// Size of the refused value.
        size: usize,
        /// The largest value the backend accepts, when known: `None` when
        /// the server refused the value without saying its limit.
        limit: Option<usize>,
        /// Which backend refused it.
        backend: &'static str,
    },

    /// A compare-and-set found that the key changed since it was read.
    #[error("compare-and-set conflict on key {key:?}: the value changed since it was read")]
    Conflict {
        /// The key, as the caller named it.
        key: String,
    },

    /// A read-modify-write kept conflicting and gave up.
    #[error("gave up on key {key:?} after {attempts} conflicting compare-and-set attempts")]
    TooManyConflicts {
        /// The key, as the caller named it.
        key: String,
        /// How many attempts were made.
        attempts: u32,
    },

    /// [`Cache::increment`](crate::Cache::increment) on a key holding
    /// something that is not a counter (decimal text in `i64` range).
    #[error(
        "key {key:?} does not hold a counter: its value is not a decimal integer in i64 range"
    )]
    NotACounter {
        /// The key, namespace included.
        key: String,
    },

    /// [`Cache::increment`](crate::Cache::increment) would take a counter
    /// outside `i64` (or, on memcached, outside `u64`). The counter keeps
    /// its value.
    #[error(
        "incrementing the counter at key {key:?} by {delta} would overflow it; it keeps its value"
    )]
    CounterOverflow {
        /// The key, namespace included.
        key: String,
        /// The delta that was refused.
        delta: i64,
    },

    /// [`Cache::try_with_near_cache`](crate::Cache::try_with_near_cache)
    /// (or a URL with `near_capacity`) on a backend a near cache cannot be
    /// kept coherent on: the memory backend (it would be a cache of
    /// itself), a Redis Cluster (its invalidation log would have to span
    /// slots), or a custom backend.
    #[error("no near cache on the {backend} backend: {reason}")]
    NearCacheUnsupported {
        /// Which backend.
        backend: &'static str,
        /// Why not.
        reason: &'static str,
    },

    /// The backend has no way to do this (a custom backend without
    /// [`Backend::clear`](crate::backend::Backend::clear), say).
    #[error("the {backend} backend cannot {operation}")]
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// What it was asked to do.
        operation: &'static str,
    },

    /// [`Cache::get_or_fill_many`](crate::Cache::get_or_fill_many) waited
    /// for another caller's fill of this key, and that fill ended without a
    /// value (it failed, was cancelled or outlived its lease). This
    /// caller's fill had already run, so it cannot fill the key itself;
    /// calling again fills it.
    #[error(
        "the fill of key {key:?} by another caller ended without a value; call again to fill it"
    )]
    FilledElsewhereFailed {
        /// The key, as the caller named it.
        key: String,
    },

    /// The lock is held by another owner and the call was not allowed to wait.
    #[error("lock {key:?} is held by another owner{}", remaining_suffix(*remaining))]
    Locked {
        /// The lock's key, as the caller named it.
        key: String,
        /// How long until the holder's lease runs out, when the backend says.
        remaining: Option<Duration>,
    },

    /// Waiting for a lock took longer than the caller allowed.
    #[error("timed out after {waited:?} waiting for lock {key:?}")]
    LockTimeout {
        /// The lock's key, as the caller named it.
        key: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// A lease we held expired or was taken by another owner.
    #[error("lock {key:?} was lost: its lease ran out or another owner took it")]
    LockLost {
        /// The lock's key, as the caller named it.
        key: String,
    },

    /// A backend call did not answer within its timeout.
    #[error("{backend} {operation} did not answer within {after:?}")]
    BackendTimeout {
        /// Which backend.
        backend: &'static str,
        /// Which operation.
        operation: &'static str,
        /// The timeout that passed.
        after: Duration,
    },

    /// A backend call failed: connection refused or lost, protocol error, …
    #[error("{backend} {operation} failed")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// Which operation.
        operation: &'static str,
        /// The client's own error.
        #[source]
        source: BoxError,
    },

    /// A stored value could not be decoded as the requested type.
    #[error("could not decode the value at key {key:?}")]
    Decode {
        /// The key, as the caller named it.
        key: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },

    /// A value could not be encoded for storage.
    #[error("could not encode the value for key {key:?}")]
    Encode {
        /// The key, as the caller named it.
        key: String,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
}

fn remaining_suffix(remaining: Option<Duration>) -> String {
    match remaining {
        Some(left) => format!("; its lease runs out in {left:?}"),
        None => String::new(),
    }
}

impl Error {
    /// A compare-and-set conflict: the value changed since it was read
    /// (also true for [`Error::TooManyConflicts`]).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::Conflict { .. } | Error::TooManyConflicts { .. }
        )
    }

    /// Something took too long: waiting for a lock, or a backend call.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::LockTimeout { .. } | Error::BackendTimeout { .. }
        )
    }

    /// The lock is held by another owner.
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Locked { .. })
    }

    /// A lease we held was lost.
    pub fn is_lost(&self) -> bool {
        matches!(self, Error::LockLost { .. })
    }

    /// The backend failed or did not answer in time; retrying later may help.
    pub fn is_backend(&self) -> bool {
        matches!(self, Error::Backend { .. } | Error::BackendTimeout { .. })
    }

    /// The caller passed something that can never work: a bad key, argument,
    /// configuration or an oversized value. Retrying will not help.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidKey { .. }
                | Error::InvalidArgument { .. }
                | Error::InvalidConfig { .. }
                | Error::ValueTooLarge { .. }
                | Error::Unsupported { .. }
                | Error::NearCacheUnsupported { .. }
        )
    }

    /// For `Locked` errors: how long until the holder's lease runs out.
    pub fn remaining_lease(&self) -> Option<Duration> {
        match self {
            Error::Locked { remaining, .. } => *remaining,
            _ => None,
        }
    }

    /// Wraps a backend client's error.
    pub fn backend(
        backend: &'static str,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            backend,
            operation,
            source: source.into(),
        }
    }

    pub(crate) fn invalid_key(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidKey {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A configuration error; a URL in it loses its password.
    pub(crate) fn invalid_config(url: impl AsRef<str>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            url: redact(url.as_ref()),
            reason: reason.into(),
        }
    }
}

/// `url` without its user-info (`scheme://***@host…`), for error messages.
///
/// The user-info is everything between `://` and the *last* `@`, whatever it
/// contains: a password with an unencoded `/`, `?`, `#` or `@` is hidden
/// whole, however a URL parser would split it. Anything that is not a URL
/// is returned as it is.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The end of a [`Error::ValueTooLarge`] message: the limit, or the
/// server's when it did not say.
struct SizeLimit<'a>(&'a str, Option<usize>);

impl std::fmt::Display for SizeLimit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(limit) => write!(f, "{} limit of {limit} bytes", self.0),
            None => write!(f, "{} server's item size limit", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_shown_once_through_source_not_in_the_message() {
        use std::error::Error as _;
        let errors = [
            Error::Decode {
                key: "k".into(),
                source: "bad json at 1:1".into(),
            },
            Error::Encode {
                key: "k".into(),
                source: "bad json at 1:1".into(),
            },
            Error::backend("redis", "get", "bad json at 1:1"),
        ];
        for error in errors {
            assert!(!error.to_string().contains("bad json"), "{error}");
            let source = error.source().expect("the cause is the source");
            assert_eq!(source.to_string(), "bad json at 1:1");
        }
    }

    #[test]
    fn redact_hides_the_user_info_only() {
        assert_eq!(redact("redis://:secret@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("rediss://u:p@h/0?x=1"), "rediss://***@h/0?x=1");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact("10.0.0.1:11211"), "10.0.0.1:11211");
    }

    #[test]
    fn redact_hides_passwords_with_any_reserved_character() {
        for reserved in "/?#@:[]%&=+ !$'()*,;".chars() {
            for scheme in ["redis", "rediss", "memcached"] {
                let url = format!("{scheme}://user:s3cr{reserved}Xq9@h:1/0?timeout_ms=5");
                let shown = redact(&url);
                assert!(!shown.contains("s3cr") && !shown.contains("Xq9"), "{shown}");
                assert!(shown.starts_with(&format!("{scheme}://***@h:1")), "{shown}");
            }
        }
    }

    #[test]
    fn locked_message_names_the_remaining_lease() {
        let err = Error::Locked {
            key: "job".into(),
            remaining: Some(Duration::from_millis(1500)),
        };
        assert!(err.is_locked());
        assert_eq!(err.remaining_lease(), Some(Duration::from_millis(1500)));
        assert_eq!(
            err.to_string(),
            "lock \"job\" is held by another owner; its lease runs out in 1.5s"
        );
    }

    #[test]
    fn value_too_large_names_the_limit_when_known() {
        let err = |limit| Error::ValueTooLarge {
            key: "k".into(),
            size: 2048,
            limit,
            backend: "memcached",
        };
        assert_eq!(
            err(Some(1024)).to_string(),
            "value for key \"k\" is 2048 bytes, over the memcached limit of 1024 bytes"
        );
        assert_eq!(
            err(None).to_string(),
            "value for key \"k\" is 2048 bytes, over the memcached server's item size limit"
        );
        assert!(err(None).is_invalid_input());
    }

    #[test]
    fn backend_error_chains_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::backend("redis", "get", io);
        assert!(err.is_backend());
        assert!(!err.is_timeout());
        let source = std::error::Error::source(&err).expect("source kept");
        assert_eq!(source.to_string(), "refused");
    }
}
