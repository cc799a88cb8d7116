//! Resident memory while many distinct locks are held, in waves, on the
//! memory backend; run in a process of its own (see `child`) so that the
//! peak is this workload's alone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stampede::{Cache, RedLock};
use stampede_benches::{measure, runtime};

use crate::child;

/// What the run measured.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MemoryReport {
    pub locks: usize,
    pub wave: usize,
    /// Waiters per wave: one `acquire` waiting on every tenth lock.
    pub waiters_per_wave: usize,
    pub secs: f64,
    /// VmRSS once the runtime and an empty cache exist.
    pub baseline_rss: u64,
    /// VmRSS with a whole wave held and its waiters waiting (largest wave).
    pub held_rss: u64,
    /// VmHWM at the end: the peak.
    pub peak_hwm: u64,
    /// VmRSS after the last wave.
    pub final_rss: u64,
    /// Keys with waiters at the height of a wave (should be waiters_per_wave).
    pub waiting_keys_at_peak: usize,
    /// `Cache::waiting_lock_keys()` and `held_lock_count()` after every wave:
    /// the largest seen (0 means the maps emptied every time).
    pub waiting_keys_after: usize,
    pub held_after: usize,
}

/// Runs the workload in a child process and returns its report.
pub fn run(locks: usize, wave: usize) -> MemoryReport {
    let process = Command::new(std::env::current_exe().expect("this binary"))
        .env(child::ROLE, "memory")
        .env(child::LOCKS, locks.to_string())
        .env(child::WAVE, wave.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the memory process");
    child::collect(process, "memory process")
}

/// In the child: hold `locks` distinct locks, `wave` at a time, with a
/// waiter on every tenth, then release them; check the maps empty.
pub fn held_in_waves(locks: usize, wave: usize) -> MemoryReport {
    let rt = runtime(2);
    rt.block_on(async move {
        let cache = Cache::memory();
        let lease = Duration::from_secs(60);
        let baseline_rss = measure::resident_memory().map_or(0, |(_, rss)| rss);
        let started = Instant::now();
        let (mut held_rss, mut waiting_keys_at_peak) = (0, 0);
        let (mut waiting_keys_after, mut held_after) = (0, 0);
        let mut waiters_per_wave = 0;
        let mut done = 0;
        while done < locks {
            let size = wave.min(locks - done);
            let mut guards = Vec::with_capacity(size);
            let mut waiters = Vec::with_capacity(size / 10 + 1);
            for i in done..done + size {
                let lock = RedLock::new(&cache, format!("lock-{i}"), lease);
                let guard = lock.try_acquire().await.expect("acquire").expect("free");
                if i % 10 == 0 {
                    waiters.push(tokio::spawn(async move {
                        let waited = lock.acquire().await.expect("wait");
                        assert!(!waited.holds_lock() && waited.was_woken());
                    }));
                }
                guards.push(guard);
            }
            waiters_per_wave = waiters.len();
            // Let every waiter register before the wave is released.
            while cache.waiting_lock_keys() < waiters.len() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            waiting_keys_at_peak = waiting_keys_at_peak.max(cache.waiting_lock_keys());
            held_rss = held_rss.max(measure::resident_memory().map_or(0, |(_, rss)| rss));
            for guard in &guards {
                assert!(guard.release().await.expect("release"));
            }
            for waiter in waiters {
                waiter.await.expect("waiter");
            }
            drop(guards);
            waiting_keys_after = waiting_keys_after.max(cache.waiting_lock_keys());
            held_after = held_after.max(cache.held_lock_count());
            done += size;
        }
        let (peak_hwm, final_rss) = measure::resident_memory().unwrap_or((0, 0));
        MemoryReport {
            locks,
            wave,
            waiters_per_wave,
            secs: started.elapsed().as_secs_f64(),
            baseline_rss,
            held_rss,
            peak_hwm,
            final_rss,
            waiting_keys_at_peak,
            waiting_keys_after,
            held_after,
        }
    })
}
