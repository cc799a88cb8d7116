//! A stampede: N callers of `get_or_fill` on one key, released together.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use stampede::{Cache, Fill};

/// What one stampede (or one process's share of it) did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StampedeOutcome {
    /// How many times the fill closure ran.
    pub fills: usize,
    /// How long each fill took, in milliseconds, as measured inside it.
    pub fill_ms: Vec<f64>,
    /// When each fill began, in milliseconds after the release of every
    /// caller: what the callers' own backend traffic cost the filler before
    /// it could start.
    #[serde(default)]
    pub fill_start_ms: Vec<f64>,
    /// Each caller's latency in milliseconds, from the release of all
    /// callers until its `get_or_fill` returned.
    pub latencies_ms: Vec<f64>,
    /// Whether the callers were released later than asked (the process
    /// was not ready in time); its latencies then start late.
    pub late_start: bool,
}

impl StampedeOutcome {
    /// Adds another process's share to this one.
    pub fn merge(&mut self, other: StampedeOutcome) {
        self.fills += other.fills;
        self.fill_ms.extend(other.fill_ms);
        self.fill_start_ms.extend(other.fill_start_ms);
        self.latencies_ms.extend(other.latencies_ms);
        self.late_start |= other.late_start;
    }
}

/// Runs `callers` concurrent `get_or_fill(key)` calls on `cache`, each in
/// its own task, released together at `start_at` (or at once when it has
/// passed). The fill sleeps `fill` and counts itself.
///
/// # Panics
///
/// When a call fails.
pub async fn stampede(
    cache: &Cache,
    key: &str,
    callers: usize,
    fill: Duration,
    lease: Duration,
    start_at: SystemTime,
) -> StampedeOutcome {
    let fills = Arc::new(AtomicUsize::new(0));
    let fill_ms = Arc::new(Mutex::new(Vec::new()));
    let options = Fill::ttl(Duration::from_secs(300)).lease(lease);
    let (go, gate) = tokio::sync::watch::channel(None::<Instant>);
    let handles: Vec<_> = (0..callers)
        .map(|_| {
            let (cache, key, options) = (cache.clone(), key.to_owned(), options.clone());
            let (fills, fill_ms, mut gate) = (fills.clone(), fill_ms.clone(), gate.clone());
            tokio::spawn(async move {
                let opened = gate
                    .wait_for(Option::is_some)
                    .await
                    .map(|opened| opened.expect("open"))
                    .expect("gate");
                let report: String = cache
                    .get_or_fill(&key, options, || async move {
                        fills.fetch_add(1, Ordering::SeqCst);
                        let began_ms = opened.elapsed().as_secs_f64() * 1e3;
                        let began = Instant::now();
                        tokio::time::sleep(fill).await;
                        fill_ms
                            .lock()
                            .expect("fill times")
                            .push((began_ms, began.elapsed().as_secs_f64() * 1e3));
                        Ok::<_, stampede::Error>("quarterly report: 42".to_owned())
                    })
                    .await
                    .expect("get_or_fill");
                assert_eq!(report, "quarterly report: 42");
                opened.elapsed().as_secs_f64() * 1e3
            })
        })
        .collect();
    // Every caller waits at the gate before it opens.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let late_start = match start_at.duration_since(SystemTime::now()) {
        Ok(wait) => {
            tokio::time::sleep(wait).await;
            false
        }
        Err(_) => true,
    };
    go.send_replace(Some(Instant::now()));
    let mut latencies_ms = Vec::with_capacity(callers);
    for handle in handles {
        latencies_ms.push(handle.await.expect("a caller panicked"));
    }
    let fill_times = std::mem::take(&mut *fill_ms.lock().expect("fill times"));
    StampedeOutcome {
        fills: fills.load(Ordering::SeqCst),
        fill_start_ms: fill_times.iter().map(|(start, _)| *start).collect(),
        fill_ms: fill_times.iter().map(|(_, took)| *took).collect(),
        latencies_ms,
        late_start,
    }
}
