//! The report: tables in Markdown, printed and written to BENCHMARKS.md,
//! with a verdict on every target.

use std::fmt::Write as _;

use serde_json::Value;
use stampede_benches::measure::percentile;

use crate::batches::Batches;
use crate::cas::CasOutcome;
use crate::environment::Environment;
use crate::knobs::Knobs;
use crate::memory::MemoryReport;
use crate::pairs::{Mode, Row};
use crate::race::RaceOutcome;
use crate::round_trips::RoundTrips;
use crate::seed;
use crate::stampedes::Figure;

/// Everything one run measured.
pub struct Results {
    pub knobs: Knobs,
    pub rows: Vec<Row>,
    /// (backend, processes, figure)
    pub stampedes: Vec<(&'static str, usize, Figure)>,
    pub cas: Vec<(&'static str, CasOutcome)>,
    pub memory: MemoryReport,
    /// A leader's cold fill and a hit, counted on the wire, per backend.
    pub round_trips: Vec<RoundTrips>,
    /// (backend, delete-during-fill races)
    pub races: Vec<(&'static str, RaceOutcome)>,
    /// `get_many` and `get_or_fill_many`, per backend.
    pub batches: Batches,
    /// The near cache's rows.
    pub near: crate::near::NearResults,
    pub seed: Result<Value, String>,
    pub environment: Environment,
    pub command: String,
    pub secs: f64,
}

pub(crate) fn us(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0} µs")
    } else if value >= 10.0 {
        format!("{value:.1} µs")
    } else {
        format!("{value:.2} µs")
    }
}

pub(crate) fn ms(value: f64) -> String {
    format!("{value:.2} ms")
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// aiocache's µs per pair for a row, from the seed's JSON.
fn aiocache_us(seed: &Value, row: &Row) -> Option<f64> {
    let kind = if row.workload.starts_with("OptimisticLock") {
        "optimistic"
    } else {
        "redlock"
    };
    let mode = match row.mode {
        Mode::Sequential(_) => "seq",
        Mode::Concurrent { .. } => "conc",
    };
    seed::pair_us(seed, row.backend, &format!("{kind}_{mode}"))
}

/// The peer of a row: rslock when measured, else aiocache's RedLock /
/// OptimisticLock (never for lock+release, which aiocache lacks, nor on a
/// Redis Cluster, which aiocache does not speak).
fn peer(results: &Results, row: &Row) -> Option<(String, f64)> {
    if let Some(peer) = &row.peer {
        return Some(peer.clone());
    }
    // aiocache has no like-for-like call for a bare get_or_fill hit.
    if row.backend == "redis-cluster" || row.workload == "get_or_fill hit" {
        return None;
    }
    let seed = results.seed.as_ref().ok()?;
    let name = if row.workload.starts_with("OptimisticLock") {
        "aiocache OptimisticLock"
    } else {
        "aiocache RedLock"
    };
    aiocache_us(seed, row).map(|us| (name.to_owned(), us))
}

/// The most ours may cost over the floor: on the network backends, the
/// round trip is most of both; on memory, the library's own bookkeeping
/// (owner token, deadline, registry, wake-up maps) is most of ours, so a
/// lock pair may cost up to twice a bare map insert and remove.
fn floor_target(backend: &str, workload: &str) -> f64 {
    match (backend, workload) {
        ("memory", "acquire+release") => 2.0,
        ("memory", _) => 3.0,
        _ => 1.15,
    }
}

/// The most a sequential memory acquire+release may take, in µs.
const MEMORY_LOCK_PAIR_US: f64 = 0.4;

/// One target of a run: what it asks, what was measured, the best any
/// implementation could measure (its ceiling), and whether it was met.
struct Verdict {
    target: String,
    measured: String,
    ceiling: String,
    met: bool,
}

/// Every target of a run.
#[derive(Default)]
pub(crate) struct Verdicts(Vec<Verdict>);

impl Verdicts {
    pub(crate) fn check(
        &mut self,
        target: impl Into<String>,
        measured: impl Into<String>,
        ceiling: impl Into<String>,
        met: bool,
    ) {
        self.0.push(Verdict {
            target: target.into(),
            measured: measured.into(),
            ceiling: ceiling.into(),
            met,
        });
    }
}

pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let mut verdicts = Verdicts(Vec::new());
    let k = &results.knobs;
    let w = &mut out;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by the command below; every figure is measured in that one run \
         against the same servers. Do not edit by hand: run it again. The \
         analysis at the end is the only hand-written part.\n"
    );
    let _ = writeln!(w, "```sh\n{}\n```\n", results.command);
    let _ = writeln!(w, "The run took {:.0} s.\n", results.secs);
    let _ = writeln!(w, "## Machine and versions\n\n| | |\n|---|---|");
    for (name, value) in &results.environment.lines {
        let _ = writeln!(w, "| {name} | {value} |");
    }

