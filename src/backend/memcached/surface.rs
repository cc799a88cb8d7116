//! `exists`, `touch` and `clear` on memcached.
//!
//! | call | commands | round trips |
//! |---|---|---|
//! | `exists` | `mg <k> s c t` (no value) | 1 |
//! | `touch` | `mg <k> s c t` and `mg <k> T<ttl> s c t`, pipelined | 1 |
//! | `touch` of a fill's placeholder | the above, then `mg <k> T<what it had left>` | 2 |
//! | `clear("")` | `flush_all` to every server, at once, each on a connection of its own | 1 |
//!
//! `exists` and `touch` see a key the way `get` does: a value, stale or
//! not, or a lock record, is there; a fill's empty placeholder is not.
//! memcached's touch (`mg … T`) cannot be made conditional, so `touch`
//! reads the item in the same pipeline just before touching it: when the
//! touch turns out to have hit a placeholder, it puts the placeholder's
//! old expiry back at once (a placeholder made to outlive its lease would
//! hold off every other filler of the key for the whole new TTL if its
//! filler died). A placeholder created in the microseconds between the two
//! commands keeps the new TTL until its filler stores (which sets its own).

use memcache::exp::{Get, GetResult, GetStatus};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::client::{peek, remaining, won_stale};
use super::fill::is_placeholder;
use super::{keys, ttl, MemcachedBackend, KIND};
use crate::{Error, Result};

impl MemcachedBackend {
    pub(super) async fn key_exists(&self, key: &str) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        self.bounded("exists", async {
            let seen = self.client.get("exists", peek(&wire)).await?;
            if won_stale(&seen) {
                let left = remaining(seen.item.ttl);
                self.give_back_win(&wire, seen.item.cas, left).await;
            }
            Ok(seen.status == GetStatus::Hit && !is_placeholder(&seen))
        })
        .await
    }

    pub(super) async fn touch_key(&self, key: &str, new_ttl: std::time::Duration) -> Result<bool> {
        let wire = keys::wire_key(key)?;
        let exptime = ttl::exptime(new_ttl, "ttl")?;
        let reads = vec![peek(&wire), peek(&wire).touch(exptime)];
        self.bounded("touch", async {
            let mut results = self.client.batch("touch", reads).await?.into_iter();
            let mut next = || {
                let result = results.next().ok_or_else(|| short_batch("touch"))?;
                result.map_err(|error| self.client.error("touch", error))
            };
            let (before, after) = (next()?, next()?);
            if after.status != GetStatus::Hit {
                return Ok(false);
            }
            if won_stale(&before) || won_stale(&after) {
                let left = remaining(after.item.ttl);
                self.give_back_win(&wire, after.item.cas, left).await;
            }
            if !is_placeholder(&after) {
                return Ok(true);
            }
            if before.status == GetStatus::Hit && before.item.cas == after.item.cas {
                self.untouch(&wire, &before).await?;
            }
            Ok(false)
        })
        .await
    }

    /// Puts back the expiry a placeholder had before a touch hit it.
    async fn untouch(&self, wire: &str, before: &GetResult) -> Result<()> {
        let had = ttl::kept(remaining(before.item.ttl));
        let restore = Get::new(wire).without_value().touch_raw(had);
        self.client.get("touch", restore).await.map(drop)
    }

    pub(super) async fn flush(&self, prefix: &str) -> Result<()> {
        if !prefix.is_empty() {
            return Err(Error::Unsupported {
                backend: KIND,
                operation: "clear",
            });
        }
        self.bounded("clear", async {
            let mut flushes = tokio::task::JoinSet::new();
            for server in self.servers.iter().cloned() {
                flushes.spawn(flush_all(server));
            }
            while let Some(flushed) = flushes.join_next().await {
                flushed.map_err(|e| Error::backend(KIND, "clear", e))??;
            }
            Ok(())
        })
        .await
    }
}

/// `flush_all` on `server`, over a connection of its own (the meta client
/// has no such command): every item there is gone at once.
async fn flush_all(server: String) -> Result<()> {
    let failed = |error: std::io::Error| Error::backend(KIND, "clear", error);
    let mut stream = TcpStream::connect(&server).await.map_err(failed)?;
    stream.write_all(b"flush_all\r\n").await.map_err(failed)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .await
        .map_err(failed)?;
    if answer.trim_end() == "OK" {
        return Ok(());
    }
    Err(Error::backend(
        KIND,
        "clear",
        format!("{server} answered flush_all with {:?}", answer.trim_end()),
    ))
}

/// A batch that came back with fewer answers than commands: a client or
/// server fault, reported rather than trusted.
pub(super) fn short_batch(operation: &'static str) -> crate::Error {
    crate::Error::backend(
        super::KIND,
        operation,
        "memcached answered fewer commands than the batch sent",
    )
}
