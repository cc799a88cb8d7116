//! The feed: follows other processes' changes on a pub/sub link of its
//! own and hands them to the near tier in sequence order.
//!
//! - **In order.** Each change carries its sequence number. The next one
//!   expected is applied; an older one (already applied by a replay) is
//!   skipped; a newer one means changes were missed: the log is replayed
//!   from the last change applied, on the command connection.
//! - **Replay or flush.** A replay reads the log after the last applied
//!   change's stream id. If its first change is not the next number, the
//!   log was trimmed past it (or the server lost its data): the tier is
//!   flushed, never left with copies that may be stale.
//! - **Heartbeat.** The link is pinged every [`HEARTBEAT`]; a ping not
//!   answered within [`HEARTBEAT`] counts as a lost link, so a half-open
//!   connection is noticed in well under a second. While the link is down
//!   the tier is told ([`ChangeSink::link`]) and serves copies only within
//!   its `max_unverified` bound. After a reconnect the feed subscribes,
//!   replays what it missed, and only then reports the link up.
//! - The task ends when the tier is dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::{timeout, Instant};

use super::super::conn::{Connections, Request, Resend};
use super::super::subscriber::{Dialer, Link};
use super::{CHANNEL, LOG};
use crate::backend::coherence::ChangeSink;
use crate::backend::CasToken;

/// How often the link is pinged, and how long a ping may take.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Changes read per `XRANGE` of a replay.
const REPLAY_BATCH: usize = 512;

/// Where the feed is in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    /// The stream id of the last change applied (`0-0`: none).
    id: String,
    /// Its sequence number (0: none).
    seq: u64,
}

/// One change, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Change<'a> {
    pub(super) seq: u64,
    /// Which process wrote it (for diagnostics).
    pub(super) origin: &'a str,
    /// `None` for removed or unknown; `Some(None)` for a flush.
    pub(super) version: Version,
    pub(super) key: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Version {
    Known(u64),
    Unknown,
    Flush,
}

/// Parses `<seq>:<origin>:<version>:<key>`.
pub(super) fn parse(change: &str) -> Option<Change<'_>> {
    let mut parts = change.splitn(4, ':');
    let seq = parts.next()?.parse().ok()?;
    let origin = parts.next()?;
    let version = match parts.next()? {
        "" => Version::Unknown,
        "*" => Version::Flush,
        hex => Version::Known(u64::from_str_radix(hex, 16).ok()?),
    };
    Some(Change {
        seq,
        origin,
        version,
        key: parts.next()?,
    })
}

pub(in crate::backend::redis) struct Feed {
    dialer: Arc<Dialer>,
    conns: Arc<Connections>,
    sink: Weak<dyn ChangeSink>,
    /// `None` until the first connection set the starting point.
    at: Option<Position>,
}

/// Why the link was given up.
enum Lost {
    Link,
    SinkGone,
}

impl Feed {
    pub(in crate::backend::redis) fn new(
        dialer: Arc<Dialer>,
        conns: Arc<Connections>,
        sink: Weak<dyn ChangeSink>,
    ) -> Feed {
        Feed {
            dialer,
            conns,
            sink,
            at: None,
        }
    }

