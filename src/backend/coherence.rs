//! What an in-process copy kept in front of a shared backend (a near
//! tier) needs from that backend to stay coherent: reads that say which
//! write they saw and for how long the value lives, a way to ask whether a
//! remembered write is still the current one, and a feed of other
//! processes' writes.
//!
//! Nothing here knows about the tier itself; a backend offers one of two
//! ways to stay coherent ([`Coherence`]):
//!
//! - **Push** (Redis): every write the backend makes announces the key and
//!   its new version, atomically with the write, in a numbered log that
//!   other processes follow ([`ChangeSink`]).
//! - **Revalidate** (memcached, which cannot push): the tier asks whether
//!   the version it holds is still stored ([`Revalidated`]).

use std::time::Duration;

use bytes::Bytes;

use super::CasToken;

/// How a backend keeps a near tier coherent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(all(feature = "redis", feature = "memcached")), allow(dead_code))]
pub(crate) enum Coherence {
    /// Writes are announced, in order, to every process.
    Push,
    /// Nothing is announced; a copy is checked against the stored version.
    Revalidate,
    /// A near tier cannot be kept coherent here, for this reason.
    Unsupported(&'static str),
}

/// A value read with what a near tier needs to keep a copy of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Versioned {
    /// The value, as [`Backend::get`](super::Backend::get) returns it.
    pub(crate) value: Bytes,
    /// The write it came from; `None` when a copy must not be kept (a lock
    /// record, a value marked stale, a value written by another client).
    pub(crate) version: Option<CasToken>,
    /// How long the backend keeps it from the moment of the read; `None`
    /// for no TTL.
    pub(crate) ttl: Option<Duration>,
}

/// The answer to "is this version still the stored one?".
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "memcached"), allow(dead_code))]
pub(crate) enum Revalidated {
    /// It is, and the value lives this much longer (`None`: no TTL).
    Same(Option<Duration>),
    /// It is not (another write, a delete, an expiry).
    Changed,
}

/// Where a backend's feed delivers other processes' writes, in the order
/// they were made. Held weakly: the feed stops once the receiver is gone.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) trait ChangeSink: Send + Sync + 'static {
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
pub(crate) struct NoSink;

impl ChangeSink for NoSink {
    fn changed(&self, _: &str, _: Option<CasToken>) {}
    fn flush(&self) {}
    fn started(&self) {}
    fn confirmed(&self) {}
    fn link(&self, _: bool) {}
}
