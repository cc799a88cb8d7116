//! A TCP proxy in front of memcached that holds back every `md` (delete)
//! until the test lets it through, so a release can be paused between its
//! read (`mg`) and its compare-and-delete (`md C<cas>`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

pub struct HoldDeletes {
    pub addr: SocketAddr,
    arrived: mpsc::UnboundedReceiver<()>,
    gate: Arc<Semaphore>,
}

impl HoldDeletes {
    /// Starts a proxy to the memcached server at `upstream`.
    pub async fn start(upstream: String) -> HoldDeletes {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let proxy_gate = Arc::clone(&gate);
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let server = TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(relay(
                    client,
                    server,
                    arrived_tx.clone(),
                    Arc::clone(&proxy_gate),
                ));
            }
        });
        HoldDeletes {
            addr,
            arrived,
            gate,
        }
    }

    /// Waits until a delete has reached the proxy and is being held.
    pub async fn delete_held(&mut self) {
        self.arrived.recv().await.expect("proxy running");
    }

    /// Lets one held delete through.
    pub fn let_one_through(&self) {
        self.gate.add_permits(1);
    }
}

/// Copies answers back as they come, and requests forward one command at a
/// time, holding each `md` until the gate gives a permit.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    arrived: mpsc::UnboundedSender<()>,
    gate: Arc<Semaphore>,
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
        if words[0] == b"md" {
            let _ = arrived.send(());
            gate.acquire().await.unwrap().forget();
        }
        let mut data = Vec::new();
        if words[0] == b"ms" {
            // `ms <key> <datalen> …` is followed by the data and CRLF.
            let len: usize = std::str::from_utf8(words[2]).unwrap().parse().unwrap();
            data.resize(len + 2, 0);
            requests.read_exact(&mut data).await.unwrap();
        }
        if server_write.write_all(&line).await.is_err()
            || server_write.write_all(&data).await.is_err()
        {
            return;
        }
    }
}