    // ------------------------------------------------------------ pairs
    let _ = writeln!(
        w,
        "\n## Ours, the floor and the peers\n\n\
         Time per operation pair. Sequential rows: the mean time of one pair. \
         \"{} tasks\" rows: that many tasks on distinct keys, wall time ÷ pairs \
         (1 / throughput). Each figure is the median of {} interleaved rounds. \
         **ours ÷ floor**: what the library costs over the same backend work \
         done by hand (target ≤ 1.15 on Redis, Redis Cluster and memcached; on \
         memory ≤ 2 for acquire+release, whose floor is a bare map insert and \
         remove, and ≤ 3 for the others; the ceiling of every such ratio is \
         1.00, the floor itself). **peer ÷ ours**: how many times faster we are than the \
         peer. The Redis Cluster rows (three masters, three replicas on \
         loopback; keys spread over the masters) have no peer: neither rslock \
         nor aiocache speaks cluster.\n",
        k.tasks, k.rounds
    );
    let _ = writeln!(
        w,
        "| backend | workload | mode | ours | the floor | ours ÷ floor | peer | peer | peer ÷ ours |\n\
         |---|---|---|---:|---:|---:|---|---:|---:|"
    );
    for row in &results.rows {
        let ratio = row.ours / row.floor;
        let (peer_name, peer_cell, speedup) = match peer(results, row) {
            Some((name, peer_us)) => (name, us(peer_us), format!("{:.2}×", peer_us / row.ours)),
            None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {} |",
            row.backend,
            row.workload,
            row.mode.label(),
            us(row.ours),
            us(row.floor),
            ratio,
            peer_name,
            peer_cell,
            speedup
        );
        let target = floor_target(row.backend, row.workload);
        verdicts.check(
            format!(
                "{} {} ({}): ours ≤ {target}× the floor",
                row.backend,
                row.workload,
                row.mode.label()
            ),
            format!("{ratio:.2}×"),
            "1.00× (the floor)",
            ratio <= target,
        );
        if (row.backend, row.workload) == ("memory", "acquire+release")
            && matches!(row.mode, crate::pairs::Mode::Sequential(_))
        {
            verdicts.check(
                format!("memory acquire+release (sequential): ≤ {MEMORY_LOCK_PAIR_US} µs"),
                us(row.ours),
                format!("{} (the floor)", us(row.floor)),
                row.ours <= MEMORY_LOCK_PAIR_US,
            );
        }
        if let Some((name, peer_us)) = &row.peer {
            verdicts.check(
                format!(
                    "{} {} ({}): faster than {name}",
                    row.backend,
                    row.workload,
                    row.mode.label()
                ),
                format!("{:.2}× as fast", peer_us / row.ours),
                format!("{:.2}× (the floor)", peer_us / row.floor),
                *peer_us > row.ours,
            );
        }
    }
    let _ = writeln!(
        w,
        "\nWhat each floor sends, by hand, with the same client crate:\n"
    );
    let mut seen = Vec::new();
    for row in &results.rows {
        if !seen.contains(&(row.backend, row.workload)) {
            seen.push((row.backend, row.workload));
            let _ = writeln!(w, "- {} {}: {}", row.backend, row.workload, row.floor_does);
        }
    }
    let _ = writeln!(
        w,
        "- rslock: `LockManager::lock` (`SET NX PX`) and `unlock` (`EVALSHA` of its \
         release script) on one Redis; our `acquire()` sends the same commands, and \
         our `lock()` also issues a fencing token in the same script. Not on the \
         Redis Cluster rows: it talks to one server only."
    );

