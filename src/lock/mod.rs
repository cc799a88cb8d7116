//! The locks, written once above the [`Backend`](crate::backend::Backend) trait.
//!
//! - [`RedLock`]: a lease lock on `<key>-lock`, used as a stampede guard
//!   ([`RedLock::acquire`]) or as an exclusive lease with renewal and
//!   fencing ([`RedLock::lock`], [`RedLock::try_lock`]).
//! - [`OptimisticLock`]: compare-and-set against the version seen at acquire.

mod claim;
mod guard;
pub(crate) mod held;
mod lease;
mod optimistic;
mod redlock;
mod synchronized;
pub(crate) mod wakeups;

pub use guard::LockGuard;
pub use lease::{LeaseGuard, LeaseState};
pub use optimistic::OptimisticLock;
pub use redlock::RedLock;
pub use synchronized::DEFAULT_SYNCHRONIZED_LEASE;

/// A lock owner's identity: a fresh uuid v4 in its 36-byte text form, so a
/// record read with `redis-cli` or `cache.get("k-lock")` is legible.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnerToken([u8; 36]);

impl OwnerToken {
    pub(crate) fn new() -> Self {
        let mut text = [0u8; 36];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        OwnerToken(text)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for OwnerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("<invalid>"))
    }
}
