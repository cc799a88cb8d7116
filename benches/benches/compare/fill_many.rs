//! `get_or_fill_many` under contention: [`CALLERS`] callers released
//! together on [`KEYS`] cold keys, each asking for [`SPAN`] of them with
//! overlapping ranges (caller `c` wants keys `2c … 2c+19` mod 100, every
//! other caller in reverse order), so every key is wanted by ten callers.
//! The fill sleeps and counts the keys it is asked for: every key must be
//! filled exactly once per round, or the benchmark panics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stampede::{Cache, Fill};

use crate::batches::KEYS;
use crate::knobs::Knobs;

/// Callers per round.
pub const CALLERS: usize = 50;
/// Keys each caller asks for.
pub const SPAN: usize = 20;

/// What one backend's rounds measured, pooled.
#[derive(Clone, Debug, Default)]
pub struct FillMany {
    pub backend: &'static str,
    pub runs: usize,
    /// Callers that asked for each key (the same for every key).
    pub callers_per_key: usize,
    /// Per round: how many callers ran a fill.
    pub fill_calls: Vec<usize>,
    /// The fewest and the most fills of any key in any round.
    pub fills_per_key: (usize, usize),
    /// How long each fill took, as measured inside it, in ms.
    pub fill_ms: Vec<f64>,
    /// Per caller: its latency minus its round's shortest fill, in ms.
    pub overheads_ms: Vec<f64>,
}

/// The keys caller `c` asks for, in its order.
fn wanted(c: usize) -> Vec<String> {
    let mut keys: Vec<String> = (0..SPAN)
        .map(|j| format!("k{}", (2 * c + j) % KEYS))
        .collect();
    if c % 2 == 1 {
        keys.reverse();
    }
    keys
}

fn value_of(key: &str) -> String {
    format!("value of {key}")
}

/// `knobs.many_runs` rounds on `cache`, each in a fresh namespace.
///
/// # Panics
///
/// When a key is filled other than exactly once in a round, or a call
/// fails or returns other than every key it asked for.
pub async fn run(backend: &'static str, cache: &Cache, knobs: &Knobs) -> FillMany {
    let mut wants = vec![0; KEYS];
    for c in 0..CALLERS {
        for key in wanted(c) {
            wants[index(&key)] += 1;
        }
    }
    let mut figure = FillMany {
        backend,
        callers_per_key: wants[0],
        fills_per_key: (usize::MAX, 0),
        ..FillMany::default()
    };
    for round in 0..knobs.many_runs {
        let namespace = format!("many-{}", uuid::Uuid::new_v4().simple());
        let run = one_round(&cache.with_namespace(&namespace), knobs).await;
        for (key, &fills) in run.fills.iter().enumerate() {
            assert!(
                fills == 1,
                "{backend}: get_or_fill_many filled k{key} {fills} times in round {round} \
                 (namespace {namespace}); every key must be filled exactly once"
            );
        }
        let least = run.fills.iter().copied().min().unwrap_or(0);
        let most = run.fills.iter().copied().max().unwrap_or(0);
        figure.fills_per_key = (
            figure.fills_per_key.0.min(least),
            figure.fills_per_key.1.max(most),
        );
        let fill = run.fill_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let fill = if fill.is_finite() { fill } else { 0.0 };
        figure
            .overheads_ms
            .extend(run.latencies_ms.iter().map(|latency| latency - fill));
        figure.fill_calls.push(run.fill_ms.len());
        figure.fill_ms.extend(run.fill_ms);
        figure.runs += 1;
    }
    figure
}

/// The number in a key `k<n>`.
fn index(key: &str) -> usize {
    key.strip_prefix('k')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a bench key: {key}"))
}

/// What one round did.
struct Round {
    /// Fills per key.
    fills: Vec<usize>,
    /// Each fill's duration, ms.
    fill_ms: Vec<f64>,
    /// Each caller's latency from the release, ms.
    latencies_ms: Vec<f64>,
}

/// [`CALLERS`] callers of `get_or_fill_many` on `cache`, released together.
async fn one_round(cache: &Cache, knobs: &Knobs) -> Round {
    // Resolve the namespace before the clock starts (memcached reads its
    // generation on first use).
    cache.get("warm-up").await.expect("warm-up read");
    let fills: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let fill_ms = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(AtomicUsize::new(0));
    let options = Fill::ttl(Duration::from_secs(300)).lease(knobs.lease);
    let (go, gate) = tokio::sync::watch::channel(None::<Instant>);
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (cache, options, mut gate) = (cache.clone(), options.clone(), gate.clone());
            let (fills, fill_ms, ready) = (fills.clone(), fill_ms.clone(), ready.clone());
            let fill = knobs.many_fill;
            tokio::spawn(async move {
                let keys = wanted(c);
                ready.fetch_add(1, Ordering::SeqCst);
                let opened = gate
                    .wait_for(Option::is_some)
                    .await
                    .expect("gate")
                    .expect("open");
                let got: HashMap<String, String> = cache
                    .get_or_fill_many(&keys, options, |missing: Vec<String>| async move {
                        for key in &missing {
                            fills[index(key)].fetch_add(1, Ordering::SeqCst);
                        }
                        let began = Instant::now();
                        tokio::time::sleep(fill).await;
                        let took = began.elapsed().as_secs_f64() * 1e3;
                        fill_ms.lock().expect("fill times").push(took);
                        let values = missing.into_iter().map(|key| {
                            let value = value_of(&key);
                            (key, value)
                        });
                        Ok::<_, stampede::Error>(values.collect())
                    })
                    .await
                    .expect("get_or_fill_many");
                let latency = opened.elapsed().as_secs_f64() * 1e3;
                assert_eq!(got.len(), keys.len(), "caller {c}: every key it asked for");
                for key in &keys {
                    assert_eq!(got[key], value_of(key), "caller {c}: the value of {key}");
                }
                latency
            })
        })
        .collect();
    // Every caller at the gate before it opens.
    while ready.load(Ordering::SeqCst) < CALLERS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    go.send_replace(Some(Instant::now()));
    let mut latencies_ms = Vec::with_capacity(CALLERS);
    for caller in callers {
        latencies_ms.push(caller.await.expect("a caller panicked"));
    }
    let fill_ms = std::mem::take(&mut *fill_ms.lock().expect("fill times"));
    Round {
        fills: fills.iter().map(|n| n.load(Ordering::SeqCst)).collect(),
        fill_ms,
        latencies_ms,
    }
}
