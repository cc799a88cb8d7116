//! The near cache's cross-node staleness on Redis: how long after a write
//! is acknowledged to its writer another node's reads still return the
//! value before it.
//!
//! Two handles opened from the same URL, each with a near cache of its
//! own (two nodes, as far as the library can tell). The writer sets one
//! key to 1, 2, 3, … at a paced rate: every millisecond it sends, at once
//! (pipelined on its one connection, in order), the writes due by then,
//! and notes when each is acknowledged. The reader, on another task, calls
//! `get` on the key in a loop (a copy while there is one; after each
//! invalidation one read from the server) and notes when it first sees
//! each new value. The staleness of write *n* is when the reader first saw
//! a value ≥ *n*, minus when *n* was acknowledged (0 if it was seen
//! before the acknowledgement came back).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use stampede::{Cache, NearStats};

/// The writes' TTL: longer than any run.
const TTL: Duration = Duration::from_secs(600);
/// How long the reader keeps reading after the last write, at most.
const DRAIN: Duration = Duration::from_secs(1);

/// What the row measured.
#[derive(Clone, Debug)]
pub struct Staleness {
    /// Writes per second asked for.
    pub rate: u32,
    /// Writes in the measured window (the warm-up's left out).
    pub writes: usize,
    /// Measured writes ÷ the time from the window's start to the last
    /// acknowledgement.
    pub achieved: f64,
    /// The measured window, in seconds.
    pub secs: f64,
    /// Per measured write, in ms.
    pub staleness_ms: Vec<f64>,
    /// Measured writes the reader never saw (nor anything later) within
    /// [`DRAIN`] of the last write.
    pub unseen: usize,
    /// Reads that returned less than a value read before.
    pub regressions: usize,
    /// The reader's `get`s, over the whole run.
    pub gets: u64,
    /// The reader's near cache over the whole run.
    pub reader: NearStats,
}

/// Opens a node: a cache at `url` with a near cache of its own.
pub async fn node(url: &str) -> Cache {
    Cache::from_url(url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
        .try_with_near_cache(stampede::NearCache::max_capacity(64 << 20))
        .expect("a near cache on Redis")
}

/// Writes `key` at `rate` writes/s for `warm` (not counted) and then
/// `measured`, while another node reads it.
pub async fn run(url: &str, key: &str, rate: u32, measured: Duration) -> Staleness {
    let (writer, reader) = (node(url).await, node(url).await);
    writer.set(key, "0", Some(TTL)).await.expect("set 0");
    // The reader's first read starts its invalidation feed.
    assert!(reader.get(key).await.expect("first read").is_some());
    let warm = measured / 4;
    let done = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicU64::new(0));
    let reading = tokio::spawn(read_loop(
        reader.clone(),
        key.to_owned(),
        Arc::clone(&done),
        Arc::clone(&last),
    ));

    let started = Instant::now();
    let acks = write_paced(&writer, key, rate, started, warm + measured).await;
    last.store(acks.len() as u64, Ordering::Release);
    done.store(true, Ordering::Release);
    let (seen, regressions, gets) = reading.await.expect("the reader panicked");

    // Writes due at or after the warm-up's end are measured: seq n is due
    // at n / rate seconds.
    let first = (warm.as_secs_f64() * f64::from(rate)).ceil() as usize + 1;
    let window_start = started + warm;
    let (mut staleness_ms, mut unseen) = (Vec::new(), 0);
    for (at, ack) in acks.iter().enumerate().skip(first - 1) {
        let seq = at as u64 + 1;
        let found = seen.partition_point(|(value, _)| *value < seq);
        match seen.get(found) {
            Some((_, when)) => {
                staleness_ms.push(when.saturating_duration_since(*ack).as_secs_f64() * 1e3)
            }
            None => unseen += 1,
        }
    }
    let writes = acks.len().saturating_sub(first - 1);
    let secs = acks
        .last()
        .map_or(0.0, |ack| ack.duration_since(window_start).as_secs_f64());
    Staleness {
        rate,
        writes,
        achieved: writes as f64 / secs.max(f64::EPSILON),
        secs,
        staleness_ms,
        unseen,
        regressions,
        gets,
        reader: reader.near_stats().expect("the reader has a near cache"),
    }
}

/// Sets `key` to 1, 2, 3, … for `total` at `rate` writes/s: every
/// millisecond, the writes due by then, sent together. The acknowledgement
/// time of write n is at index n - 1.
async fn write_paced(
    writer: &Cache,
    key: &str,
    rate: u32,
    started: Instant,
    total: Duration,
) -> Vec<Instant> {
    let mut acks = Vec::with_capacity((total.as_secs_f64() * f64::from(rate)) as usize + 16);
    let mut tick = 0u32;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= total {
            return acks;
        }
        let due = (elapsed.as_secs_f64() * f64::from(rate)) as u64;
        let issued = acks.len() as u64;
        if due > issued {
            // join_all polls in order, so the writes are queued on the
            // connection, and reach the server, in sequence order.
            let batch = (issued + 1..=due).map(|seq| async move {
                writer
                    .set(key, seq.to_string(), Some(TTL))
                    .await
                    .expect("set");
                Instant::now()
            });
            acks.extend(join_all(batch).await);
        }
        tick += 1;
        tokio::time::sleep_until((started + Duration::from_millis(1) * tick).into()).await;
    }
}

/// Reads `key` in a loop until the writer is `done` and the value reached
/// `last` (or [`DRAIN`] passed). Returns each new highest value with when
/// it was first seen, the reads that went backwards, and the reads.
async fn read_loop(
    reader: Cache,
    key: String,
    done: Arc<AtomicBool>,
    last: Arc<AtomicU64>,
) -> (Vec<(u64, Instant)>, usize, u64) {
    let (mut seen, mut highest, mut regressions, mut gets) = (Vec::new(), 0u64, 0usize, 0u64);
    let mut drain_until: Option<Instant> = None;
    loop {
        let value = reader.get(&key).await.expect("get").expect("present");
        gets += 1;
        let now = Instant::now();
        let value: u64 = std::str::from_utf8(&value)
            .expect("utf-8")
            .parse()
            .expect("a number");
        if value > highest {
            highest = value;
            seen.push((value, now));
        } else if value < highest {
            regressions += 1;
        }
        if done.load(Ordering::Acquire) {
            if highest >= last.load(Ordering::Acquire) {
                break;
            }
            let until = *drain_until.get_or_insert(now + DRAIN);
            if now >= until {
                break;
            }
        }
        // A hit never waits on anything: without this the loop would keep
        // its worker from the feed and the writer.
        tokio::task::yield_now().await;
    }
    (seen, regressions, gets)
}
