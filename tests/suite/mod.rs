//! The cases of the shared behaviour suite, one module per area. Each case
//! takes a [`Store`](crate::common::Store): a fresh namespace on one backend.

pub mod bounds;
pub mod durations;
pub mod fill;
pub mod keyspace;
pub mod kv;
pub mod lease;
#[cfg(feature = "macros")]
pub mod macros;
pub mod many;
pub mod optimistic;
pub mod redlock;
pub mod stale;
pub mod surface;
pub mod writes;
