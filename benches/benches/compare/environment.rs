//! The machine and the versions the figures were measured with.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

/// One `name: value` line each.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    pub lines: Vec<(String, String)>,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|out| out.lines().next().map(str::to_owned))
        .unwrap_or_else(|| format!("({program} not found)"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `redis_version` from the server's `INFO server`.
async fn redis_version(url: &str) -> String {
    let asked = async {
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_owned())
    };
    asked.await.unwrap_or_else(|| "unknown".to_owned())
}

/// The shape of the cluster behind `cluster_url`, as its first seed node
/// sees it (`CLUSTER INFO`), with that node's version.
async fn cluster_shape(cluster_url: &str) -> String {
    let Some(node) = stampede_benches::servers::cluster_nodes(cluster_url)
        .into_iter()
        .next()
    else {
        return "unknown".to_owned();
    };
    let asked = async {
        let client = redis::Client::open(node.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .ok()?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_owned())
        };
        Some(format!(
            "{} masters, {} nodes",
            field("cluster_size")?,
            field("cluster_known_nodes")?
        ))
    };
    let shape = asked.await.unwrap_or_else(|| "unknown shape".to_owned());
    format!("{shape}, redis-server {}", redis_version(&node).await)
}

/// The server's answer to `version`.
fn memcached_version(addr: &str) -> String {
    let asked = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.write_all(b"version\r\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line.trim().trim_start_matches("VERSION ").to_owned())
    };
    asked().unwrap_or_else(|_| "unknown".to_owned())
}

/// The version of `package` in the workspace's Cargo.lock.
fn locked_version(package: &str) -> String {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            if let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = ")) {
                return version.trim_matches('"').to_owned();
            }
        }
    }
    "unknown".to_owned()
}

impl Environment {
    pub async fn gather(
        redis_url: &str,
        cluster_url: &str,
        memcached_addr: &str,
        seed: Option<&serde_json::Value>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|_| std::env::consts::OS.to_owned());
        let seed_version = |name: &str| {
            seed.and_then(|seed| seed["versions"][name].as_str())
                .unwrap_or("not run")
                .to_owned()
        };
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
        let mut lines = vec![
            ("CPU".to_owned(), cpu_model()),
            ("cores".to_owned(), cores.to_string()),
            (
                "kernel".to_owned(),
                format!("{} {kernel}", std::env::consts::OS),
            ),
            ("rustc".to_owned(), first_line(&rustc, &["--version"])),
            ("redis-server".to_owned(), redis_version(redis_url).await),
            ("Redis Cluster".to_owned(), cluster_shape(cluster_url).await),
            ("memcached".to_owned(), memcached_version(memcached_addr)),
            ("Python".to_owned(), seed_version("python")),
            ("aiocache".to_owned(), seed_version("aiocache")),
            (
                "redis-py, aiomcache".to_owned(),
                format!(
                    "{}, {}",
                    seed_version("redis-py"),
                    seed_version("aiomcache")
                ),
            ),
        ];
        for package in [
            "rslock",
            "redis",
            "deadpool-redis",
            "memcache",
            "moka",
            "tokio",
        ] {
            lines.push((format!("{package} (crate)"), locked_version(package)));
        }
        Environment { lines }
    }
}
