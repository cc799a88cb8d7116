//! The locks, written once above the [`Backend`](crate::backend::Backend) trait.
//!
//! - [`RedLock`]: a lease lock on `<key>-lock`, used as a stampede guard
//!   ([`RedLock::acquire`]) or as an exclusive lease with renewal and
//!   fencing ([`RedLock::lock`], [`RedLock::try_lock`]).
//! - [`OptimisticLock`]: compare-and-set against the version seen at acquire.

mod claim;
mod guard;
mod lease;
mod optimistic;
mod redlock;
mod synchronized;
pub(crate) mod update;

pub(crate) use claim::release_record;
pub use guard::LockGuard;
pub use lease::{LeaseGuard, LeaseState};
pub use optimistic::OptimisticLock;
pub use redlock::RedLock;
pub use synchronized::DEFAULT_SYNCHRONIZED_LEASE;

pub(crate) use crate::ctx::held::OwnerToken;
