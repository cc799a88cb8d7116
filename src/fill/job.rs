//! One `get_or_fill` call's context, and how a read is turned into the
//! next step.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::options::{Fill, Verdict};
use super::policy::StorePolicy;
use super::Filler;
use crate::backend::{Backend, CasToken, FillLease, FillRead, LeaseToken};
use crate::clock::deadline;
use crate::codec::frame::{now_unix_ms, Meta};
use crate::codec::{decode, encode, Codec};
use crate::{Result, Scope};

/// What one call works with: the cache, the codec, the key (as given and as
/// the backend sees it), the options, and when it stops waiting for others.
/// It carries the call's types (codec, policy, closure), so that the
/// guard's functions are its methods, under one set of bounds.
pub(super) struct Job<'a, C, P, F> {
    pub(super) scope: &'a Scope,
    pub(super) codec: &'a C,
    pub(super) key: &'a str,
    /// The key with the namespace applied.
    pub(super) full_key: Cow<'a, str>,
    pub(super) fill: &'a Fill<P>,
    /// When the call first waited on someone else's lease; its patience
    /// counts from here. Read from the clock only then: a hit never waits.
    started: OnceLock<Instant>,
    filler: PhantomData<fn() -> F>,
}

/// A read, judged.
pub(super) enum Step<T> {
    /// A value to return; `bytes` as stored, for a flight's followers.
    Done(T, Bytes),
    /// A value to return, due for an early or stale-while-revalidate
    /// refresh by whoever takes the key's fill lock; `seen` is its token.
    Refresh(T, Bytes, CasToken),
    /// A value marked stale, for a caller that serves stale values; with
    /// the lease when this caller was granted the refresh.
    ServeStale(T, Option<LeaseToken>),
    /// No value this caller may return: it needs one.
    Need(Need),
}

/// How a caller without a value gets one.
pub(super) enum Need {
    /// It holds the fill lease: fill, and store under it.
    Lease(LeaseToken),
    /// Someone else holds the lease: wait for them.
    Busy,
    /// No value, and the lease was not asked for (a peek): read again,
    /// asking for it.
    Ask,
    /// A value is stored but past its time (the backend keeps it a little
    /// longer than its frame says): replace it under the key's
    /// [`RedLock`](crate::RedLock), compare-and-set against `seen`.
    Replace(CasToken),
}

impl<'a, C: Codec, P, F> Job<'a, C, P, F> {
    pub(super) async fn new(
        scope: &'a Scope,
        codec: &'a C,
        key: &'a str,
        fill: &'a Fill<P>,
    ) -> Result<Self> {
        let full_key = scope.full_key(key).await?;
        Ok(Job {
            scope,
            codec,
            key,
            full_key,
            fill,
            started: OnceLock::new(),
            filler: PhantomData,
        })
    }

    /// How long a record written with this call's lease may live.
    fn lease_life(&self) -> Duration {
        self.scope.backend().lease_life(self.fill.lease)
    }

    /// Past this, a caller waiting on someone else's lease fills itself:
    /// twice the lease, as the backend keeps it.
    fn patience_ends(&self) -> Instant {
        let started = *self.started.get_or_init(Instant::now);
        deadline(started, self.lease_life().saturating_mul(2))
    }

    /// Whether this caller has waited on others as long as it will.
    pub(super) fn out_of_patience(&self) -> bool {
        Instant::now() >= self.patience_ends()
    }

    /// How long one wait on someone else's lease may last.
    pub(super) fn next_wake(&self) -> Instant {
        deadline(Instant::now(), self.lease_life()).min(self.patience_ends())
    }

    /// Wakes this process's callers waiting on a fill of the key.
    pub(super) fn wake_waiters(&self) {
        self.scope.fill_wakeups().wake(&self.full_key);
    }
}

impl<C: Codec, P: StorePolicy<F::Value>, F: Filler> Job<'_, C, P, F> {
    /// Reads the key, taking the fill lease if it needs filling, and judges
    /// what was read.
    pub(super) async fn read(&self) -> Result<Step<F::Value>> {
        let read = self
            .scope
            .backend()
            .read_for_fill(&self.full_key, self.fill.lease)
            .await?;
        self.judge(read)
    }

    /// The first read of a call: a peek where the backend has a cheaper
    /// read than the lease read, else the lease read. A value marked stale
    /// is read again with the lease at once, so that one stale reader wins
    /// the refresh; a miss asks for the lease later, once per process.
    pub(super) async fn peek_or_read(&self) -> Result<Step<F::Value>> {
        match self.scope.backend().peek_for_fill(&self.full_key).await? {
            Some(read) if !read.stale => self.judge(read),
            _ => self.read().await,
        }
    }

    pub(super) fn judge(&self, read: FillRead) -> Result<Step<F::Value>> {
        let serves_stale = self.fill.stale_for.is_some();
        let Some((bytes, token)) = read.value else {
            return Ok(Step::Need(match read.lease {
                FillLease::Granted(lease) => Need::Lease(lease),
                FillLease::NotAsked => Need::Ask,
                // NotNeeded without a value is not a valid answer; wait.
                FillLease::Busy | FillLease::NotNeeded => Need::Busy,
            }));
        };
        let (meta, value) = decode(self.codec, self.key, &bytes)?;
        if read.stale {
            return Ok(match read.lease {
                FillLease::Granted(lease) if serves_stale => Step::ServeStale(value, Some(lease)),
                FillLease::Granted(lease) => Step::Need(Need::Lease(lease)),
                FillLease::NotAsked => Step::Need(Need::Ask),
                FillLease::Busy | FillLease::NotNeeded if serves_stale => {
                    Step::ServeStale(value, None)
                }
                FillLease::Busy | FillLease::NotNeeded => Step::Need(Need::Busy),
            });
        }
        // The wall clock is read only for a value that can go stale.
        let expires = meta.is_some_and(|meta| meta.fresh_until_ms.is_some());
        let now_ms = if expires { now_unix_ms() } else { 0 };
        Ok(match self.fill.judge(meta, now_ms) {
            Verdict::Fresh => Step::Done(value, bytes),
            Verdict::Refresh => Step::Refresh(value, bytes, token),
            Verdict::Missing => Step::Need(Need::Replace(token)),
        })
    }

    /// Whether the fill's policy stores `value`, and with which TTL (fresh
    /// time; see [`Fill::storage_ttl`] for how long the backend keeps it).
    pub(super) fn store_for(&self, value: &F::Value) -> Option<Option<Duration>> {
        self.fill.policy.store_for(value, self.fill.ttl)
    }

    /// The value framed and encoded for storing, fresh for `ttl`.
    pub(super) fn encode(
        &self,
        value: &F::Value,
        fill_time: Duration,
        ttl: Option<Duration>,
    ) -> Result<Bytes> {
        let meta = Meta::fresh_for(ttl, fill_time);
        Ok(Bytes::from(encode(self.codec, self.key, value, meta)?))
    }

    /// Stored bytes decoded.
    pub(super) fn decode(&self, bytes: &[u8]) -> Result<F::Value> {
        Ok(decode(self.codec, self.key, bytes)?.1)
    }
}
