//! The benchmark harness of [`stampede`]: what the criterion benches
//! (`benches/ops.rs`) and the comparison (`benches/compare/`) share.
//!
//! - [`counting`]: a [`stampede::backend::Backend`] wrapper that logs
//!   every backend call, for counting them on the memory backend.
//! - [`servers`]: Redis, a Redis Cluster and memcached started the way the
//!   tests start them (the tests' own `tests/common/servers.rs` and
//!   `tests/common/topology.rs`), or named by `STAMPEDE_REDIS_URL` /
//!   `STAMPEDE_REDIS_CLUSTER_URL` / `STAMPEDE_MEMCACHED_URL`.
//! - [`floor`]: the same backend work done by hand with the same client
//!   crates, with none of the library around it.
//! - [`measure`]: timing loops (sequential, N concurrent tasks) and
//!   percentiles.
//! - [`stampede_run`]: N callers of `get_or_fill` on one key, with the
//!   number of fills and every caller's latency.
//! - [`wire`]: what reaches a server, counted: Redis commands through
//!   `MONITOR`, memcached requests through a counting proxy.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

/// The tests' server harness, compiled in from `tests/common/` with the
/// same module tree the tests give it: `topology`'s cluster code names
/// `crate::common::servers`, and its own submodules live in
/// `tests/common/topology/`. Only [`servers`] uses it.
#[allow(dead_code)]
#[path = "../../tests/common"]
mod common {
    pub mod servers;
    pub mod topology;
}

pub mod counting;
pub mod floor;
pub mod measure;
pub mod servers;
pub mod stampede_run;
pub mod wire;

/// A tokio runtime with as many workers as the machine has cores (at most
/// `workers`), every driver enabled: what the benchmarks run on.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.min(cores).max(1))
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}
