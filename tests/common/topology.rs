//! Real Redis Cluster and Redis Sentinel setups for the tests.
//!
//! [`RedisCluster`] runs three masters and three replicas; [`RedisSentinel`]
//! a master, one replica and three sentinels. Every process is a
//! [`Server`](super::servers::Server), so a watchdog shell stops it when the
//! test process exits, and their config files live in one directory per
//! test process that another watchdog removes then. They are set up and
//! inspected through `redis-cli` (Debian's `redis-tools`), which the harness
//! insists on with instructions rather than skipping.
//!
//! Each test binary starts at most one shared cluster and one shared
//! sentinel setup ([`shared_cluster_url`], [`shared_sentinel_url`]) unless
//! `STAMPEDE_REDIS_CLUSTER_URL` / `STAMPEDE_REDIS_SENTINEL_URL` names one;
//! tests that kill nodes start their own.

mod cluster;
mod sentinel;

pub use cluster::RedisCluster;
pub use sentinel::RedisSentinel;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::servers::shell_quote;

/// Names a running cluster (`redis+cluster://…`) instead of starting one.
pub const CLUSTER_ENV: &str = "STAMPEDE_REDIS_CLUSTER_URL";
/// Names a running sentinel setup (`redis+sentinel://…`) instead.
pub const SENTINEL_ENV: &str = "STAMPEDE_REDIS_SENTINEL_URL";

/// The URL of this test binary's shared cluster: [`CLUSTER_ENV`]'s, or one
/// started on first use and stopped when the binary exits.
pub fn shared_cluster_url() -> String {
    std::env::var(CLUSTER_ENV).unwrap_or_else(|_| shared_cluster().url())
}

/// The URL of this test binary's shared sentinel setup: [`SENTINEL_ENV`]'s,
/// or one started on first use and stopped when the binary exits.
pub fn shared_sentinel_url() -> String {
    std::env::var(SENTINEL_ENV).unwrap_or_else(|_| shared_sentinel().url())
}

/// This test binary's own shared cluster (whatever [`CLUSTER_ENV`] says).
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start_shared)
}

/// This test binary's own shared sentinel setup (whatever
/// [`SENTINEL_ENV`] says).
pub fn shared_sentinel() -> &'static RedisSentinel {
    static SENTINEL: OnceLock<RedisSentinel> = OnceLock::new();
    SENTINEL.get_or_init(RedisSentinel::start_shared)
}

/// Runs `redis-cli -p <port> <args…>` against 127.0.0.1 and returns what
/// it printed (raw, without redis-cli's `(integer)` decorations). Error
/// replies come back as text (`ERR …`, `MOVED …`); a refused connection
/// fails the test.
pub fn redis_cli<S: AsRef<OsStr>>(port: u16, args: &[S]) -> String {
    try_redis_cli(port, args).unwrap_or_else(|e| panic!("redis-cli -p {port}: {e}"))
}

/// As [`redis_cli`], but a failed connection is an `Err` with redis-cli's
/// complaint, for polling nodes that may be down.
pub fn try_redis_cli<S: AsRef<OsStr>>(port: u16, args: &[S]) -> Result<String, String> {
    let output = run_redis_cli(["-h", "127.0.0.1", "-p", &port.to_string()], args);
    let stdout = String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("{} {}", stdout, stderr.trim()).trim().to_owned())
    }
}

/// Runs `redis-cli` with `before` then `args`, failing with install
/// instructions when it is missing.
fn run_redis_cli<S: AsRef<OsStr>>(before: [&str; 4], args: &[S]) -> Output {
    Command::new("redis-cli")
        .args(before)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}", missing_redis_cli(&e)))
}

/// Fails the test, with instructions, unless `redis-cli` runs.
pub(crate) fn require_redis_cli() {
    if let Err(e) = Command::new("redis-cli").arg("--version").output() {
        panic!("{}", missing_redis_cli(&e));
    }
}

fn missing_redis_cli(error: &std::io::Error) -> String {
    format!(
        "`redis-cli` could not run ({error}); the Redis Cluster and Sentinel tests need it \
         to set their servers up.\nInstall it with `sudo apt-get install -y redis-tools` \
         (Debian/Ubuntu), or run `scripts/test.sh`, which installs what is missing; or point \
         {CLUSTER_ENV} / {SENTINEL_ENV} at running setups."
    )
}

/// The `name:value` lines of `INFO` or `CLUSTER INFO` (which end in `\r`).
pub(crate) fn info_fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The first line of `ROLE` on `port`: `master`, `slave` or `sentinel`.
pub(crate) fn role(port: u16) -> Result<String, String> {
    let reply = try_redis_cli(port, &["ROLE"])?;
    Ok(reply.lines().next().unwrap_or_default().to_owned())
}

/// Calls `check` every 50 ms until it returns `Ok`, and returns its value
/// and how long that took; after `timeout` fails the test with the last
/// reason `check` gave.
pub(crate) fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return (value, start.elapsed()),
            Err(reason) if start.elapsed() >= timeout => {
                panic!("{what}: not after {timeout:?}; last seen: {reason}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

pub(crate) use super::servers::BUS_OFFSET;

/// One topology forms at a time in this process, and tests that start their
/// own (to kill nodes) run one at a time: forming a cluster or a sentinel
/// setup is the heaviest thing the tests do, and a node starved of CPU
/// while others form is voted out.
#[derive(Default)]
struct Turns {
    taken: Mutex<bool>,
    freed: Condvar,
}

/// A turn from [`Turns`], given back when dropped.
pub(crate) struct Turn(&'static Turns);

impl Turns {
    fn take(&'static self) -> Turn {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        while *taken {
            taken = self
                .freed
                .wait(taken)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *taken = true;
        Turn(self)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *self.0.taken.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.0.freed.notify_one();
    }
}

/// The turn to form a topology (held while it forms).
pub(crate) fn forming_turn() -> Turn {
    static FORMING: OnceLock<Turns> = OnceLock::new();
    FORMING.get_or_init(Turns::default).take()
}

/// The turn of a test that starts its own topology (held while it lives).
pub(crate) fn own_turn() -> Turn {
    static OWN: OnceLock<Turns> = OnceLock::new();
    OWN.get_or_init(Turns::default).take()
}

/// The working directory of the node on `port` (`--dir`), for its config
/// and the RDB file a replica saves when it syncs: without it, replicas
/// would write `dump.rdb` into the test's working directory, and every node
/// started there later would load it.
pub(crate) fn node_dir(port: u16) -> PathBuf {
    scratch_dir().join(format!("node-{port}"))
}

/// Makes [`node_dir`]`(port)` afresh: empty, with nothing left from an
/// earlier node on the same port.
pub(crate) fn fresh_node_dir(port: u16) -> PathBuf {
    let dir = node_dir(port);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a node directory");
    dir
}

/// This test process's directory for node and sentinel files. A
/// watchdog shell removes it once the process has exited.
pub(crate) fn scratch_dir() -> &'static Path {
    /// The directory and its watchdog, which is never waited for: it
    /// outlives this process by design.
    static SCRATCH: OnceLock<(PathBuf, Child)> = OnceLock::new();
    let (dir, _watchdog) = SCRATCH.get_or_init(|| {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("stampede-topology-{pid}"));
        std::fs::create_dir_all(&dir).expect("create the topology scratch directory");
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; rm -rf {}",
            shell_quote(&dir.display().to_string())
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("run sh to watch the scratch directory");
        (dir, watchdog)
    });
    dir
}
