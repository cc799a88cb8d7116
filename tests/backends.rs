//! Backend-specific behaviour against real servers, and how the locks
//! behave when a backend fails: what the shared suite (`tests/behaviour.rs`)
//! cannot say about every backend.
//!
//! - `redis`, `memcached`, `redis_cluster`, `redis_sentinel`: each backend's
//!   own behaviour (outages, wire format, failovers, …).
//! - `faults`: failures injected under the locks through a wrapper backend.
//! - `forwarding`: wrappers written with `forward_backend!` reach every
//!   method of the backend they wrap.
//! - `urls`: `Cache::from_url` for every scheme and parameter.
//! - `root_clear`: `clear` without a namespace.
//! - `topology`: the Redis Cluster and Sentinel harness proves itself.
//!
//! The shared servers come from `STAMPEDE_*_URL` (`scripts/test.sh` starts
//! them once) or are started on first use; tests that kill or disturb
//! servers start their own.

mod common;
#[allow(dead_code)]
mod suite;

#[path = "faults.rs"]
mod faults;
#[path = "forwarding.rs"]
mod forwarding;
#[path = "memcached.rs"]
mod memcached;
#[path = "redis.rs"]
mod redis;
#[path = "redis_cluster.rs"]
mod redis_cluster;
#[path = "redis_sentinel.rs"]
mod redis_sentinel;
#[path = "root_clear.rs"]
mod root_clear;
#[path = "topology.rs"]
mod topology;
#[path = "urls.rs"]
mod urls;
