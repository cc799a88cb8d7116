//! Our stampede figures: N callers of `get_or_fill` on one key, in one
//! process, and spread over several OS processes (this binary run again;
//! see `child`).

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stampede::Cache;
use stampede_benches::stampede_run::{self, StampedeOutcome};

use crate::child;
use crate::knobs::Knobs;

/// Pooled outcome of several stampedes, with each caller's latency minus
/// the fill time of its own stampede.
#[derive(Clone, Debug, Default)]
pub struct Figure {
    pub outcome: StampedeOutcome,
    /// How many stampedes were pooled.
    pub runs: usize,
    /// The most fills any one stampede ran.
    pub max_fills: usize,
    /// Latency minus fill time, per caller, in ms.
    pub overheads_ms: Vec<f64>,
    /// Latency minus the end of the (first) fill, per caller, in ms: how
    /// late callers learnt of the value, without the wait for the fill to
    /// start. Callers in other processes count from their own release, so
    /// a process released late can come out below zero.
    pub after_fill_ms: Vec<f64>,
}

impl Figure {
    pub fn add(&mut self, run: StampedeOutcome) {
        let fill = run.fill_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let fill = if fill.is_finite() { fill } else { 0.0 };
        self.overheads_ms
            .extend(run.latencies_ms.iter().map(|latency| latency - fill));
        if let (Some(start), Some(took)) = (run.fill_start_ms.first(), run.fill_ms.first()) {
            let end = start + took;
            self.after_fill_ms
                .extend(run.latencies_ms.iter().map(|latency| latency - end));
        }
        self.max_fills = self.max_fills.max(run.fills);
        self.runs += 1;
        self.outcome.merge(run);
    }
}

fn fresh_key() -> String {
    format!("report-{}", uuid::Uuid::new_v4().simple())
}

/// `knobs.stampedes` stampedes of `knobs.callers` callers in this process.
pub async fn one_process(cache: &Cache, knobs: &Knobs) -> Figure {
    let mut figure = Figure::default();
    for _ in 0..knobs.stampedes {
        let run = stampede_run::stampede(
            cache,
            &fresh_key(),
            knobs.callers,
            knobs.fill,
            knobs.lease,
            SystemTime::now(),
        )
        .await;
        figure.add(run);
    }
    figure
}

/// `knobs.stampedes` stampedes whose callers are split over `knobs.procs`
/// processes, all released at the same wall-clock time.
pub fn across_processes(url: &str, knobs: &Knobs) -> Figure {
    let mut figure = Figure::default();
    let share = (knobs.callers / knobs.procs).max(1);
    for _ in 0..knobs.stampedes {
        let key = fresh_key();
        // Time for every process to start and connect before the release.
        let start_at = SystemTime::now() + Duration::from_millis(800);
        let start_us = start_at
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_micros();
        let children: Vec<_> = (0..knobs.procs)
            .map(|_| {
                Command::new(std::env::current_exe().expect("this binary"))
                    .env(child::ROLE, "stampede")
                    .env(child::URL, url)
                    .env(child::KEY, &key)
                    .env(child::CALLERS, share.to_string())
                    .env(child::FILL_MS, knobs.fill.as_millis().to_string())
                    .env(child::LEASE_MS, knobs.lease.as_millis().to_string())
                    .env(child::START_US, start_us.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start a stampede process")
            })
            .collect();
        let mut run = StampedeOutcome::default();
        for process in children {
            let part: StampedeOutcome = child::collect(process, "stampede process");
            run.merge(part);
        }
        figure.add(run);
    }
    figure
}
