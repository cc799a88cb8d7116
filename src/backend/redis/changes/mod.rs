//! Announcing writes to other processes' near tiers, and following theirs.
//!
//! Once a near tier is attached (`announce_changes`, in
//! [`backend`](super::backend)), every write this backend sends runs as a
//! script that also announces it (`announce.lua`): `INCR` of a sequence
//! counter, `XADD` of the change to a capped stream (the log), `PUBLISH`
//! of the change with its stream id.
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

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use redis::ScriptInvocation;

pub(super) use feed::Feed;

use crate::backend::coherence::{ChangeSink, NoSink};

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

impl Changes {
    /// The announcer, once a near tier is attached.
    pub(super) fn announcer(&self) -> Option<&Announcer> {
        self.announcer.get()
    }

    /// The announcer, made with `origin` if there is none yet: from now
    /// on every write announces itself.
    pub(super) fn start_announcing(&self, origin: u64) -> &Announcer {
        self.announcer.get_or_init(|| Announcer {
            origin: format!("{origin:016x}"),
            sink: Mutex::new(Weak::<NoSink>::new()),
        })
    }

    /// The feed task's slot: `None` until it is first started.
    pub(super) fn feed(&self) -> MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.feed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Announcer {
    /// This process's origin, in 16 hex digits.
    pub(super) fn origin(&self) -> &str {
        &self.origin
    }

    /// Where the feed delivers other processes' changes.
    pub(super) fn sink(&self) -> Weak<dyn ChangeSink> {
        self.sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Delivers changes to `sink` from now on, unless a live sink is
    /// there already (the first near cache stays).
    pub(super) fn deliver_to(&self, sink: Weak<dyn ChangeSink>) {
        let mut current = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if current.strong_count() > 0 && sink.strong_count() > 0 {
            tracing::warn!("this Redis backend already has a near cache; keeping the first");
        } else if sink.strong_count() > 0 {
            *current = sink;
        }
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("announcing", &self.announcer.get().is_some())
            .finish()
    }
}
