//! [`MemcachedConfig`]: plain settings with documented defaults, from code
//! or from a `memcached://` URL.

use std::time::Duration;

use super::MemcachedBackend;
use crate::url::CacheUrl;
use crate::{Error, Result};

/// The port used for a server named without one.
pub const DEFAULT_PORT: u16 = 11211;

/// Default for [`MemcachedConfig::timeout`]: 2 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default for [`MemcachedConfig::poll_interval`]: 50 milliseconds, the
/// longest wait between two polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Default for [`MemcachedConfig::first_poll`]: 5 milliseconds, the first
/// and shortest wait between two polls.
pub const DEFAULT_FIRST_POLL: Duration = Duration::from_millis(5);

/// Default for [`MemcachedConfig::max_connections`]: 64 per server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Default for [`MemcachedConfig::max_value_size`]: 1 MiB minus 1 KiB.
///
/// memcached's default item size limit (`-I 1m`) counts the key and an item
/// header of about 60 bytes as well as the value: with a 250-byte key the
/// largest value it stores is 1 MiB minus 309 bytes. The default leaves
/// 1 KiB for them.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024 - 1024;

/// How to reach memcached and how patiently. Plain data: build it with
/// [`new`](MemcachedConfig::new) and the setters, or fill in the fields.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stampede::Result<()> {
/// use std::time::Duration;
/// use stampede::backend::memcached::MemcachedConfig;
/// use stampede::Cache;
///
/// let config = MemcachedConfig::new(["10.0.0.1:11211", "10.0.0.2:11211"])
///     .timeout(Duration::from_millis(500))
///     .poll_interval(Duration::from_millis(20))
///     .first_poll(Duration::from_millis(2));
/// let cache = Cache::memcached(config).await?;
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct MemcachedConfig {
    /// The servers, as `host:port` (`[v6]:port` for IPv6 literals; the port
    /// defaults to [`DEFAULT_PORT`]). Keys are spread across them by the
    /// client's rendezvous hashing on the names as written here, so every
    /// process must list the same names to agree on where a key lives; the
    /// order does not matter.
    ///
    /// Default: `["127.0.0.1:11211"]`.
    pub servers: Vec<String>,

    /// The longest any one backend call may take, connecting included;
    /// past it the call fails with [`Error::BackendTimeout`]. Calls that
    /// need two round trips (release, extend, a fenced lock) are bounded as
    /// a whole.
    ///
    /// Default: [`DEFAULT_TIMEOUT`] (2 s).
    pub timeout: Duration,

    /// The longest wait between two polls of a process waiting on a lock,
    /// or a fill, held by another process. memcached has no pub/sub, so
    /// such a process re-reads the record (`mg`, without the value) to learn
    /// that the lock was released or the fill's lease ended. It runs one
    /// poller per key, however many of its callers wait on that key, from
    /// its first waiter's arrival until its last waiter leaves; waiters in
    /// the same process are woken at once, without polling.
    ///
    /// The schedule starts tight and backs off. The first poll comes
    /// [`first_poll`](MemcachedConfig#structfield.first_poll) after the
    /// poller starts; after that, each wait is a sixteenth of the time the
    /// poller has run so far, never shorter than `first_poll` and never
    /// longer than `poll_interval`. Every wait is then jittered by ±20% so
    /// that processes do not poll in step. So a lock or fill that ends
    /// after a wait of `t` is seen at most `max(first_poll, t / 16)` late,
    /// +20%, and never more than `poll_interval` +20% late.
    ///
    /// With the defaults (5 ms and 50 ms): a poll every 5 ms for the first
    /// 80 ms, then every sixteenth of the wait (90.3, 96.0, 102.0 ms…),
    /// every 50 ms from 800 ms on. A waiting process sends, per key it
    /// waits on, 10 polls over a 50 ms wait, 57 over 1 s and 237 over 10 s
    /// (before jitter, which moves them by about a fifth either way): 20 a
    /// second once the wait passes 800 ms, as a fixed 50 ms poll sends,
    /// plus 37 polls for the tight start. Setting `first_poll` to
    /// `poll_interval` (or longer) polls at the fixed interval: 1, 20 and
    /// 200 polls.
    ///
    /// Default: [`DEFAULT_POLL_INTERVAL`] (50 ms).
    pub poll_interval: Duration,

    /// The first wait of a poller, and the shortest (see
    /// [`poll_interval`](MemcachedConfig#structfield.poll_interval) for the
    /// schedule). Shorter finds a short fill or lock sooner, for more
    /// polls at the start of every wait; at or above `poll_interval`, the
    /// poller polls every `poll_interval`.
    ///
    /// Default: [`DEFAULT_FIRST_POLL`] (5 ms).
    pub first_poll: Duration,

    /// The largest value accepted; a larger one is
    /// [`Error::ValueTooLarge`] before anything is sent. Keep it below the
    /// server's `-I` limit minus about 310 bytes for the key and header.
    ///
    /// Default: [`DEFAULT_MAX_VALUE_SIZE`] (1 MiB − 1 KiB).
    pub max_value_size: usize,

    /// The most connections open to each server at once, all kept open
    /// while idle (for up to 90 s). The client sends one request at a time
    /// per connection, so calls beyond this many in flight wait for a free
    /// connection rather than each dialling a new one: a stampede of 1,000
    /// callers would otherwise open (and then close) about 1,000 sockets.
    ///
    /// Default: [`DEFAULT_MAX_CONNECTIONS`] (64).
    pub max_connections: usize,
}

