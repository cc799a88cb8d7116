//! TCP proxies in front of memcached that see every request the client
//! sends:
//!
//! - [`HoldRequests`] holds back every request of one kind (`md`, `ma`, …)
//!   until the test lets it through, so a release can be paused between its
//!   read (`mg`) and its compare-and-delete (`md C<cas>`), or a fencing
//!   token's increment (`ma`) delayed;
//! - [`CountRequests`] logs every request line, so a test can count the
//!   round trips an operation took and see the flags each request carried;
//! - [`DelayAnswers`] delays every answer, so a test can tell one pipelined
//!   exchange from one exchange per command by the time a call takes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// Holds every request of one kind until
/// [`let_one_through`](Self::let_one_through).
pub struct HoldRequests {
    pub addr: SocketAddr,
    arrived: mpsc::UnboundedReceiver<()>,
    gate: Arc<Semaphore>,
}

impl HoldRequests {
    /// Starts a proxy to the memcached server at `upstream` that holds
    /// every request whose command word is `word` (`"md"`, `"ma"`, …).
    pub async fn start(upstream: String, word: &'static str) -> HoldRequests {
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let hold = Hold {
            word,
            arrived: arrived_tx,
            gate: Arc::clone(&gate),
        };
        let addr = start(upstream, Arc::default(), Some(hold)).await;
        HoldRequests {
            addr,
            arrived,
            gate,
        }
    }

    /// Waits until a request has reached the proxy and is being held.
    pub async fn request_held(&mut self) {
        self.arrived.recv().await.expect("proxy running");
    }

    /// Lets one held request through.
    pub fn let_one_through(&self) {
        self.gate.add_permits(1);
    }
}

/// Logs every request line (`mg <key> v c t`, `ms <key> 3 T5`, …, without
/// a store's data).
pub struct CountRequests {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl CountRequests {
    /// Starts a proxy to the memcached server at `upstream`.
    pub async fn start(upstream: String) -> CountRequests {
        let log = Arc::<Mutex<Vec<String>>>::default();
        let addr = start(upstream, Arc::clone(&log), None).await;
        CountRequests { addr, log }
    }

    /// The commands (`mg`, `ms`, `md`, `ma`, …) sent since the last call,
    /// in the order they reached the proxy. A request is logged before it
    /// is forwarded, so every request of an operation that has returned is
    /// in.
    pub fn take(&self) -> Vec<String> {
        let lines = self.take_lines();
        lines
            .iter()
            .map(|line| line.split(' ').next().unwrap_or_default().to_owned())
            .collect()
    }

    /// The request lines sent since the last call, like [`take`](Self::take).
    pub fn take_lines(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// How [`HoldRequests`] holds a request.
#[derive(Clone)]
struct Hold {
    word: &'static str,
    arrived: mpsc::UnboundedSender<()>,
    gate: Arc<Semaphore>,
}

/// Accepts connections on a free loopback port and relays each to
/// `upstream`; returns the port's address.
async fn start(upstream: String, log: Arc<Mutex<Vec<String>>>, hold: Option<Hold>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(&upstream).await.unwrap();
            // Without this, Nagle and delayed ACKs add ~40 ms to requests.
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            tokio::spawn(relay(client, server, Arc::clone(&log), hold.clone()));
        }
    });
    addr
}

/// Copies answers back as they come, and requests forward one command at a
/// time, logging each and holding the ones `hold` names.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    log: Arc<Mutex<Vec<String>>>,
    hold: Option<Hold>,
) {
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut requests = BufReader::new(client_read);
    let mut line = Vec::new();
    loop {
        line.clear();
        if requests.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let words: Vec<&[u8]> = line.split(|b| b.is_ascii_whitespace()).collect();
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(String::from_utf8_lossy(line.trim_ascii_end()).into_owned());
        if let Some(hold) = hold
            .as_ref()
            .filter(|hold| hold.word.as_bytes() == words[0])
        {
            let _ = hold.arrived.send(());
            hold.gate.acquire().await.unwrap().forget();
        }
        if words[0] == b"ms" {
            // `ms <key> <datalen> …` is followed by the data and CRLF.
            let len: usize = std::str::from_utf8(words[2]).unwrap().parse().unwrap();
            let start = line.len();
            line.resize(start + len + 2, 0);
            requests.read_exact(&mut line[start..]).await.unwrap();
        }
        if server_write.write_all(&line).await.is_err() {
            return;
        }
    }
}

/// Delays every answer by a fixed time, however the answers are cut into
/// packets: an exchange on one connection takes at least that time, and a
/// pipelined batch about that time in all, where one exchange per command
/// would take it once per command.
pub struct DelayAnswers {
    pub addr: SocketAddr,
}

impl DelayAnswers {
    /// Starts a proxy to the memcached server at `upstream`.
    pub async fn start(upstream: String, delay: Duration) -> DelayAnswers {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let server = TcpStream::connect(&upstream).await.unwrap();
                client.set_nodelay(true).unwrap();
                server.set_nodelay(true).unwrap();
                let (mut client_read, client_write) = client.into_split();
                let (server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                tokio::spawn(delayed(server_read, client_write, delay));
            }
        });
        DelayAnswers { addr }
    }
}

/// Copies `from` to `to`, each chunk `delay` after it arrived.
async fn delayed(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (chunks, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((arrived, chunk)) = queued.recv().await {
            tokio::time::sleep_until(arrived + delay).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buffer = vec![0; 64 * 1024];
    while let Ok(read @ 1..) = from.read(&mut buffer).await {
        if chunks
            .send((Instant::now(), buffer[..read].to_vec()))
            .is_err()
        {
            return;
        }
    }
}
