//! A Redis Cluster of three masters and three replicas on loopback.
//!
//! The nodes form with a long `cluster-node-timeout` (15 s), so that a node
//! starved of CPU on a loaded machine is not voted out while the cluster
//! forms or serves; a cluster a test starts for itself (to kill a node)
//! then lowers it to 2 s, so that a killed master is voted out and replaced
//! by its replica in three to four seconds. "Healthy" means: every live node says `cluster_state:ok` with
//! all 16384 slots served, every slot's master is a live node that no live
//! node suspects, and every live replica is in sync with a live master.

use std::ffi::OsStr;
use std::ops::RangeInclusive;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    forming_turn, fresh_node_dir, info_fields, node_dir, own_turn, poll, require_redis_cli, role,
    try_redis_cli, Turn, BUS_OFFSET, CLUSTER_ENV,
};
use crate::common::servers::{self, reserve_cluster_port, Server, ServerKind};

/// How long a node may go unanswered before the others suspect it, while
/// the cluster forms and in the shared cluster, which no test kills.
pub const SETUP_NODE_TIMEOUT_MS: u64 = 15_000;
/// The same in a cluster a test starts for itself, once formed: a failover
/// takes about this plus one to two seconds (gossip, the replica's election
/// delay and vote).
pub const NODE_TIMEOUT_MS: u64 = 2_000;
const SLOTS: usize = 16384;
const MASTERS: usize = 3;
/// How long the cluster gets to form (or re-form after a restart).
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// A cluster node: the standalone settings plus cluster mode, its own
/// directory (for its `nodes.conf` and RDB file), and replication that
/// starts at once.
const CLUSTER_NODE: ServerKind = ServerKind {
    program: "redis-server",
    package: "redis-server",
    env_var: CLUSTER_ENV,
    scheme: "redis",
    args: |port| {
        let mut args = (servers::REDIS.args)(port);
        args.extend([
            "--cluster-enabled".to_owned(),
            "yes".to_owned(),
            "--dir".to_owned(),
            node_dir(port).display().to_string(),
            "--cluster-config-file".to_owned(),
            "nodes.conf".to_owned(),
            "--cluster-node-timeout".to_owned(),
            SETUP_NODE_TIMEOUT_MS.to_string(),
            "--repl-diskless-sync-delay".to_owned(),
            "0".to_owned(),
        ]);
        args
    },
};

/// Three masters and three replicas, stopped when dropped (or when the test
/// process exits).
pub struct RedisCluster {
    nodes: Vec<Server>,
    /// The masters when the cluster formed: the URL's seed nodes.
    seeds: Vec<u16>,
    /// Nodes killed and not restarted.
    killed: Vec<u16>,
    /// When the last node was killed.
    killed_at: Option<Instant>,
    /// A test's own cluster holds the turn of tests that start their own.
    _turn: Option<Turn>,
}

impl RedisCluster {
    /// Starts a cluster of its own for a test that kills or disturbs
    /// nodes: waits for any other such test in this process to finish, forms
    /// the cluster (see [`start_shared`](Self::start_shared)), then lowers
    /// every node's timeout to [`NODE_TIMEOUT_MS`] for quick failovers.
    pub fn start() -> RedisCluster {
        let turn = own_turn();
        let mut cluster = RedisCluster::start_shared();
        for port in cluster.nodes() {
            let timeout = NODE_TIMEOUT_MS.to_string();
            let reply =
                super::redis_cli(port, &["CONFIG", "SET", "cluster-node-timeout", &timeout]);
            assert_eq!(reply, "OK", "CONFIG SET cluster-node-timeout on {port}");
        }
        cluster._turn = Some(turn);
        cluster
    }