impl Default for MemcachedConfig {
    fn default() -> Self {
        MemcachedConfig {
            servers: vec![format!("127.0.0.1:{DEFAULT_PORT}")],
            timeout: DEFAULT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            first_poll: DEFAULT_FIRST_POLL,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl MemcachedConfig {
    /// The defaults, with these servers.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stampede::backend::memcached::MemcachedConfig;
    ///
    /// let config = MemcachedConfig::new(["cache-1:11211", "cache-2"]);
    /// assert_eq!(config.servers, ["cache-1:11211", "cache-2"]);
    /// assert_eq!(config.timeout, Duration::from_secs(2));
    /// ```
    pub fn new(servers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        MemcachedConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            ..MemcachedConfig::default()
        }
    }

    /// Sets [`timeout`](MemcachedConfig#structfield.timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`poll_interval`](MemcachedConfig#structfield.poll_interval).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`first_poll`](MemcachedConfig#structfield.first_poll).
    pub fn first_poll(mut self, interval: Duration) -> Self {
        self.first_poll = interval;
        self
    }

    /// Sets [`max_connections`](MemcachedConfig#structfield.max_connections).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets [`max_value_size`](MemcachedConfig#structfield.max_value_size).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Builds the backend. Addresses are resolved now; connections are made
    /// on first use, so a server that is down surfaces at the first call,
    /// and one that comes back later is used again.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stampede::Result<()> {
    /// use stampede::backend::memcached::MemcachedConfig;
    /// use stampede::Cache;
    ///
    /// let backend = MemcachedConfig::new(["127.0.0.1:11211"]).connect().await?;
    /// let cache = Cache::from(backend).with_namespace("app");
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for no servers, a malformed address or a
    /// zero duration; [`Error::Backend`] when a host name does not resolve.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is kept from a dropped attempt.
    pub async fn connect(self) -> Result<MemcachedBackend> {
        MemcachedBackend::connect(self).await
    }

    /// Checks the settings and returns the server addresses to dial.
    pub(super) fn checked_servers(&self) -> Result<Vec<String>> {
        let setting = || self.servers.join(",");
        if self.servers.is_empty() {
            return Err(Error::invalid_config(
                setting(),
                "no memcached server given",
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::invalid_config(
                setting(),
                "`max_connections` must be at least 1",
            ));
        }
        for (name, value) in [
            ("timeout", self.timeout),
            ("poll_interval", self.poll_interval),
            ("first_poll", self.first_poll),
        ] {
            if value.is_zero() {
                return Err(Error::invalid_config(
                    setting(),
                    format!("`{name}` must be longer than zero"),
                ));
            }
        }
        self.servers
            .iter()
            .map(|server| {
                with_port(server).map_err(|reason| Error::invalid_config(server.as_str(), reason))
            })
            .collect()
    }

    /// The config a `memcached://host:port[,host:port…]?…` URL describes.
    /// Takes `timeout_ms`, `poll_ms`, `first_poll_ms` and `max_value_size`
    /// from the query.
    pub(crate) fn from_url(url: &mut CacheUrl<'_>) -> Result<Self> {
        let rest = url.rest;
        if rest.contains('@') {
            return Err(Error::invalid_config(
                url.original,
                "memcached:// URLs take no user or password (the meta protocol has no login)",
            ));
        }
        if rest.contains('/') {
            return Err(Error::invalid_config(
                url.original,
                "a memcached:// URL names servers as host:port, separated by commas, and no path",
            ));
        }
        let servers: Vec<String> = rest.split(',').map(|s| s.trim().to_owned()).collect();
        if servers.iter().any(String::is_empty) {
            return Err(Error::invalid_config(
                url.original,
                "a memcached:// URL needs at least one host:port, and no empty entries",
            ));
        }
        let mut config = MemcachedConfig::new(servers);
        if let Some(timeout) = url.take_millis("timeout_ms")? {
            config.timeout = timeout;
        }
        if let Some(interval) = url.take_millis("poll_ms")? {
            config.poll_interval = interval;
        }
        if let Some(interval) = url.take_millis("first_poll_ms")? {
            config.first_poll = interval;
        }
        if let Some(bytes) = url.take_u64("max_value_size")? {
            config.max_value_size = usize::try_from(bytes).map_err(|_| {
                Error::invalid_config(url.original, "`max_value_size` is too large")
            })?;
        }
        Ok(config)
    }
}

/// `server` with [`DEFAULT_PORT`] added when it names none.
fn with_port(server: &str) -> std::result::Result<String, String> {
    let server = server.trim();
    let (host, port) = if let Some(v6) = server.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{server:?} opens an IPv6 `[` it does not close"))?;
        (
            host,
            after.strip_prefix(':').or((after.is_empty()).then_some("")),
        )
    } else {
        match server.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (server, Some("")),
        }
    };
    let port = match port {
        Some("") => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| format!("{server:?} has a bad port"))?,
        None => return Err(format!("{server:?} is not host:port")),
    };
    if host.is_empty() {
        return Err(format!("{server:?} names no host"));
    }
    if !server.starts_with('[') && host.contains(':') {
        return Err(format!(
            "{server:?}: write an IPv6 address as [address]:port"
        ));
    }
    Ok(if server.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

#[cfg(test)]
mod tests;
