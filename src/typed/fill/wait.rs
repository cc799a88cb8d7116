//! The last step of `get_or_fill_many`: waiting for the keys other callers
//! are filling, woken as their leases end (in this process at once, in
//! others through the backend), and reading them again in one batch.

use std::collections::HashMap;
use std::pin::Pin;

use futures::future::join_all;
use serde::de::DeserializeOwned;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use super::many::{judge, patience, Claims, Found, Keys};
use super::options::Fill;
use crate::backend::{Backend, LeaseToken};
use crate::clock::deadline;
use crate::typed::Codec;
use crate::{Cache, Error, Result};

/// What a wait ended with.
pub(super) struct Waited<T> {
    /// Values that arrived, by name.
    pub(super) found: HashMap<String, T>,
    /// Leases this caller was granted (keys nobody fills any more), by
    /// index into the call's keys; only when it may still fill.
    pub(super) leases: Vec<(usize, LeaseToken)>,
    /// Keys still being filled by others.
    pub(super) left: Vec<usize>,
}

/// Waits until every key in `waiting` (indexes into `keys`) has a value,
/// or, when `can_lead`, until some key has nobody filling it any more and
/// this caller got its lease. A key whose lease ends without a value when
/// this caller cannot fill it (its fill has run) is
/// [`Error::FilledElsewhereFailed`]; so is waiting past twice the lease.
pub(super) async fn wait_for_others<C: Codec, P, T: DeserializeOwned>(
    cache: &Cache,
    codec: &C,
    fill: &Fill<P>,
    keys: &Keys,
    waiting: &[usize],
    started: Instant,
    can_lead: bool,
) -> Result<Waited<T>> {
    let wakeups = cache.fill_wakeups();
    let waiters: Vec<_> = waiting
        .iter()
        .map(|&i| wakeups.register(&keys.full[i]))
        .collect();
    join_all(
        waiters
            .iter()
            .map(|waiter| waiter.watch_remote_fills(cache.backend())),
    )
    .await;
    let gives_up = deadline(started, patience(cache, fill));
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
        let full: Vec<&str> = left
            .iter()
            .map(|&w| keys.full[waiting[w]].as_str())
            .collect();
        let reads = cache
            .backend()
            .read_for_fill_many(&full, fill.lease)
            .await?;
        let mut still = Vec::with_capacity(left.len());
        let mut leases = Vec::new();
        let mut orphans = Claims::new(cache);
        for (&w, read) in left.iter().zip(reads) {
            let i = waiting[w];
            match judge::<C, P, T>(codec, fill, &keys.names[i], read) {
                Ok(Found::Value(value)) => {
                    found.insert(keys.names[i].clone(), value);
                }
                Ok(Found::Wait) => still.push(w),
                Ok(Found::Lease(lease)) if can_lead => leases.push((i, lease)),
                // Nobody is filling it any more, and our fill has run.
                Ok(Found::Lease(lease)) => orphans.held.push((keys.full[i].clone(), lease)),
                Err(error) => {
                    orphans
                        .held
                        .extend(leases.drain(..).map(|(i, l)| (keys.full[i].clone(), l)));
                    orphans.give_back().await;
                    return Err(error);
                }
            }
        }
        let left_now = || still.iter().map(|&w| waiting[w]).collect();
        if !leases.is_empty() {
            return Ok(Waited {
                found,
                leases,
                left: left_now(),
            });
        }
        if let Some((key, _)) = orphans.held.first() {
            let name = name_of(keys, key);
            orphans.give_back().await;
            return Err(Error::FilledElsewhereFailed { key: name });
        }
        if still.is_empty() {
            return Ok(Waited {
                found,
                leases,
                left: Vec::new(),
            });
        }
        if Instant::now() >= gives_up {
            let name = keys.names[waiting[still[0]]].clone();
            tracing::warn!(key = name, "gave up waiting for another caller's fill");
            return Err(Error::FilledElsewhereFailed { key: name });
        }
        let wake = deadline(Instant::now(), cache.backend().lease_life(fill.lease)).min(gives_up);
        tokio::select! {
            _ = futures::future::select_all(woken) => {}
            () = tokio::time::sleep_until(wake) => {}
        }
        left = still;
    }
}

/// The caller's name for a backend key of this call.
fn name_of(keys: &Keys, full: &str) -> String {
    keys.full
        .iter()
        .position(|key| key == full)
        .map_or_else(|| full.to_owned(), |i| keys.names[i].clone())
}
