//! Counting what reaches a server: Redis commands through `MONITOR`, and
//! memcached requests through a counting TCP proxy on loopback. The
//! comparison uses them to count the round trips of a fill, ours and
//! aiocache's, rather than assume them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A `MONITOR` connection to Redis, and a connection of its own to mark
/// where a measured stretch of traffic ends.
pub struct RedisMonitor {
    monitor: redis::aio::Monitor,
    admin: redis::aio::MultiplexedConnection,
}

impl std::fmt::Debug for RedisMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMonitor").finish_non_exhaustive()
    }
}

impl RedisMonitor {
    /// Starts monitoring the Redis at `url`; what was sent before this
    /// returns is not counted.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached.
    pub async fn start(url: &str) -> redis::RedisResult<RedisMonitor> {
        let client = redis::Client::open(url)?;
        let monitor = client.get_async_monitor().await?;
        let admin = client.get_multiplexed_async_connection().await?;
        let mut watching = RedisMonitor { monitor, admin };
        watching.commands().await?; // the admin connection's own set-up
        Ok(watching)
    }

    /// The names of the commands every client sent since the last call (or
    /// since `start`), in order, upper case. Commands run by scripts
    /// (`[0 lua]`) are left out: they are not round trips.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached, or `MONITOR` goes quiet for 5 s.
    pub async fn commands(&mut self) -> redis::RedisResult<Vec<String>> {
        let marker = format!("end-of-count-{}", uuid::Uuid::new_v4().simple());
        let _: String = redis::cmd("ECHO")
            .arg(&marker)
            .query_async(&mut self.admin)
            .await?;
        let mut lines = self.monitor.on_message::<String>();
        let mut commands = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), lines.next())
                .await
                .map_err(|_| std::io::Error::other("MONITOR went quiet"))?
                .ok_or_else(|| std::io::Error::other("MONITOR closed"))?;
            if line.contains(&marker) {
                return Ok(commands);
            }
            // `<time> [<db> <client>] "CMD" "arg" …`; scripts show as `[0 lua]`.
            let Some((client, rest)) = line.split_once("] ") else {
                continue;
            };
            if client.ends_with(" lua") {
                continue;
            }
            let name = rest.split('"').nth(1).unwrap_or_default();
            commands.push(name.to_ascii_uppercase());
        }
    }
}

/// A TCP proxy on loopback in front of one memcached server that logs the
/// first word of every request (`mg`, `ms`, `md`, `get`, `set`, …). Each
/// request is one round trip for clients that send one request at a time
/// per connection, as `memcache::exp` does.
#[derive(Debug)]
pub struct CountingProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    accepting: JoinHandle<()>,
}

impl CountingProxy {
    /// Starts a proxy to the memcached server at `upstream` (`host:port`)
    /// on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream: &str) -> std::io::Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, upstream) = (Arc::clone(&requests), upstream.to_owned());
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                tokio::spawn(relay(client, server, Arc::clone(&log)));
            }
        });
        Ok(CountingProxy {
            addr,
            requests,
            accepting,
        })
    }

    /// The requests logged since the last call, in order, by first word.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().expect("request log"))
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// The length of the data block that follows a storage request, if any:
/// `ms <key> <datalen> …` (meta), `set|add|replace|append|prepend|cas
/// <key> <flags> <exptime> <bytes> …` (classic), plus its CRLF.
fn data_len(words: &[&str]) -> Option<usize> {
    let at = match words.first().copied()? {
        "ms" => 2,
        "set" | "add" | "replace" | "append" | "prepend" | "cas" => 4,
        _ => return None,
    };
    words.get(at)?.parse::<usize>().ok().map(|len| len + 2)
}

/// Answers are copied back as they come; requests forward line by line,
/// each logged before it is sent on, so a client that has its answer finds
/// its request in the log.
async fn relay(client: TcpStream, server: TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut requests = BufReader::new(client_read);
    let mut line = Vec::new();
    let mut data = Vec::new();
    loop {
        line.clear();
        if requests.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        data.clear();
        if let Some(len) = data_len(&words) {
            data.resize(len, 0);
            if requests.read_exact(&mut data).await.is_err() {
                break;
            }
        }
        if let Some(verb) = words.first() {
            log.lock().expect("request log").push((*verb).to_owned());
        }
        if server_write.write_all(&line).await.is_err()
            || server_write.write_all(&data).await.is_err()
        {
            break;
        }
    }
    answers.abort();
}
