//! A delete during a fill, raced many times: does a fill that read the
//! database before a write store its old value after the write's delete?
//!
//! Each trial, on a fresh key: `get_or_fill` starts; its closure reads the
//! "database" (a version, `OLD`), signals that it has read, and waits. A
//! writer then updates the database (`NEW`), deletes the key from the
//! cache and lets the fill return. Afterwards the key is read: holding
//! `OLD`, the fill stored a stale value over the delete. The signals are
//! channels, not sleeps, so every trial has the delete inside the fill.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use stampede::{Cache, Fill};
use tokio::sync::oneshot;

/// The database's version before the writer.
const OLD: u64 = 1;
/// And after it.
const NEW: u64 = 2;

/// What the trials left in the cache.
#[derive(Clone, Debug, Default)]
pub struct RaceOutcome {
    pub trials: usize,
    /// The key held the old value: a stale value was stored.
    pub stale: usize,
    /// The key was empty.
    pub empty: usize,
    /// The key held the new value (nobody fills it in a trial: never).
    pub fresh: usize,
    pub secs: f64,
}

enum Found {
    Stale,
    Empty,
    Fresh,
}

async fn trial(cache: Cache, key: String, options: Fill) -> Found {
    let database = Arc::new(AtomicU64::new(OLD));
    let (read_tx, read_rx) = oneshot::channel::<()>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let filler = {
        let (cache, key, database) = (cache.clone(), key.clone(), Arc::clone(&database));
        async move {
            cache
                .get_or_fill(&key, options, move || async move {
                    let version = database.load(Ordering::SeqCst);
                    let _ = read_tx.send(()); // the fill has read the database
                    let _ = go_rx.await; // the writer has updated it and deleted the key
                    Ok::<u64, stampede::Error>(version)
                })
                .await
                .expect("get_or_fill")
        }
    };
    let writer = async {
        read_rx.await.expect("the fill read the database");
        database.store(NEW, Ordering::SeqCst);
        cache.delete(&key).await.expect("delete");
        let _ = go_tx.send(());
    };
    let (returned, ()) = tokio::join!(filler, writer);
    assert_eq!(returned, OLD, "the fill's caller gets what it read");
    match cache.get_value::<u64>(&key).await.expect("read back") {
        Some(OLD) => Found::Stale,
        Some(_) => Found::Fresh,
        None => Found::Empty,
    }
}

/// `trials` races on fresh keys, `in_flight` of them at a time.
pub async fn delete_during_fill(
    cache: &Cache,
    trials: usize,
    in_flight: usize,
    lease: Duration,
) -> RaceOutcome {
    let prefix = format!("race-{}", uuid::Uuid::new_v4().simple());
    let options = Fill::ttl(Duration::from_secs(300)).lease(lease);
    let started = Instant::now();
    let found: Vec<Found> = futures::stream::iter(0..trials)
        .map(|i| {
            tokio::spawn(trial(
                cache.clone(),
                format!("{prefix}-{i}"),
                options.clone(),
            ))
        })
        .buffer_unordered(in_flight.max(1))
        .map(|joined| joined.expect("a trial panicked"))
        .collect()
        .await;
    let mut outcome = RaceOutcome {
        trials,
        secs: started.elapsed().as_secs_f64(),
        ..RaceOutcome::default()
    };
    for found in found {
        match found {
            Found::Stale => outcome.stale += 1,
            Found::Empty => outcome.empty += 1,
            Found::Fresh => outcome.fresh += 1,
        }
    }
    outcome
}