    pub(in crate::backend::redis) async fn run(mut self) {
        // However the task ends (its runtime shutting down, a panic), the
        // tier stops trusting a feed that is no longer there.
        let _down = Down(self.sink.clone());
        let mut backoff = BACKOFF_MIN;
        loop {
            if self.sink.strong_count() == 0 {
                return;
            }
            match self.connect().await {
                Ok(link) => {
                    backoff = BACKOFF_MIN;
                    if let Lost::SinkGone = self.follow(link).await {
                        return;
                    }
                }
                Err(error) => tracing::debug!(%error, "near cache feed: could not connect"),
            }
            self.tell(|sink| sink.link(false));
            tokio::time::sleep(backoff.mul_f64(fastrand::f64() * 0.5 + 0.75)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn tell(&self, tell: impl FnOnce(&dyn ChangeSink)) -> bool {
        match self.sink.upgrade() {
            Some(sink) => {
                tell(&*sink);
                true
            }
            None => false,
        }
    }

    /// Dials, subscribes, and catches up: the link is live from here.
    async fn connect(&mut self) -> crate::Result<Link> {
        let error = |e: redis::RedisError| crate::Error::backend("redis", "near cache feed", e);
        let mut link = timeout(self.conns.timeout(), self.dialer.dial())
            .await
            .map_err(|_| self.conns.timed_out("near cache feed"))?
            .map_err(error)?;
        timeout(self.conns.timeout(), link.subscribe(&[CHANNEL]))
            .await
            .map_err(|_| self.conns.timed_out("near cache feed"))?
            .map_err(error)?;
        // Subscribed first: nothing published from here on is missed.
        match &self.at {
            None => {
                self.at = Some(self.last_logged().await?);
                // Copies taken before the feed listened may have missed a
                // change made before its starting point: forget them.
                self.tell(|sink| sink.started());
            }
            Some(_) => self.replay().await?,
        }
        self.tell(|sink| sink.link(true));
        Ok(link)
    }

    /// Follows the link until it is lost or the tier is gone.
    async fn follow(&mut self, mut link: Link) -> Lost {
        let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                payload = link.next_payload() => {
                    let Some(payload) = payload else { return Lost::Link };
                    match self.heard(&payload).await {
                        Ok(true) => {}
                        Ok(false) => return Lost::SinkGone,
                        Err(error) => {
                            tracing::debug!(%error, "near cache feed: replay failed");
                            return Lost::Link;
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    if !matches!(timeout(HEARTBEAT, link.ping()).await, Ok(Ok(()))) {
                        tracing::debug!("near cache feed: the link did not answer its heartbeat");
                        return Lost::Link;
                    }
                    if !self.tell(|sink| sink.confirmed()) {
                        return Lost::SinkGone;
                    }
                }
            }
        }
    }

    /// One published change: `<stream id> <change>`. `Ok(false)`: the
    /// tier is gone.
    async fn heard(&mut self, payload: &[u8]) -> crate::Result<bool> {
        let Some((id, change)) = std::str::from_utf8(payload)
            .ok()
            .and_then(|text| text.split_once(' '))
        else {
            return Ok(true);
        };
        let Some(parsed) = parse(change) else {
            return Ok(true);
        };
        let next = self.at.as_ref().map_or(1, |at| at.seq + 1);
        if parsed.seq < next {
            return Ok(true); // applied already, by a replay
        }
        if parsed.seq > next {
            self.replay().await?;
            return Ok(self.sink.strong_count() > 0);
        }
        Ok(self.apply(id, &parsed))
    }

    /// Applies the next change and moves past it.
    fn apply(&mut self, id: &str, change: &Change<'_>) -> bool {
        self.at = Some(Position {
            id: id.to_owned(),
            seq: change.seq,
        });
        // Our own writes too: the copy this process kept of its write has
        // that write's version and stays; a write of ours whose call was
        // dropped before it updated the copy is caught here.
        self.tell(|sink| match change.version {
            Version::Known(nonce) => sink.changed(change.key, Some(CasToken::from_version(nonce))),
            Version::Unknown => sink.changed(change.key, None),
            Version::Flush => sink.flush(),
        })
    }

    /// Entries of the log an `XRANGE` or `XREVRANGE` returns: each stream
    /// id with its change (empty for an entry without one).
    async fn logged(&self, cmd: &redis::Cmd) -> crate::Result<Vec<(String, String)>> {
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .conns
            .query(
                "near cache feed",
                Request::Cmd(cmd),
                Resend::IfConnectionLost,
            )
            .await?;
        Ok(entries
            .into_iter()
            .map(|(id, fields)| {
                let change = fields.into_iter().next().map(|(_, change)| change);
                (id, change.unwrap_or_default())
            })
            .collect())
    }

    /// The newest change in the log: where a new feed starts.
    async fn last_logged(&self) -> crate::Result<Position> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(LOG).arg("+").arg("-").arg("COUNT").arg(1);
        let newest = self.logged(&cmd).await?;
        Ok(newest
            .into_iter()
            .next()
            .and_then(|(id, change)| {
                let seq = parse(&change)?.seq;
                Some(Position { id, seq })
            })
            .unwrap_or(Position {
                id: "0-0".to_owned(),
                seq: 0,
            }))
    }

    /// Applies every logged change after the last one applied; flushes the
    /// tier if the log does not reach back to it.
    async fn replay(&mut self) -> crate::Result<()> {
        loop {
            let after = self
                .at
                .as_ref()
                .map_or_else(|| "0-0".to_owned(), |at| at.id.clone());
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(LOG)
                .arg(format!("({after}"))
                .arg("+")
                .arg("COUNT")
                .arg(REPLAY_BATCH);
            let batch = self.logged(&cmd).await?;
            let read = batch.len();
            for (id, change) in batch {
                let Some(parsed) = parse(&change) else {
                    continue;
                };
                let next = self.at.as_ref().map_or(1, |at| at.seq + 1);
                if parsed.seq != next {
                    // Trimmed past what we applied, or a new counter (the
                    // server lost its data): what was missed is unknown.
                    tracing::info!(
                        expected = next,
                        found = parsed.seq,
                        "near cache feed: the log does not reach back; flushing the near cache"
                    );
                    self.tell(|sink| sink.flush());
                    self.at = Some(Position {
                        id,
                        seq: parsed.seq,
                    });
                    continue;
                }
                self.apply(&id, &parsed);
            }
            if read < REPLAY_BATCH {
                return Ok(());
            }
        }
    }
}

/// Tells the tier its feed is down when dropped.
struct Down(Weak<dyn ChangeSink>);

impl Drop for Down {
    fn drop(&mut self) {
        if let Some(sink) = self.0.upgrade() {
            sink.link(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_with_colons_in_keys() {
        let change = parse("42:00000000000000ab:00000000000000ff:app:user:7").unwrap();
        assert_eq!(change.seq, 42);
        assert_eq!(change.origin, "00000000000000ab");
        assert_eq!(change.version, Version::Known(255));
        assert_eq!(change.key, "app:user:7");
        assert_eq!(parse("1:o::k").unwrap().version, Version::Unknown);
        assert_eq!(parse("1:o:*:").unwrap().version, Version::Flush);
        assert!(parse("x:o::k").is_none());
        assert!(parse("1:o:zz:k").is_none());
    }
}
