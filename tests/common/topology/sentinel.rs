//! A Redis master with one replica, watched by three sentinels (quorum 2)
//! under the name [`MASTER_NAME`], on loopback.
//!
//! The sentinels start with a long [`SETUP_DOWN_AFTER_MS`], so that a
//! master starved of CPU on a loaded machine is not failed over while the
//! setup forms or serves; a setup a test starts for itself (to kill the
//! master) then lowers it to [`DOWN_AFTER_MS`], so a killed master is
//! replaced by its replica within a few seconds.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{
    forming_turn, fresh_node_dir, info_fields, node_dir, own_turn, poll, require_redis_cli, role,
    try_redis_cli, Turn, SENTINEL_ENV,
};
use crate::common::servers::{self, reserve_port, Server, ServerKind};

/// The name the sentinels know the master by.
pub const MASTER_NAME: &str = "mymaster";
/// How long a master may go unanswered before a sentinel calls it down,
/// while the setup forms and in the shared setup, which no test kills.
pub const SETUP_DOWN_AFTER_MS: u64 = 15_000;
/// The same in a setup a test starts for itself, once formed.
pub const DOWN_AFTER_MS: u64 = 2_000;
/// How long a failover may take; a sentinel that lost an election waits
/// twice this before it tries again.
pub const FAILOVER_TIMEOUT_MS: u64 = 2000;
const SENTINELS: usize = 3;
/// How long the setup gets to settle.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A data node: the standalone settings, its own directory (for the RDB
/// file a replica saves), and replication that starts at once instead of
/// after redis' default 5 s wait for more replicas.
const DATA_NODE: ServerKind = ServerKind {
    program: "redis-server",
    package: "redis-server",
    env_var: SENTINEL_ENV,
    scheme: "redis",
    args: |port| {
        let mut args = (servers::REDIS.args)(port);
        args.extend([
            "--dir".to_owned(),
            node_dir(port).display().to_string(),
            "--repl-diskless-sync-delay".to_owned(),
            "0".to_owned(),
        ]);
        args
    },
};

/// A sentinel, configured by the file [`start`](RedisSentinel::start)
/// writes (sentinels rewrite their file as they learn the setup).
const SENTINEL: ServerKind = ServerKind {
    program: "redis-server",
    package: "redis-server",
    env_var: SENTINEL_ENV,
    scheme: "redis",
    args: |port| {
        vec![
            sentinel_conf(port).display().to_string(),
            "--sentinel".to_owned(),
        ]
    },
};

fn sentinel_conf(port: u16) -> PathBuf {
    node_dir(port).join("sentinel.conf")
}

/// Starts a node of `kind` on a reserved port, in a fresh [`node_dir`];
/// `prepare` runs first, given the port.
fn start_node(kind: ServerKind, prepare: impl FnOnce(u16)) -> Server {
    let reserved = reserve_port();
    fresh_node_dir(reserved.port);
    prepare(reserved.port);
    Server::start_on(kind, reserved)
}

/// The config of a sentinel on `port` watching the master on `master`.
fn sentinel_config(port: u16, master: u16) -> String {
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         dir {dir:?}\n\
         protected-mode no\n\
         loglevel warning\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {SETUP_DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = node_dir(port),
    )
}

/// A master, its replica and three sentinels, stopped when dropped (or when
/// the test process exits).
pub struct RedisSentinel {
    /// The master it started with, then the replica.
    data: Vec<Server>,
    sentinels: Vec<Server>,
    /// Data nodes killed.
    killed: Vec<u16>,
    killed_at: Option<Instant>,
    /// A test's own setup holds the turn of tests that start their own.
    _turn: Option<Turn>,
}

impl RedisSentinel {
    /// Starts a setup of its own for a test that kills the master: waits
    /// for any other such test in this process to finish, forms the setup
    /// (see [`start_shared`](Self::start_shared)), then lowers the
    /// sentinels' down-after time to [`DOWN_AFTER_MS`].
    pub fn start() -> RedisSentinel {
        let turn = own_turn();
        let mut setup = RedisSentinel::start_shared();
        for port in setup.sentinel_ports() {
            let after = DOWN_AFTER_MS.to_string();
            let args = [
                "SENTINEL",
                "SET",
                MASTER_NAME,
                "down-after-milliseconds",
                &after,
            ];
            assert_eq!(
                super::redis_cli(port, &args),
                "OK",
                "SENTINEL SET on {port}"
            );
        }
        setup._turn = Some(turn);
        setup
    }