    /// Starts six nodes on reserved ports, joins them with `redis-cli
    /// --cluster create`, and waits (up to 30 s) until the cluster is
    /// healthy; one cluster or sentinel setup forms at a time.
    pub fn start_shared() -> RedisCluster {
        require_redis_cli();
        let _forming = forming_turn();
        let started = Instant::now();
        let reserved: Vec<_> = (0..2 * MASTERS).map(|_| reserve_cluster_port()).collect();
        let ports: Vec<u16> = reserved.iter().map(|r| r.port).collect();
        for &port in &ports {
            // A node that finds a `nodes.conf` rejoins that file's cluster.
            fresh_node_dir(port);
        }
        let nodes = reserved
            .into_iter()
            .map(|reserved| Server::start_on(CLUSTER_NODE, reserved))
            .collect();
        let mut cluster = RedisCluster {
            nodes,
            seeds: Vec::new(),
            killed: Vec::new(),
            killed_at: None,
            _turn: None,
        };
        create(&ports);
        poll("the new cluster to be healthy", FORM_TIMEOUT, || {
            cluster.health()
        });
        cluster.seeds = ports
            .iter()
            .copied()
            .filter(|&port| role(port).as_deref() == Ok("master"))
            .collect();
        eprintln!(
            "redis cluster on ports {ports:?} (buses +{BUS_OFFSET}) ready in {:?}",
            started.elapsed()
        );
        cluster
    }

    /// `redis+cluster://…` naming the three masters the cluster formed with.
    /// After a failover one of them may be down or a replica; clients are
    /// expected to find the rest from any live seed.
    pub fn url(&self) -> String {
        let nodes: Vec<_> = self
            .seeds
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The ports of all six nodes, killed ones included.
    pub fn nodes(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The ports of the nodes that have not been killed.
    pub fn live_nodes(&self) -> Vec<u16> {
        self.nodes()
            .into_iter()
            .filter(|port| !self.killed.contains(port))
            .collect()
    }

    /// The port of the master serving `key`'s slot, as a live node sees it.
    pub fn master_for_key(&self, key: &[u8]) -> u16 {
        let port = self.live_nodes()[0];
        let args = [
            OsStr::new("CLUSTER"),
            OsStr::new("KEYSLOT"),
            OsStr::from_bytes(key),
        ];
        let reply = super::redis_cli(port, &args);
        let slot: u16 = reply
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT said {reply:?}"));
        let view = parse_nodes(&super::redis_cli(port, &["CLUSTER", "NODES"]));
        view.iter()
            .find(|node| node.serves(slot))
            .unwrap_or_else(|| panic!("node {port} knows no master for slot {slot}"))
            .port
    }

    /// Kills the master on `port` at once (SIGKILL).
    pub fn kill_master(&mut self, port: u16) {
        assert_eq!(role(port).as_deref(), Ok("master"), "node {port}'s role");
        let node = self.node(port);
        node.kill();
        self.killed.push(port);
        self.killed_at = Some(Instant::now());
    }

    /// Waits until the cluster is healthy without the killed nodes (a
    /// replica promoted in place of each killed master), prints how long
    /// that took since the kill, and returns the time waited here.
    pub fn wait_healthy(&self, timeout: Duration) -> Duration {
        let ((), waited) = poll("the cluster to be healthy", timeout, || self.health());
        match self.killed_at {
            Some(at) => eprintln!("cluster healthy {:?} after the kill", at.elapsed()),
            None => eprintln!("cluster healthy after {waited:?}"),
        }
        waited
    }

    /// Starts the killed nodes again on their ports, with their
    /// `nodes.conf`, so that each rejoins as a replica of the master that
    /// took its place; waits until the cluster is healthy with all six.
    pub fn restart_killed(&mut self) {
        for port in std::mem::take(&mut self.killed) {
            self.node(port).restart();
        }
        self.killed_at = None;
        self.wait_healthy(FORM_TIMEOUT);
    }

    fn node(&mut self, port: u16) -> &mut Server {
        self.nodes
            .iter_mut()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
    }

    /// `Ok` when healthy (see the module docs), else what is not yet.
    fn health(&self) -> Result<(), String> {
        let live = self.live_nodes();
        for &port in &live {
            let info = info_fields(&try_redis_cli(port, &["CLUSTER", "INFO"])?);
            for (field, want) in [("cluster_state", "ok"), ("cluster_slots_ok", "16384")] {
                let seen = info.get(field).map(String::as_str);
                if seen != Some(want) {
                    return Err(format!("node {port}: {field} is {seen:?}"));
                }
            }
            let view = parse_nodes(&try_redis_cli(port, &["CLUSTER", "NODES"])?);
            check_view(port, &view, &live)?;
        }
        Ok(())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let ports = self.nodes();
        self.nodes.clear();
        for port in ports {
            let _ = std::fs::remove_dir_all(node_dir(port));
        }
    }
}

/// Joins the nodes on `ports` into a cluster with one replica per master.
fn create(ports: &[u16]) {
    let output = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(ports.iter().map(|port| format!("127.0.0.1:{port}")))
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        output.status.success(),
        "redis-cli --cluster create {ports:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    id: String,
    port: u16,
    flags: String,
    /// The id of the master a replica follows (`-` for masters).
    master: String,
    slots: Vec<RangeInclusive<u16>>,
}

impl NodeLine {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.split(',').any(|f| f == flag)
    }

    /// Whether some node suspects (`fail?`) or has voted out (`fail`) it.
    fn failing(&self) -> bool {
        self.has_flag("fail") || self.has_flag("fail?")
    }

    fn serves(&self, slot: u16) -> bool {
        self.has_flag("master") && self.slots.iter().any(|range| range.contains(&slot))
    }
}

/// Parses `CLUSTER NODES`: `<id> <ip:port@bus[,host]> <flags> <master>
/// <ping> <pong> <epoch> <link> <slot or range>…`.
fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 8, "odd CLUSTER NODES line {line:?}");
            let address = fields[1].split('@').next().unwrap_or_default();
            let port = address.rsplit(':').next().unwrap_or_default();
            NodeLine {
                id: fields[0].to_owned(),
                port: port.parse().unwrap_or(0),
                flags: fields[2].to_owned(),
                master: fields[3].to_owned(),
                slots: fields[8..].iter().filter_map(|s| parse_slots(s)).collect(),
            }
        })
        .collect()
}

