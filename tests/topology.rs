//! The Redis Cluster and Sentinel test harness (`common::topology`) proves
//! itself here, through `redis-cli` alone: the setups start, serve keys,
//! survive losing a master, and stop with the test process.

use crate::common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::process;
use common::topology::{self, redis_cli, RedisCluster, RedisSentinel};

/// Far above the two to four seconds a failover takes here.
const FAILOVER_BOUND: Duration = Duration::from_secs(30);

fn unique(name: &str) -> String {
    format!("topology:{name}:{}", uuid::Uuid::new_v4().simple())
}

/// `WAIT 1` on `master`: returns once a replica has every write so far.
fn replicated(master: u16) {
    assert_eq!(
        redis_cli(master, &["WAIT", "1", "5000"]),
        "1",
        "WAIT on {master}"
    );
}

#[test]
fn a_cluster_serves_keys_from_any_node_and_survives_losing_a_master() {
    let mut cluster = RedisCluster::start();
    let key = unique("cluster");
    let owner = cluster.master_for_key(key.as_bytes());
    let others: Vec<u16> = cluster
        .nodes()
        .into_iter()
        .filter(|&p| p != owner)
        .collect();
    let moved = redis_cli(others[0], &["SET", &key, "before"]);
    assert!(
        moved.starts_with("MOVED"),
        "{} answered {moved:?}",
        others[0]
    );
    assert_eq!(redis_cli(others[0], &["-c", "SET", &key, "before"]), "OK");
    assert_eq!(redis_cli(others[1], &["-c", "GET", &key]), "before");
    replicated(owner);

    cluster.kill_master(owner);
    cluster.wait_healthy(FAILOVER_BOUND);
    let heir = cluster.master_for_key(key.as_bytes());
    assert_ne!(heir, owner, "the killed master still serves the key");
    assert_eq!(redis_cli(heir, &["GET", &key]), "before");
    assert_eq!(redis_cli(others[1], &["-c", "SET", &key, "after"]), "OK");

    cluster.restart_killed();
    let role = redis_cli(owner, &["ROLE"]);
    assert!(
        role.starts_with("slave"),
        "the old master came back as {role:?}"
    );
    assert_eq!(redis_cli(owner, &["-c", "GET", &key]), "after");
}

#[test]
fn sentinels_promote_the_in_sync_replica_when_the_master_dies() {
    let mut setup = RedisSentinel::start();
    let master = setup.master_port();
    let replica = *setup.data_nodes().iter().find(|&&p| p != master).unwrap();
    let key = unique("sentinel");
    assert_eq!(redis_cli(master, &["SET", &key, "before"]), "OK");
    replicated(master);
    assert_eq!(redis_cli(replica, &["GET", &key]), "before");
    let refused = redis_cli(replica, &["SET", &key, "on the replica"]);
    assert!(
        refused.starts_with("READONLY"),
        "replica answered {refused:?}"
    );

    setup.kill_master();
    let promoted = setup.wait_for_new_master(FAILOVER_BOUND);
    assert_eq!(promoted, replica);
    assert_eq!(setup.master_port(), replica);
    assert_eq!(redis_cli(promoted, &["GET", &key]), "before");
    assert_eq!(redis_cli(promoted, &["SET", &key, "after"]), "OK");
}

/// Starts both shared setups in a child test process that then exits
/// without dropping them (they live in statics), and checks that every
/// port they listened on closes and their scratch directory goes.
#[test]
fn shared_setups_stop_when_the_test_process_exits() {
    let mut child = process::spawn("shared_setups_child", &[]);
    let mut lines = process::report_lines(child.stdout.take().expect("piped stdout"));
    let ports: Vec<u16> = process::next_report(&mut lines)
        .expect("the child reports its ports")
        .split(',')
        .map(|port| port.parse().expect("a port"))
        .collect();
    let scratch = process::next_report(&mut lines).expect("the child reports its scratch dir");
    assert_eq!(ports.len(), 6 + 2 + 3, "cluster, data and sentinel nodes");
    for &port in &ports {
        assert!(listening(port), "port {port} was not serving in the child");
    }
    process::expect_success(child, "the child");

    let deadline = Instant::now() + Duration::from_secs(10);
    while ports.iter().any(|&port| listening(port)) || std::path::Path::new(&scratch).exists() {
        let open: Vec<_> = ports.iter().filter(|&&port| listening(port)).collect();
        assert!(
            Instant::now() < deadline,
            "still open: {open:?}; {scratch} left behind"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The child of [`shared_setups_stop_when_the_test_process_exits`].
#[test]
#[ignore = "run by shared_setups_stop_when_the_test_process_exits"]
fn shared_setups_child() {
    assert!(process::is_child(), "only runs as a child process");
    let cluster = topology::shared_cluster();
    let sentinel = topology::shared_sentinel();
    for (kind, url) in [
        (common::Kind::RedisCluster, topology::shared_cluster_url()),
        (common::Kind::RedisSentinel, topology::shared_sentinel_url()),
    ] {
        let store = common::Store::new(kind, "shared");
        assert!(store.url().starts_with(&url), "{kind:?}: {}", store.url());
    }
    let ports: Vec<String> = [
        cluster.nodes(),
        sentinel.data_nodes(),
        sentinel.sentinel_ports(),
    ]
    .concat()
    .iter()
    .map(u16::to_string)
    .collect();
    process::report(ports.join(","));
    process::report(topology::scratch_dir().display());
}
