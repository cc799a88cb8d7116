//! What an in-process copy kept in front of a shared backend (a near
//! tier) needs from that backend to stay coherent: reads that say which
//! write they saw and for how long the value lives, a way to ask whether a
//! remembered write is still the current one, and a feed of other
//! processes' writes.
//!
//! These are the types of the coherence family of [`Backend`] methods
//! ([`Backend::coherence`] and the methods after it), public so that a
//! custom backend can offer a near cache too. Nothing here knows about the
//! tier itself; a backend offers one of two ways to stay coherent
//! ([`Coherence`]):
//!
//! - **Push** (Redis): every write the backend makes announces the key and
//!   its new version, atomically with the write, in a numbered log that
//!   other processes follow ([`ChangeSink`]).
//! - **Revalidate** (memcached, which cannot push): the tier asks whether
//!   the version it holds is still stored ([`Revalidated`]).

use std::time::Duration;

use bytes::Bytes;

#[cfg(doc)]
use super::Backend;
use super::CasToken;
use crate::Error;

/// How a backend keeps a near tier coherent: what
/// [`Backend::coherence`] answers.
///
/// ```
/// use stampede::backend::{memory::MemoryBackend, Backend, Coherence};
///
/// let memory = MemoryBackend::default();
/// assert!(matches!(memory.coherence(), Coherence::Unsupported(_)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Coherence {
    /// Writes are announced, in order, to every process: the backend
    /// implements [`Backend::announce_changes`],
    /// [`Backend::follow_changes`], [`Backend::read_versioned`] and the
    /// `*_versioned` writes.
    Push,
    /// Nothing is announced; a copy is checked against the stored version
    /// with [`Backend::revalidate`].
    Revalidate,
    /// A near tier cannot be kept coherent here, for this reason.
    Unsupported(&'static str),
}

/// A value read with what a near tier needs to keep a copy of it: what
/// [`Backend::read_versioned`] returns.
///
/// ```
/// use std::time::Duration;
/// use stampede::backend::{CasToken, Versioned};
///
/// let read = Versioned::new("v".into(), Some(CasToken::from_version(7)), Some(Duration::from_secs(60)));
/// assert_eq!(read.version, Some(CasToken::from_version(7)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Versioned {
    /// The value, as [`Backend::get`] returns it.
    pub value: Bytes,
    /// The write it came from; `None` when a copy must not be kept (a lock
    /// record, a value marked stale, a value written by another client).
    pub version: Option<CasToken>,
    /// How long the backend keeps it from the moment of the read; `None`
    /// for no TTL.
    pub ttl: Option<Duration>,
}

impl Versioned {
    /// A value read from the write `version` (`None`: keep no copy), with
    /// `ttl` left (`None`: no TTL).
    pub fn new(value: Bytes, version: Option<CasToken>, ttl: Option<Duration>) -> Versioned {
        Versioned {
            value,
            version,
            ttl,
        }
    }
}

/// The answer to "is this version still the stored one?": what
/// [`Backend::revalidate`] returns.
///
/// ```
/// use stampede::backend::Revalidated;
///
/// assert_ne!(Revalidated::Same(None), Revalidated::Changed);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revalidated {
    /// It is, and the value lives this much longer (`None`: no TTL).
    Same(Option<Duration>),
    /// It is not (another write, a delete, an expiry).
    Changed,
}

/// Where a backend's feed delivers other processes' writes, in the order
/// they were made: handed to [`Backend::announce_changes`] by the near
/// tier. Held weakly: the feed stops once the receiver is gone.
///
/// ```
/// use stampede::backend::{CasToken, ChangeSink};
///
/// struct Log;
/// impl ChangeSink for Log {
///     fn changed(&self, key: &str, version: Option<CasToken>) { println!("{key}: {version:?}") }
///     fn flush(&self) {}
///     fn started(&self) {}
///     fn confirmed(&self) {}
///     fn link(&self, _up: bool) {}
/// }
/// Log.changed("k", None);
/// ```
pub trait ChangeSink: Send + Sync + 'static {
    /// `key` was written by another process; `version` is the write's, or
    /// `None` when the key was removed or its version is not known.
    fn changed(&self, key: &str, version: Option<CasToken>);
    /// Writes may have been missed and cannot be replayed: forget
    /// everything.
    fn flush(&self);
    /// The feed has its starting point: copies taken before it may have
    /// missed a change made before that point, so forget them (not a
    /// flush for missed changes).
    fn started(&self);
    /// The feed is caught up and its link answered just now.
    fn confirmed(&self);
    /// The feed's link is lost (or caught up again, `up`).
    fn link(&self, up: bool);
}

/// A sink that receives nothing: the placeholder of a backend that
/// announces its writes but keeps no near tier.
///
/// ```
/// use std::sync::Weak;
/// use stampede::backend::{ChangeSink, NoSink};
///
/// let nobody: Weak<dyn ChangeSink> = Weak::<NoSink>::new();
/// assert!(nobody.upgrade().is_none());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSink;

impl ChangeSink for NoSink {
    fn changed(&self, _: &str, _: Option<CasToken>) {}
    fn flush(&self) {}
    fn started(&self) {}
    fn confirmed(&self) {}
    fn link(&self, _: bool) {}
}

/// The error of a coherence method a backend does not offer.
pub(crate) fn unsupported(backend: &'static str) -> Error {
    Error::Unsupported {
        backend,
        operation: "keep a near cache",
    }
}