    crate::report_seed::seed_section(w, results, &mut verdicts);
    crate::report_seed::stampede_section(w, results, &mut verdicts);
    crate::report_fills::fills_section(w, results, &mut verdicts);
    crate::report_batches::section(w, &results.batches, k, &mut verdicts);
    crate::report_near::section(w, &results.near, k, &mut verdicts);
    memory_section(w, results, &mut verdicts);

    let _ = writeln!(
        w,
        "\n## Stampede latency, ours and aiocache's\n\n\
         ![Stampede latency: share of callers served by each time, ours and aiocache's]({})\n",
        crate::chart::FILE
    );

    targets_section(w, &verdicts);
    let analysis = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ANALYSIS.md");
    if let Ok(text) = std::fs::read_to_string(analysis) {
        let _ = writeln!(w, "{}", text.trim_end());
    }
    out
}

/// The table of every target, met or missed, and the count missed.
pub(crate) fn targets_section(w: &mut String, verdicts: &Verdicts) {
    let _ = writeln!(
        w,
        "## Targets\n\nThe ceiling is the best any implementation could measure: \
         the floor's own figure, or the least the protocol allows.\n\n\
         | target | measured | ceiling | |\n|---|---|---|---|"
    );
    for verdict in &verdicts.0 {
        let Verdict {
            target,
            measured,
            ceiling,
            met,
        } = verdict;
        let _ = writeln!(
            w,
            "| {target} | {measured} | {ceiling} | {} |",
            if *met { "met" } else { "**missed**" }
        );
    }
    let missed = verdicts.0.iter().filter(|verdict| !verdict.met).count();
    let _ = writeln!(w, "\n{missed} of {} targets missed.\n", verdicts.0.len());
}

fn memory_section(w: &mut String, results: &Results, verdicts: &mut Verdicts) {
    let m = &results.memory;
    let _ = writeln!(
        w,
        "\n## Memory: {} distinct locks in waves of {}\n\n\
         On the memory backend, in a process of its own: each wave takes {} \
         distinct locks with `try_acquire`, parks one `acquire` waiter on every \
         tenth, then releases them all (waking the waiters). {:.1} s in all.\n\n\
         | | |\n|---|---|\n\
         | resident at start (VmRSS) | {} |\n\
         | resident with a wave held and its waiters parked | {} |\n\
         | peak resident (VmHWM) | {} |\n\
         | resident after the last wave | {} |\n\
         | peak over start, per lock held | {:.0} bytes |\n\
         | keys with waiters at the height of a wave | {} |\n\
         | `waiting_lock_keys()` after each wave (largest) | {} |\n\
         | `held_lock_count()` after each wave (largest) | {} |",
        m.locks,
        m.wave,
        m.wave,
        m.secs,
        mib(m.baseline_rss),
        mib(m.held_rss),
        mib(m.peak_hwm),
        mib(m.final_rss),
        m.peak_hwm.saturating_sub(m.baseline_rss) as f64 / m.wave.min(m.locks).max(1) as f64,
        m.waiting_keys_at_peak,
        m.waiting_keys_after,
        m.held_after,
    );
    verdicts.check(
        "memory: the wake-up map and the held-lock registry return to empty",
        format!(
            "waiting {} / held {} after every wave",
            m.waiting_keys_after, m.held_after
        ),
        "0 / 0",
        m.waiting_keys_after == 0 && m.held_after == 0,
    );
}

/// p50 / p99 / max of `values`.
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(0.0),
    )
}
