//! Real Redis and memcached servers for the tests.
//!
//! Each test binary starts at most one shared server per kind, on a
//! reserved loopback port with persistence off, unless `STAMPEDE_REDIS_URL` /
//! `STAMPEDE_MEMCACHED_URL` names one (`scripts/test.sh` starts them once for
//! every binary). A watchdog shell stops the server when
//! the test process exits (Rust test binaries have no global teardown).
//! A missing server binary fails the test with instructions; it never skips.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What it takes to run one kind of server.
#[derive(Clone, Copy, Debug)]
pub struct ServerKind {
    pub program: &'static str,
    pub package: &'static str,
    pub env_var: &'static str,
    pub scheme: &'static str,
    /// The server's command-line arguments for a given port.
    pub args: fn(u16) -> Vec<String>,
}

pub const REDIS: ServerKind = ServerKind {
    program: "redis-server",
    package: "redis-server",
    env_var: "STAMPEDE_REDIS_URL",
    scheme: "redis",
    args: |port| {
        [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
        ]
        .map(String::from)
        .to_vec()
    },
};

/// Redis serving TLS only, with the self-signed certificate that
/// [`start_tls_redis`] makes in [`tls_dir`]`(port)`.
pub const REDIS_TLS: ServerKind = ServerKind {
    program: "redis-server",
    package: "redis-server",
    env_var: "STAMPEDE_REDIS_TLS_URL",
    scheme: "rediss",
    args: |port| {
        let dir = tls_dir(port);
        let file = |name: &str| dir.join(name).display().to_string();
        [
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            file("cert.pem"),
            "--tls-key-file".to_owned(),
            file("key.pem"),
            "--tls-ca-cert-file".to_owned(),
            file("cert.pem"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ]
        .into_iter()
        .chain(
            [
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ]
            .map(String::from),
        )
        .collect()
    },
};

/// Where the TLS server on `port` keeps its certificate and key.
pub fn tls_dir(port: u16) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("stampede-tls-{}-{port}", std::process::id()))
}

/// Starts a TLS-only Redis on a free port, with a fresh self-signed
/// certificate for `localhost` made by the `openssl` command.
pub fn start_tls_redis() -> Server {
    let reserved = reserve_port();
    let port = reserved.port;
    let dir = tls_dir(port);
    std::fs::create_dir_all(&dir).expect("create the TLS directory");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!("`openssl` is needed to make a test certificate ({e}); install it with `sudo apt-get install -y openssl`")
        });
    assert!(status.success(), "openssl could not make a certificate");
    Server::start_on(REDIS_TLS, reserved)
}

pub const MEMCACHED: ServerKind = ServerKind {
    program: "memcached",
    package: "memcached",
    env_var: "STAMPEDE_MEMCACHED_URL",
    scheme: "memcached",
    // `-u root` only matters when run as root, where memcached insists on it.
    args: |port| {
        [
            "-p",
            &port.to_string(),
            "-l",
            "127.0.0.1",
            "-U",
            "0",
            "-m",
            "64",
            "-t",
            "2",
            "-u",
            "root",
        ]
        .map(String::from)
        .to_vec()
    },
};

/// A server process this test binary started.
pub struct Server {
    kind: ServerKind,
    pub port: u16,
    watchdog: Option<Child>,
    server_pid: u32,
    /// Keeps the port ours, across restarts, until the server is dropped.
    reserved: Option<Reserved>,
}

impl Server {
    /// Starts a new server of `kind` on a port reserved for it, waiting
    /// until it accepts connections.
    pub fn start(kind: ServerKind) -> Server {
        Server::start_on(kind, reserve_port())
    }

    /// Starts a server of `kind` on the `reserved` port, which stays
    /// reserved until the server is dropped.
    pub fn start_on(kind: ServerKind, reserved: Reserved) -> Server {
        let port = reserved.port;
        check_installed(kind);
        let command = std::iter::once(kind.program.to_string())
            .chain((kind.args)(port).into_iter().map(|arg| shell_quote(&arg)))
            .collect::<Vec<_>>()
            .join(" ");
        // The shell prints the server's pid, then stays until either the test
        // process or the server is gone, and stops the server on its way out.
        let script = format!(
            "{command} >/dev/null 2>&1 & srv=$!; echo $srv; \
             trap 'kill $srv 2>/dev/null; exit' TERM INT; \
             while kill -0 {parent} 2>/dev/null && kill -0 $srv 2>/dev/null; do sleep 0.2; done; \
             kill $srv 2>/dev/null",
            parent = std::process::id(),
        );
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh to start {}: {e}", kind.program));
        let mut first_line = String::new();
        BufReader::new(watchdog.stdout.take().expect("piped stdout"))
            .read_line(&mut first_line)
            .expect("read server pid");
        let server_pid = first_line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "{} did not start (watchdog said {first_line:?})",
                kind.program
            )
        });
        let server = Server {
            kind,
            port,
            watchdog: Some(watchdog),
            server_pid,
            reserved: Some(reserved),
        };
        wait_until_listening(kind, port);
        server
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.kind.scheme, self.port)
    }

    /// Kills the server at once (SIGKILL) and waits until its port is closed.
    pub fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.server_pid.to_string()])
            .status();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{} did not stop",
                self.kind.program
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is
    /// answered, as with a hung or partitioned server.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`pause`](Server::pause)d server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.server_pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {} failed", self.server_pid);
    }

    /// Starts the server again on the same port (killing it first if it
    /// still runs).
    pub fn restart(&mut self) {
        self.kill();
        let reserved = self.reserved.take().expect("a server keeps its port");
        *self = Server::start_on(self.kind, reserved);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.watchdog.is_some() {
            self.kill();
        }
    }
}

