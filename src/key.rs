//! Key validation and namespacing.
//!
//! A namespaced key is `<namespace>:<key>`. The namespace is escaped (`%` as
//! `%25`, `:` as `%3A`) so that it never contains the separator: two sibling
//! namespaces can then never produce the same key, whatever the keys are.
//! Nested namespaces join with `:`, outermost first.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};

/// The suffix of a [`RedLock`](crate::RedLock)'s record, as in aiocache.
pub(crate) const LOCK_SUFFIX: &str = "-lock";

/// A key prefix, already escaped, ending in `:`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Namespace(Option<Arc<str>>);

impl Namespace {
    /// This namespace with `segment` nested inside it.
    pub(crate) fn join(&self, segment: &str) -> Namespace {
        let mut prefix =
            String::with_capacity(self.0.as_deref().map_or(0, str::len) + segment.len() + 1);
        prefix.push_str(self.0.as_deref().unwrap_or(""));
        for ch in segment.chars() {
            match ch {
                '%' => prefix.push_str("%25"),
                ':' => prefix.push_str("%3A"),
                other => prefix.push(other),
            }
        }
        prefix.push(':');
        Namespace(Some(prefix.into()))
    }

    /// Whether this is the root (no namespace at all).
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_none()
    }

    /// The prefix as given to backends (`""` for none).
    pub(crate) fn prefix(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// The key a backend sees for `key`; borrows when there is no namespace.
    pub(crate) fn apply<'k>(&self, key: &'k str) -> Result<Cow<'k, str>> {
        apply_under(self.prefix(), key)
    }

    /// The key of the lock record guarding `key`: `<namespace>:<key>-lock`.
    pub(crate) fn lock_key(&self, key: &str) -> Result<String> {
        check_key(key)?;
        let prefix = self.prefix();
        let mut full = String::with_capacity(prefix.len() + key.len() + LOCK_SUFFIX.len());
        full.push_str(prefix);
        full.push_str(key);
        full.push_str(LOCK_SUFFIX);
        Ok(full)
    }
}

/// `key` under an already resolved `prefix` (see `Cache::full_key`).
pub(crate) fn apply_under<'k>(prefix: &str, key: &'k str) -> Result<Cow<'k, str>> {
    check_key(key)?;
    if prefix.is_empty() {
        return Ok(Cow::Borrowed(key));
    }
    let mut full = String::with_capacity(prefix.len() + key.len());
    full.push_str(prefix);
    full.push_str(key);
    Ok(Cow::Owned(full))
}

pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid_key(key, "a key must not be empty"));
    }
    Ok(())
}

/// Refuses a zero TTL: a value that expires at once is a bug at the caller.
pub(crate) fn check_ttl(ttl: Option<Duration>) -> Result<()> {
    match ttl {
        Some(ttl) if ttl.is_zero() => Err(Error::InvalidArgument {
            name: "ttl",
            reason: "a TTL must be longer than zero; pass None for no expiry",
        }),
        _ => Ok(()),
    }
}

/// Refuses a zero lease: nobody could ever hold such a lock.
pub(crate) fn check_lease(lease: Duration) -> Result<()> {
    if lease.is_zero() {
        return Err(Error::InvalidArgument {
            name: "lease",
            reason: "a lock lease must be longer than zero",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_namespaces_never_collide() {
        let root = Namespace::default();
        let a = root.join("a");
        let a_colon_b = root.join("a:b");
        // Without escaping, both would be "a:b:c".
        assert_ne!(a.apply("b:c").unwrap(), a_colon_b.apply("c").unwrap());
        assert_eq!(a_colon_b.apply("c").unwrap(), "a%3Ab:c");
        assert_eq!(root.join("50%").apply("k").unwrap(), "50%25:k");
    }

    #[test]
    fn nested_namespaces_join_outermost_first() {
        let ns = Namespace::default().join("app").join("users");
        assert_eq!(ns.apply("1").unwrap(), "app:users:1");
        assert_eq!(ns.lock_key("1").unwrap(), "app:users:1-lock");
    }

    #[test]
    fn no_namespace_borrows() {
        let key = Namespace::default().apply("k").unwrap();
        assert!(matches!(key, Cow::Borrowed("k")));
    }

    #[test]
    fn empty_key_and_zero_durations_are_refused() {
        let root = Namespace::default();
        assert!(root.apply("").unwrap_err().is_invalid_input());
        assert!(root.lock_key("").unwrap_err().is_invalid_input());
        assert!(check_ttl(Some(Duration::ZERO))
            .unwrap_err()
            .is_invalid_input());
        assert!(check_ttl(None).is_ok());
        let err = check_lease(Duration::ZERO).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid lease: a lock lease must be longer than zero"
        );
    }
}
