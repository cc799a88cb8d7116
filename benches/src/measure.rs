//! Timing loops and percentiles.

use std::future::Future;
use std::time::{Duration, Instant};

/// Runs `op(i)` for `i` in `0..n`, one after another; returns the wall time.
pub async fn sequential<F, Fut>(n: usize, mut op: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    for i in 0..n {
        op(i).await;
    }
    started.elapsed()
}

/// Runs `op(task, i)` `per_task` times in each of `tasks` tokio tasks, all
/// released at once; returns the wall time from the release until the last
/// task is done.
pub async fn concurrent<F, Fut>(tasks: usize, per_task: usize, op: F) -> Duration
where
    F: Fn(usize, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (go, gate) = tokio::sync::watch::channel(false);
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (op, mut gate) = (op.clone(), gate.clone());
            tokio::spawn(async move {
                let _ = gate.wait_for(|open| *open).await;
                for i in 0..per_task {
                    op(task, i).await;
                }
            })
        })
        .collect();
    // Let every task reach the gate before the clock starts.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let started = Instant::now();
    go.send_replace(true);
    for handle in handles {
        handle.await.expect("a benchmark task panicked");
    }
    started.elapsed()
}

/// The `q` quantile (0.0 to 1.0) of `sorted` by nearest rank; 0 when empty.
///
/// ```
/// use stampede_benches::measure::percentile;
/// let sorted = [1.0, 2.0, 3.0, 4.0];
/// assert_eq!(percentile(&sorted, 0.5), 2.0);
/// assert_eq!(percentile(&sorted, 1.0), 4.0);
/// ```
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values` (sorted in place); 0 when empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(values, 0.5)
}

/// Peak and current resident memory of this process, in bytes, from
/// `/proc/self/status` (`VmHWM`, `VmRSS`); `None` where there is no procfs.
pub fn resident_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let kib = line.strip_prefix(name)?.trim().strip_suffix("kB")?.trim();
            kib.parse::<u64>().ok().map(|kib| kib * 1024)
        })
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
