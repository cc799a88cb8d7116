//! Redis Cluster behaviour against a real 3-master, 3-replica cluster that
//! the tests start (`tests/common/topology.rs`); the shared behaviour suite
//! runs on it too (`tests/behaviour.rs`).
//!
//! - `scripts`: every Lua script, with keys on every master.
//! - `surface`: batches, counters and `clear` across every master.
//! - `wakeups`: sharded pub/sub wake-ups; a dropped link.
//! - `failover`: a master killed mid-run.
#![cfg(feature = "redis-cluster")]

use crate::common;

#[path = "redis_cluster/failover.rs"]
mod failover;
#[path = "redis_cluster/scripts.rs"]
mod scripts;
#[path = "redis_cluster/surface.rs"]
mod surface;
#[path = "redis_cluster/wakeups.rs"]
mod wakeups;
