//! Announcing writes to other processes' near tiers, and following theirs.
//!
//! Once a near tier is attached ([`RedisBackend::announce_changes`]),
//! every write this backend sends runs as a script that also announces it
//! (`announce.lua`): `INCR` of a sequence counter, `XADD` of the change to
//! a capped stream (the log), `PUBLISH` of the change with its stream id.
//! One script, so a write is never seen without its change or the other
//! way round, and changes are numbered in the order the writes happened.
//!
//! | name | what |
//! |---|---|
//! | [`LOG`] | the log: a stream of changes, trimmed to about [`LOG_CAP`] entries |
//! | [`COUNTER`] | the sequence counter |
//! | [`CHANNEL`] | where each change is published |
//!
//! A change reads `<seq>:<origin>:<version>:<key>`: the version is the
//! envelope nonce in 16 hex digits, empty when the key was removed or its
//! new version is not known (a counter, a TTL change, a stale mark), `*`
//! when everything under `<key>` (a prefix) was cleared.
//!
//! The feed (`feed`) follows the channel on its own connection, applies
//! changes in sequence order, replays the log after a gap or a reconnect,
//! and flushes the tier when the log no longer reaches back.
//!
//! All three names live in one database of one server: on a Redis Cluster
//! they would be in one slot, through which every write would have to go,
//! so a near tier is refused there.

mod feed;

use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use redis::ScriptInvocation;

use super::conn::{Request, Resend};
use super::ops::{millis, remaining};
use super::{envelope, scripts, RedisBackend};
use crate::backend::coherence::{ChangeSink, Coherence, NoSink, Versioned};
use crate::Result;

/// The log of changes: a stream.
pub(super) const LOG: &[u8] = b"\xFFnear:log";
/// The sequence counter of changes.
pub(super) const COUNTER: &[u8] = b"\xFFnear:seq";
/// The channel changes are published on.
pub(super) const CHANNEL: &[u8] = b"\xFFnear:changes";
/// About how many changes the log keeps (`XADD … MAXLEN ~`).
pub(super) const LOG_CAP: u64 = 10_000;

/// When a write script announces its write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum When {
    /// Whatever it replied.
    Always,
    /// Unless it replied 0 or nil: it wrote nothing.
    Changed,
}

/// What a change says of the key's new version.
#[derive(Clone, Copy, Debug)]
pub(super) enum NewVersion {
    /// An envelope nonce.
    Nonce(u64),
    /// Removed, or not known.
    Unknown,
}

/// The backend's announcing state.
#[derive(Default)]
pub(super) struct Changes {
    announcer: OnceLock<Announcer>,
    feed: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

pub(super) struct Announcer {
    /// 16 hex digits.
    origin: String,
    /// Where the feed delivers; none for a handle that only announces
    /// ([`Cache::announce_writes`](crate::Cache::announce_writes)) until a
    /// near cache is attached.
    sink: Mutex<Weak<dyn ChangeSink>>,
}

impl Announcer {
    /// Appends the announcement's keys and arguments to a write script's.
    pub(super) fn append(
        &self,
        script: &mut ScriptInvocation<'_>,
        version: NewVersion,
        when: When,
    ) {
        let version = match version {
            NewVersion::Nonce(nonce) => format!("{nonce:016x}"),
            NewVersion::Unknown => String::new(),
        };
        script
            .key(LOG)
            .key(COUNTER)
            .arg(CHANNEL)
            .arg(&self.origin)
            .arg(version)
            .arg(LOG_CAP)
            .arg(match when {
                When::Always => "always",
                When::Changed => "changed",
            });
    }
}

impl RedisBackend {
    pub(crate) fn coherence(&self) -> Coherence {
        if self.is_cluster() {
            Coherence::Unsupported(
                "on a Redis Cluster the near cache's invalidation log would have to span hash slots (every write would go through one slot); use a standalone or Sentinel deployment for a near cache",
            )
        } else {
            Coherence::Push
        }
    }

    /// The announcer, once a near tier is attached.
    pub(super) fn announcer(&self) -> Option<&Announcer> {
        self.changes.announcer.get()
    }

    pub(crate) fn announce_changes(&self, origin: u64, sink: Weak<dyn ChangeSink>) {
        let announcer = self.changes.announcer.get_or_init(|| Announcer {
            origin: format!("{origin:016x}"),
            sink: Mutex::new(Weak::<NoSink>::new()),
        });
        let mut current = announcer
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.strong_count() > 0 && sink.strong_count() > 0 {
            tracing::warn!("this Redis backend already has a near cache; keeping the first");
        } else if sink.strong_count() > 0 {
            *current = sink;
        }
    }

    /// Starts the feed task unless it runs.
    pub(crate) fn follow_changes(&self) {
        let Some(announcer) = self.announcer() else {
            return;
        };
        let mut feed = self
            .changes
            .feed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if feed.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let follower = feed::Feed::new(
            self.subscriber.dialer(),
            Arc::clone(&self.conns),
            announcer
                .sink
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        );
        *feed = Some(runtime.spawn(follower.run()));
    }

    /// `GET` and `PTTL` in one pipeline. A value keeps its version only if
    /// it is ours (enveloped) and not marked stale.
    pub(crate) async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        let mut pipeline = redis::pipe();
        // In one transaction, so that the TTL is the read value's.
        pipeline.atomic().cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (stored, pttl): (Option<bytes::Bytes>, i64) = self
            .query_resendable("get", Request::Pipeline(&pipeline))
            .await?;
        Ok(stored.map(|stored| {
            let opened = envelope::open(stored);
            let ours = opened.token.version().is_some() && !opened.stale;
            Versioned {
                value: opened.payload,
                version: ours.then_some(opened.token),
                // -1: no TTL; -2 cannot follow a value in one transaction,
                // but would mean "gone": keep no copy then.
                ttl: if pttl == -1 {
                    None
                } else {
                    Some(remaining(pttl).unwrap_or(Duration::ZERO))
                },
            }
        }))
    }

    /// With a near cache attached, `SET` as an announcing script (`None`
    /// without one: a plain `SET` is cheaper).
    pub(super) fn announced_set(
        &self,
        key: &str,
        stored: &[u8],
        only_new: bool,
        ttl: Option<Duration>,
    ) -> Option<redis::ScriptInvocation<'static>> {
        let announcer = self.announcer()?;
        let mut script = scripts::command_announced().key(key);
        script.arg("SET").arg(stored);
        if only_new {
            script.arg("NX");
        }
        if let Some(ttl) = ttl {
            script.arg("PX").arg(millis(ttl));
        }
        let when = if only_new {
            When::Changed
        } else {
            When::Always
        };
        announcer.append(&mut script, envelope::nonce(stored), when);
        Some(script)
    }

    /// Tells every tier that everything under `prefix` is gone (after a
    /// `clear`).
    pub(super) async fn announce_clear(&self, prefix: &str) -> Result<()> {
        let Some(announcer) = self.announcer() else {
            return Ok(());
        };
        let mut script = scripts::announce().key(LOG);
        script
            .key(COUNTER)
            .arg(prefix)
            .arg(CHANNEL)
            .arg(&announcer.origin)
            .arg("*")
            .arg(LOG_CAP);
        let _: u64 = self
            .conns
            .query("clear", Request::Script(&script), Resend::Never)
            .await?;
        Ok(())
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("announcing", &self.announcer.get().is_some())
            .finish()
    }
}