/// `5` or `0-5460`; `None` for the `[slot->-id]` marks of a migration.
fn parse_slots(text: &str) -> Option<RangeInclusive<u16>> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    Some(low.parse().ok()?..=high.parse().ok()?)
}

/// Checks node `port`'s `view` of the cluster against the `live` ports.
fn check_view(port: u16, view: &[NodeLine], live: &[u16]) -> Result<(), String> {
    let owners: Vec<&NodeLine> = view.iter().filter(|n| !n.slots.is_empty()).collect();
    let served: usize = owners
        .iter()
        .flat_map(|n| n.slots.iter())
        .map(|r| r.len())
        .sum();
    if owners.len() != MASTERS || served != SLOTS {
        return Err(format!(
            "node {port} sees {served} slots on {} nodes",
            owners.len()
        ));
    }
    for owner in &owners {
        if !live.contains(&owner.port) || owner.failing() || !owner.has_flag("master") {
            let (at, flags) = (owner.port, &owner.flags);
            return Err(format!("node {port} sees slots on {at} ({flags})"));
        }
    }
    for &other in live {
        let Some(node) = view.iter().find(|n| n.port == other) else {
            return Err(format!("node {port} does not know node {other}"));
        };
        if node.failing() {
            return Err(format!("node {port} sees {other} as {}", node.flags));
        }
        let serves = owners.iter().any(|m| m.port == other);
        let follows = node.has_flag("slave") && owners.iter().any(|m| m.id == node.master);
        if !serves && !follows {
            let flags = &node.flags;
            return Err(format!(
                "node {port} sees {other} ({flags}) neither serving slots nor following a live master"
            ));
        }
    }
    let me = view.iter().find(|n| n.has_flag("myself"));
    if me.is_some_and(|me| me.has_flag("slave")) {
        let info = info_fields(&try_redis_cli(port, &["INFO", "replication"])?);
        let link = info.get("master_link_status").map(String::as_str);
        if link != Some("up") {
            return Err(format!("replica {port}: master_link_status is {link:?}"));
        }
    }
    Ok(())
}
