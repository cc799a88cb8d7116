//! The waiting step of `get_or_fill_many`: waiting for the keys other
//! callers are filling, woken as their leases end (in this process at once,
//! in others through the backend), and reading them again in one batch.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use super::claims::Claims;
use super::many::{Batch, FillsMany, Found, Keys};
use super::policy::StorePolicy;
use crate::backend::Backend;
use crate::clock::deadline;
use crate::codec::Codec;
use crate::ctx::wakeups::Waiter;
use crate::{Error, Result};

/// How long a caller that waited holds leases it was then granted while
/// other keys of its call are still being filled by others, before it
/// fills what it holds. Leases that end together (a caller cancelled, a
/// fill failed) are collected into one fill; two callers each holding what
/// the other waits for fill after it.
const GATHER: Duration = Duration::from_millis(20);

/// What a wait ended with.
pub(super) struct Waited<T> {
    /// Values that arrived, by name.
    pub(super) found: HashMap<String, T>,
    /// The leases this caller holds: those it came in with, and those it
    /// was granted (keys whose fillers gave up).
    pub(super) claims: Claims,
    /// Keys still being filled by others.
    pub(super) left: Vec<usize>,
}

impl<C: Codec, P: StorePolicy<F::Value>, F: FillsMany> Batch<'_, C, P, F> {
    /// Waits until every key in `waiting` (indexes into the call's keys)
    /// has a value or a lease granted to this caller, and returns once
    /// nothing is out, or [`GATHER`] after it was first granted a lease.
    /// Coming in with leases (`granted`), it reads once and returns. Waiting
    /// past twice the lease is [`Error::FilledElsewhereFailed`].
    pub(super) async fn wait_for_others(
        &self,
        waiting: &[usize],
        mut granted: Claims,
    ) -> Result<Waited<F::Value>> {
        let waiters = self.register(waiting).await;
        let backend = self.scope.backend();
        let gives_up = deadline(self.started, self.patience());
        // Coming in with leases (the call's first read found some keys free
        // and others busy), read the busy ones once more before filling:
        // leases given back together (a cancelled caller's) are seen
        // together, at the cost of one round trip and no waiting.
        let mut gather_until = (!granted.held.is_empty()).then(Instant::now);
        let mut found = HashMap::with_capacity(waiting.len());
        let mut left: Vec<usize> = (0..waiting.len()).collect();
        loop {
            // Enabled before the read, so a lease that ends right after it
            // still wakes us.
            let mut woken: Vec<Pin<Box<Notified<'_>>>> = left
                .iter()
                .map(|&w| Box::pin(waiters[w].notified()))
                .collect();
            for notified in &mut woken {
                notified.as_mut().enable();
            }
            // An error drops `granted`, which gives its leases back.
            let still = self
                .read_again(waiting, &left, &mut found, &mut granted)
                .await?;
            let now = Instant::now();
            let done = if granted.held.is_empty() {
                still.is_empty()
            } else {
                let until = *gather_until.get_or_insert(deadline(now, GATHER));
                still.is_empty() || now >= until
            };
            if done {
                let left = still.iter().map(|&w| waiting[w]).collect();
                let claims = granted;
                return Ok(Waited {
                    found,
                    claims,
                    left,
                });
            }
            if now >= gives_up {
                let key = self.keys.names[waiting[still[0]]].clone();
                tracing::warn!(key, "gave up waiting for another caller's fill");
                return Err(Error::FilledElsewhereFailed { key });
            }
            let lease_end = deadline(now, backend.lease_life(self.fill.lease));
            let wake = gather_until.map_or(lease_end, |until| until.min(lease_end));
            tokio::select! {
                _ = futures::future::select_all(woken) => {}
                () = tokio::time::sleep_until(wake.min(gives_up)) => {}
            }
            left = still;
        }
    }

    /// Registers a waiter for each key in `waiting`, woken here and, through
    /// the backend, by other processes.
    async fn register(&self, waiting: &[usize]) -> Vec<Waiter<'_>> {
        let wakeups = self.scope.fill_wakeups();
        let waiters: Vec<_> = waiting
            .iter()
            .map(|&i| wakeups.register(&self.keys.full[i]))
            .collect();
        let backend = self.scope.backend();
        join_all(waiters.iter().map(|w| w.watch_remote_fills(backend))).await;
        waiters
    }

    /// Reads the keys `left` (indexes into `waiting`) again in one batch:
    /// values go to `found`, leases granted to `granted`; returns the ones
    /// still being filled by others.
    async fn read_again(
        &self,
        waiting: &[usize],
        left: &[usize],
        found: &mut HashMap<String, F::Value>,
        granted: &mut Claims,
    ) -> Result<Vec<usize>> {
        let keys = &self.keys;
        let full: Vec<&str> = left
            .iter()
            .map(|&w| keys.full[waiting[w]].as_str())
            .collect();
        let reads = self
            .scope
            .backend()
            .read_for_fill_many(&full, self.fill.lease)
            .await?;
        let mut still = Vec::with_capacity(left.len());
        for (&w, read) in left.iter().zip(reads) {
            let i = waiting[w];
            match self.judge(i, read)? {
                Found::Value(value) => {
                    found.insert(keys.names[i].clone(), value);
                }
                Found::Wait => still.push(w),
                Found::Lease(lease) => granted.held.push((keys.full[i].clone(), lease)),
            }
        }
        Ok(still)
    }
}

/// The index in the call's keys of a backend key.
pub(super) fn index_of(keys: &Keys, full: &str) -> usize {
    keys.full
        .iter()
        .position(|key| key == full)
        .unwrap_or_default()
}