/// The URL of this test binary's shared server of `kind`: the one named by
/// its env var, or one started on first use and stopped when the binary exits.
pub fn shared_url(kind: ServerKind) -> String {
    if let Ok(url) = std::env::var(kind.env_var) {
        return url;
    }
    static REDIS_SERVER: OnceLock<Server> = OnceLock::new();
    static MEMCACHED_SERVER: OnceLock<Server> = OnceLock::new();
    let cell = match kind.scheme {
        "redis" => &REDIS_SERVER,
        _ => &MEMCACHED_SERVER,
    };
    cell.get_or_init(|| Server::start(kind)).url()
}

fn check_installed(kind: ServerKind) {
    let found = Command::new(kind.program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{program}` is not installed, and {env} is not set.\n\
         Install it with `sudo apt-get install -y {package}` (Debian/Ubuntu), or run \
         `scripts/test.sh`, which installs what is missing; or point {env} at a running server.",
        program = kind.program,
        package = kind.package,
        env = kind.env_var,
    );
}

/// Where the tests' servers listen: below the kernel's ephemeral range
/// (32768 up), so no outgoing connection or `bind(0)` takes one of them.
/// Cluster nodes take a port from the lower part, their bus (`port +
/// 10000`, at most 55535 for any port) lands in the upper part.
const PLAIN_PORTS: std::ops::Range<u16> = 20_000..32_000;
pub const CLUSTER_PORTS: std::ops::Range<u16> = 10_000..20_000;
/// A cluster node's bus listens on its port plus this.
pub const BUS_OFFSET: u16 = 10_000;

/// Ports held for one server: each is locked (`flock`, through `File::try_lock`) in a file of
/// [`lock_dir`] for as long as this lives, so no other test process on the
/// machine (another binary, another checkout, `scripts/test.sh`, which
/// takes the same locks with `flock(1)`) picks it meanwhile. The kernel
/// drops the locks when the process dies, however it dies.
pub struct Reserved {
    pub port: u16,
    _locks: Vec<File>,
}

/// The directory of the port lock files, shared by every checkout.
pub fn lock_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("stampede-test-ports")
}

/// A reserved port for a server: see [`Reserved`].
pub fn reserve_port() -> Reserved {
    reserve_in(PLAIN_PORTS, &[0])
}

/// A reserved port for a cluster node, with its bus port: see [`Reserved`].
pub fn reserve_cluster_port() -> Reserved {
    reserve_in(CLUSTER_PORTS, &[0, BUS_OFFSET])
}

/// A random port in `range` whose ports `port + offset` are all lockable
/// and free now.
fn reserve_in(range: std::ops::Range<u16>, offsets: &[u16]) -> Reserved {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).expect("create the port lock directory");
    for _ in 0..10_000 {
        let port = fastrand::u16(range.clone());
        let locks: Option<Vec<File>> = offsets
            .iter()
            .map(|offset| lock_port(&dir, port + offset))
            .collect();
        if let Some(locks) = locks {
            return Reserved {
                port,
                _locks: locks,
            };
        }
    }
    panic!("no free port in {range:?} after 10,000 tries");
}

/// `port`'s lock, if no other process holds it and nothing listens there.
///
/// `File::try_lock` (flock on Linux) is newer than the crate's MSRV; the
/// tests need a toolchain that has it, the library does not.
#[allow(clippy::incompatible_msrv)]
fn lock_port(dir: &std::path::Path, port: u16) -> Option<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()))
        .ok()?;
    let locked = file.try_lock().is_ok();
    (locked && TcpListener::bind(("127.0.0.1", port)).is_ok()).then_some(file)
}

fn wait_until_listening(kind: ServerKind, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} did not start listening on port {port} within 10s",
            kind.program
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `arg` quoted for `sh`.
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}