    /// Starts the master and its replica, waits until the replica is in
    /// sync, then starts the sentinels and waits (up to 30 s) until each
    /// knows the master, the replica and the two other sentinels; one
    /// cluster or sentinel setup forms at a time.
    pub fn start_shared() -> RedisSentinel {
        require_redis_cli();
        let _forming = forming_turn();
        let started = Instant::now();
        let master = start_node(DATA_NODE, |_| ());
        let replica = start_node(DATA_NODE, |_| ());
        let reply = super::redis_cli(
            replica.port,
            &["REPLICAOF", "127.0.0.1", &master.port.to_string()],
        );
        assert_eq!(reply, "OK", "REPLICAOF on {}", replica.port);
        poll("the replica to sync", START_TIMEOUT, || {
            in_sync(replica.port)
        });
        // Started after the sync, so that the master's first INFO already
        // lists the replica (sentinels ask again only every 10 s).
        let sentinels = (0..SENTINELS)
            .map(|_| {
                start_node(SENTINEL, |port| {
                    std::fs::write(sentinel_conf(port), sentinel_config(port, master.port))
                        .expect("write a sentinel config")
                })
            })
            .collect();
        let setup = RedisSentinel {
            data: vec![master, replica],
            sentinels,
            killed: Vec::new(),
            killed_at: None,
            _turn: None,
        };
        poll("the sentinels to know the setup", START_TIMEOUT, || {
            setup.sentinels_ready()
        });
        eprintln!(
            "redis sentinel: data {:?}, sentinels {:?}, ready in {:?}",
            setup.data_nodes(),
            setup.sentinel_ports(),
            started.elapsed()
        );
        setup
    }

    /// `redis+sentinel://<the three sentinels>/mymaster`.
    pub fn url(&self) -> String {
        let sentinels: Vec<_> = self
            .sentinel_ports()
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", sentinels.join(","))
    }

    /// The ports of the master and the replica it started with.
    pub fn data_nodes(&self) -> Vec<u16> {
        self.data.iter().map(|node| node.port).collect()
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|node| node.port).collect()
    }

    /// The current master's port, as the first sentinel reports it.
    pub fn master_port(&self) -> u16 {
        let sentinel = self.sentinels[0].port;
        master_addr(sentinel).unwrap_or_else(|e| panic!("sentinel {sentinel}: {e}"))
    }

    /// Kills the current master at once (SIGKILL).
    pub fn kill_master(&mut self) {
        let port = self.master_port();
        let node = self
            .data
            .iter_mut()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("the sentinels name {port}, not one of ours"));
        node.kill();
        self.killed.push(port);
        self.killed_at = Some(Instant::now());
    }

    /// Waits until every sentinel names the same master, not a killed one,
    /// and that node answers `ROLE` as a master; prints how long that took
    /// since the kill and returns its port.
    pub fn wait_for_new_master(&self, timeout: Duration) -> u16 {
        let (port, waited) = poll("a new master", timeout, || self.agreed_master());
        let since = self.killed_at.map_or(waited, |at| at.elapsed());
        eprintln!("sentinels promoted {port} {since:?} after the kill");
        port
    }

    /// The master every sentinel names, if they agree on a live one that
    /// says it is a master.
    fn agreed_master(&self) -> Result<u16, String> {
        let named: HashSet<u16> = self
            .sentinel_ports()
            .into_iter()
            .map(master_addr)
            .collect::<Result<_, _>>()?;
        let [port] = named.iter().copied().collect::<Vec<_>>()[..] else {
            return Err(format!("the sentinels name {named:?}"));
        };
        if self.killed.contains(&port) {
            return Err(format!("the sentinels still name the killed {port}"));
        }
        match role(port)?.as_str() {
            "master" => Ok(port),
            other => Err(format!("{port} says it is a {other}")),
        }
    }

    /// `Ok` once every sentinel sees the master up with one replica and
    /// two other sentinels.
    fn sentinels_ready(&self) -> Result<(), String> {
        for port in self.sentinel_ports() {
            let reply = try_redis_cli(port, &["SENTINEL", "MASTER", MASTER_NAME])?;
            let fields = pairs(&reply);
            for (field, want) in [
                ("flags", "master"),
                ("num-slaves", "1"),
                ("num-other-sentinels", "2"),
            ] {
                let seen = fields.get(field).map(String::as_str);
                if seen != Some(want) {
                    return Err(format!("sentinel {port}: {field} is {seen:?}"));
                }
            }
        }
        Ok(())
    }
}

/// `Ok` once the replica on `port` has a live link to its master.
fn in_sync(port: u16) -> Result<(), String> {
    let info = info_fields(&try_redis_cli(port, &["INFO", "replication"])?);
    match info.get("master_link_status").map(String::as_str) {
        Some("up") => Ok(()),
        other => Err(format!("replica {port}: master_link_status is {other:?}")),
    }
}

/// The master's port according to the sentinel on `sentinel`.
fn master_addr(sentinel: u16) -> Result<u16, String> {
    let reply = try_redis_cli(
        sentinel,
        &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
    )?;
    let port = reply.lines().nth(1).unwrap_or_default();
    port.parse()
        .map_err(|_| format!("sentinel {sentinel} answered {reply:?}"))
}

/// A flat `name value name value …` reply, as redis-cli prints it (one per
/// line), as a map.
fn pairs(reply: &str) -> HashMap<String, String> {
    let lines: Vec<&str> = reply.lines().collect();
    lines
        .chunks(2)
        .filter_map(|pair| Some((pair[0].to_owned(), pair.get(1)?.to_string())))
        .collect()
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let ports = [self.data_nodes(), self.sentinel_ports()].concat();
        self.sentinels.clear();
        self.data.clear();
        for port in ports {
            let _ = std::fs::remove_dir_all(node_dir(port));
        }
    }
}
