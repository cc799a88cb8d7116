//! The report's sections on aiocache (the seed) and on stampedes.

use std::fmt::Write as _;

use serde_json::Value;

use crate::pairs::Mode;
use crate::report::{ms, spread, Results, Verdicts};
use crate::seed;
use crate::stampedes::Figure;

fn per_sec(us_per_pair: f64) -> String {
    format!("{:.0}", 1e6 / us_per_pair)
}

pub fn seed_section(w: &mut String, results: &Results, verdicts: &mut Verdicts) {
    let _ = writeln!(w, "\n## The seed: aiocache\n");
    let seed = match &results.seed {
        Ok(seed) => seed,
        Err(why) => {
            let _ = writeln!(w, "Not measured: {why}");
            verdicts.check(
                "aiocache measured in the same run",
                format!("not measured: {why}"),
                "measured",
                false,
            );
            return;
        }
    };
    let _ = writeln!(
        w,
        "aiocache {}'s own `RedLock` and `OptimisticLock` on Python {}, through \
         `benches/aiocache_compare.py`, against the same servers in the same run. \
         Its Redis cache uses a blocking pool of 64 connections (redis-py's \
         default pool refuses a 1,000-caller stampede); its memcached cache gets \
         a pool as large as the run's tasks (at most 64; its default is 2).\n\n\
         ### Uncontended pairs per second (information; the targets are against the floor)\n\n\
         The floor (the same commands by hand, from the table above) is the \
         most any client of these servers could do: **floor ÷ aiocache** is the \
         ceiling on **ours ÷ aiocache**. It is under 10× in most rows (a round \
         trip, or moka's compute, dominates both), so these ratios carry no \
         target: what the library adds is judged against the floor, above.\n\n\
         | backend | workload | mode | ours (pairs/s) | the floor (pairs/s) | aiocache (pairs/s) | ours ÷ aiocache | floor ÷ aiocache |\n\
         |---|---|---|---:|---:|---:|---:|---:|",
        seed["versions"]["aiocache"].as_str().unwrap_or("?"),
        seed["versions"]["python"].as_str().unwrap_or("?"),
    );
    for row in &results.rows {
        if row.workload.starts_with("lock+release") || row.workload == "get_or_fill hit" {
            continue;
        }
        let kind = if row.workload.starts_with("OptimisticLock") {
            "optimistic"
        } else {
            "redlock"
        };
        let mode = if matches!(row.mode, Mode::Sequential(_)) {
            "seq"
        } else {
            "conc"
        };
        let Some(theirs) = seed::pair_us(seed, row.backend, &format!("{kind}_{mode}")) else {
            continue;
        };
        let ratio = theirs / row.ours;
        let workload = if kind == "redlock" {
            "RedLock acquire+release"
        } else {
            "OptimisticLock acquire+cas"
        };
        let _ = writeln!(
            w,
            "| {} | {workload} | {} | {} | {} | {} | {ratio:.1}× | {:.1}× |",
            row.backend,
            row.mode.label(),
            per_sec(row.ours),
            per_sec(row.floor),
            per_sec(theirs),
            theirs / row.floor
        );
    }

    let _ = writeln!(
        w,
        "\n### {} × {} CAS increments of one counter\n\n\
         Every task adds 1 to one counter {} times: `OptimisticLock` acquire, \
         `cas(value + 1)`, and on a conflict straight back to acquire. aiocache's \
         `OptimisticLock` does not hand out the value it saw, so its loop also \
         `get`s the counter (one more round trip per attempt).\n\n\
         | backend | ours: increments/s | retries | lost | aiocache: increments/s | retries | lost | ours ÷ aiocache |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|",
        results.knobs.cas_tasks, results.knobs.cas_each, results.knobs.cas_each
    );
    for (backend, ours) in &results.cas {
        let theirs = &seed["cas"][*backend];
        let their_rate = theirs["increments"].as_f64().unwrap_or(0.0)
            / theirs["secs"].as_f64().unwrap_or(f64::NAN);
        let our_rate = ours.increments as f64 / ours.secs;
        let _ = writeln!(
            w,
            "| {backend} | {our_rate:.0} | {} | {} | {their_rate:.0} | {} | {} | {:.1}× |",
            ours.retries,
            ours.lost,
            theirs["retries"],
            theirs["lost"],
            our_rate / their_rate
        );
        verdicts.check(
            format!("{backend} CAS increments: no lost update"),
            format!("{} lost", ours.lost),
            "0",
            ours.lost == 0,
        );
        verdicts.check(
            format!("{backend} CAS increments: ≥ 10× aiocache's throughput"),
            format!("{:.1}×", our_rate / their_rate),
            "not measured (no hand-written floor for a contended CAS loop)",
            our_rate / their_rate >= 10.0,
        );
    }
}

