//! memcached-specific behaviour, against real servers: what the shared
//! suite (`tests/behaviour.rs`) cannot say about every backend.
//!
//! - `keys`: long keys are mapped, bad keys refused before anything is sent,
//!   oversized values refused, long TTLs kept.
//! - `locks`: owner-checked release racing a new holder, sub-second and
//!   tiny leases, fencing tokens.
//! - `names`: no key a caller writes is a fencing counter or another key's
//!   mapped form; fencing counters expire once idle.
//! - `one_trip`: release and extend in one round trip with the CAS
//!   remembered from the create; the two-trip path when nothing is
//!   remembered; the memory of lost locks swept.
//! - `fills`: round trips of a fill on native leases, a foreign lease that
//!   never runs out, stale refresh tokens won by plain reads.
//! - `failures`: a killed, restarted, hung or frozen (`SIGSTOP`) server,
//!   and a fencing token that comes back after the lease.
//! - `processes`: a waiter in another OS process; several servers in one URL.
//! - `polls`: a waiter in another handle learns of a short fill or lock a
//!   few milliseconds after it ends, and polls no more than the schedule
//!   says over a long wait.
//! - `batches`: long keys in every batch, one round trip over two servers,
//!   batched fill reads and stores, leases of a half-failed batch given back.
//! - `near`: the near cache across two nodes: the trust window, checks by
//!   CAS without the value, TTLs, deletes, own writes, what is not copied.
//! - `surface`: counters shared with memcached's `ma`, below zero and at the
//!   edge of `i64`; `touch` and `exists` on placeholders; `clear`.
#![cfg(feature = "memcached")]

use crate::common;
#[allow(unused_imports)]
use crate::suite;

#[path = "memcached/batches.rs"]
mod batches;
#[path = "memcached/failures.rs"]
mod failures;
#[path = "memcached/fills.rs"]
mod fills;
#[path = "memcached/keys.rs"]
mod keys;
#[path = "memcached/locks.rs"]
mod locks;
#[path = "memcached/names.rs"]
mod names;
#[path = "memcached/near.rs"]
mod near;
#[path = "memcached/one_trip.rs"]
mod one_trip;
#[path = "memcached/polls.rs"]
mod polls;
#[path = "memcached/processes.rs"]
mod processes;
#[path = "memcached/proxy.rs"]
mod proxy;
#[path = "memcached/surface.rs"]
mod surface;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use stampede::backend::memcached::{MemcachedBackend, MemcachedConfig};

use crate::common::servers;

/// The shared server of this test binary.
fn shared_url() -> String {
    servers::shared_url(servers::MEMCACHED)
}

/// The servers of a `memcached://` URL, as `host:port`.
fn servers_of(url: &str) -> Vec<String> {
    let rest = url
        .strip_prefix("memcached://")
        .expect("a memcached:// URL");
    let hosts = rest.split('?').next().unwrap_or_default();
    hosts.split(',').map(str::to_owned).collect()
}

/// A backend handle of its own (its own connections, as another process
/// would have) on the servers of `url`.
async fn backend(url: &str) -> MemcachedBackend {
    MemcachedConfig::new(servers_of(url))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// A key no other test uses.
fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// The `stats` of the memcached server on `port`, read over a connection of
/// its own.
fn server_stats(port: u16) -> HashMap<String, u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect for stats");
    stream.write_all(b"stats\r\n").expect("send stats");
    let mut stats = HashMap::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("read stats");
        if line == "END" {
            break;
        }
        let mut words = line.split_whitespace().skip(1);
        if let (Some(name), Some(value)) = (words.next(), words.next()) {
            if let Ok(value) = value.parse() {
                stats.insert(name.to_owned(), value);
            }
        }
    }
    stats
}