fn aiocache_figure(seed: &Value, section: &str, backend: &str) -> Option<Figure> {
    let entry = &seed[section][backend];
    let latencies = seed::numbers(&entry["latencies_ms"]);
    if latencies.is_empty() {
        return None;
    }
    let fills = seed::numbers(&entry["fill_ms"]);
    let fill = fills.iter().copied().fold(f64::INFINITY, f64::min);
    let fill = if fill.is_finite() { fill } else { 0.0 };
    let mut figure = Figure {
        overheads_ms: latencies.iter().map(|l| l - fill).collect(),
        ..Figure::default()
    };
    figure.outcome.latencies_ms = latencies;
    figure.outcome.fill_ms = fills;
    figure.outcome.fill_start_ms = seed::numbers(&entry["fill_start_ms"]);
    figure.outcome.fills = entry["fills"].as_u64().unwrap_or(0) as usize;
    figure.max_fills = figure.outcome.fills;
    figure.runs = 1;
    Some(figure)
}

/// aiocache's figure for a backend and process count, if it ran.
pub fn aiocache_stampede(results: &Results, backend: &str, procs: usize) -> Option<Figure> {
    let seed = results.seed.as_ref().ok()?;
    let section = if procs > 1 {
        "stampede_procs"
    } else {
        "stampede"
    };
    aiocache_figure(seed, section, backend)
}

pub fn cells(figure: &Figure) -> String {
    let (p50, p99, max) = spread(&figure.overheads_ms);
    let began = if figure.outcome.fill_start_ms.is_empty() {
        "—".to_owned()
    } else {
        ms(mean(&figure.outcome.fill_start_ms))
    };
    format!(
        "{} | {began} | {} | {} | {} | {}",
        figure.max_fills,
        ms(mean(&figure.outcome.fill_ms)),
        ms(p50),
        ms(p99),
        ms(max)
    )
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

pub fn stampede_section(w: &mut String, results: &Results, verdicts: &mut Verdicts) {
    let k = &results.knobs;
    let _ = writeln!(
        w,
        "\n## Stampedes: {} callers of one missing key, fill {} ms, lease {} ms\n\n\
         Ours: `get_or_fill`, {} stampedes per line on fresh keys, latencies \
         pooled; spread over {} processes, each process runs {} callers and all \
         are released at the same instant. aiocache: the body of its own \
         `cached_stampede` decorator (`get`; on a miss `async with RedLock`, \
         `get` again, fill, `set`), one stampede per line. Latency is counted \
         from the release of every caller until its call returned, **minus the \
         fill time**; \"fills\" is the most fills any one stampede ran (1 is \
         the point). Targets for ours: 1 fill; p99 over the fill under 2 ms in \
         one process and under 5 ms across processes on Redis, and under 15 ms \
         across processes on memcached (whose other processes poll). The Redis \
         Cluster stampede runs in one process (the key and its fill lease \
         live on one master, reached through the cluster client's router); it \
         has the one-fill target and no latency target of its own.\n\n\
         \"fill began\" is when the (first) fill started after the release: \
         the part of the overhead spent before the fill, queued behind the \
         callers' own first reads and lock attempts.\n\n\
         | backend | processes | who | fills | fill began | fill time | p50 over fill | p99 over fill | max over fill |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|",
        k.callers,
        k.fill.as_millis(),
        k.lease.as_millis(),
        k.stampedes,
        k.procs,
        k.callers / k.procs
    );
    for (backend, procs, figure) in &results.stampedes {
        let _ = writeln!(w, "| {backend} | {procs} | ours | {} |", cells(figure));
        if let Some(theirs) = aiocache_stampede(results, backend, *procs) {
            let errors = results
                .seed
                .as_ref()
                .ok()
                .and_then(|seed| {
                    let section = if *procs > 1 {
                        "stampede_procs"
                    } else {
                        "stampede"
                    };
                    seed[section][*backend]["errors"].as_u64()
                })
                .unwrap_or(0);
            let note = if errors > 0 {
                format!(" ({errors} KeyErrors)")
            } else {
                String::new()
            };
            let _ = writeln!(
                w,
                "| {backend} | {procs} | aiocache{note} | {} |",
                cells(&theirs)
            );
        }
        stampede_verdicts(verdicts, backend, *procs, figure);
    }
    let _ = writeln!(
        w,
        "\n\"KeyErrors\": aiocache's `RedLock.__aexit__` raised `KeyError` (its \
         class-wide event map lost the entry; see the analysis). The script \
         catches them so the stampede can finish."
    );
}

/// A stampede row's targets: one fill per stampede, and where there is
/// one, the p99 over the fill (Redis in one process and across processes,
/// memcached across processes). The full report and the stampede rows run
/// alone both judge by these.
pub fn stampede_verdicts(verdicts: &mut Verdicts, backend: &str, procs: usize, figure: &Figure) {
    verdicts.check(
        format!("{backend}, {procs} process(es): exactly one fill per stampede"),
        format!("{} at most", figure.max_fills),
        "1",
        figure.max_fills == 1 && figure.outcome.fills == figure.runs,
    );
    let limit = match (backend, procs > 1) {
        ("redis", false) => Some(2.0),
        ("redis", true) => Some(5.0),
        ("memcached", true) => Some(15.0),
        _ => None,
    };
    if let Some(limit) = limit {
        let (_, p99, _) = spread(&figure.overheads_ms);
        verdicts.check(
            format!("{backend}, {procs} process(es): p99 over the fill < {limit} ms"),
            ms(p99),
            "about one round trip (a wake-up, then a read)",
            p99 < limit,
        );
    }
}
