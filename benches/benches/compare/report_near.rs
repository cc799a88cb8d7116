//! The report's section on the near cache: a hit against a moka `get` by
//! hand, cross-node staleness on Redis, and round trips saved.

use std::fmt::Write as _;

use crate::knobs::Knobs;
use crate::near::NearResults;
use crate::near_trips::{KEYS, OPS_PER_SEC, TRUST, VALUE_LEN, WRITE_EVERY, ZIPF_S};
use crate::report::{spread, us, Verdicts};

/// The most a near hit may cost over a moka `get` by hand.
pub const HIT_TARGET: f64 = 1.5;
/// The most a write may stay unseen on another node, at the 99th percentile.
pub const STALE_P99_MS: f64 = 5.0;

/// Writes the section and adds its targets to `verdicts`.
pub fn section(w: &mut String, near: &NearResults, knobs: &Knobs, verdicts: &mut Verdicts) {
    hits(w, near, knobs, verdicts);
    staleness(w, near, verdicts);
    trips(w, near, verdicts);
}

fn hits(w: &mut String, near: &NearResults, knobs: &Knobs, verdicts: &mut Verdicts) {
    if near.hits.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "\n## Near cache: a hit against a moka `get` by hand\n\n\
         A cache on Redis with a near cache (`try_with_near_cache(NearCache::max_capacity(64 << 20))`), \
         every key already copied from the server (written by another node, read here). \
         `get_shared::<T>` returns an `Arc<T>` of a small struct \
         (`{{ id: u64, name: String, tags: Vec<String> }}`); `get` the stored bytes. \
         Time per call: sequential, and {} tasks on task-own keys (wall time ÷ calls); \
         the median of {} interleaved rounds. Target: ours ≤ {HIT_TARGET}× the floor.\n\n\
         | workload | mode | ours | the floor | ours ÷ floor | target |\n\
         |---|---|---:|---:|---:|---:|",
        knobs.tasks, knobs.rounds
    );
    for row in &near.hits {
        let ratio = row.ours / row.floor;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {ratio:.2} | ≤ {HIT_TARGET} |",
            row.workload,
            row.mode.label(),
            us(row.ours),
            us(row.floor),
        );
        verdicts.check(
            format!(
                "{} ({}): ≤ {HIT_TARGET}× a moka get",
                row.workload,
                row.mode.label()
            ),
            format!("{ratio:.2}×"),
            "1.00× (the floor)",
            ratio <= HIT_TARGET,
        );
    }
    let c = near.hit_check;
    let _ = writeln!(
        w,
        "\nWhile the rows ran the near cache counted {} hits, {} misses, {} \
         reads from the server, {} invalidations and {} flushes, and {} \
         values were decoded: a `get_shared` hit hands out the `Arc` the copy \
         keeps, decoded when the copy was first read, and a `get` hit the \
         copy's `Bytes`.\n",
        c.hits, c.misses, c.backend_reads, c.invalidations, c.flushes, c.decodes
    );
    let mut seen = Vec::new();
    for row in &near.hits {
        if !seen.contains(&row.workload) {
            seen.push(row.workload);
            let _ = writeln!(w, "- {}: the floor is a {}", row.workload, row.floor_does);
        }
    }
    verdicts.check(
        "near hit: get_shared::<T> decodes nothing per hit",
        format!("{} decodes in {} hits", c.decodes, c.hits),
        "0",
        c.decodes == 0,
    );
    verdicts.check(
        "near hit rows: every call answered from a copy",
        format!("{} misses, {} server reads", c.misses, c.backend_reads),
        "0 misses",
        c.misses == 0 && c.backend_reads == 0 && c.hits > 0,
    );
}

fn staleness(w: &mut String, near: &NearResults, verdicts: &mut Verdicts) {
    let Some(s) = &near.staleness else {
        return;
    };
    let (p50, p99, max) = spread(&s.staleness_ms);
    let _ = writeln!(
        w,
        "\n## Near cache: cross-node staleness on Redis\n\n\
         Two handles on the same Redis, each with a near cache of its own (two \
         nodes). One sets a key to 1, 2, 3, … at {} writes/s, paced (each \
         millisecond, the writes due by then, pipelined in order), noting when \
         each is acknowledged; the other calls `get` on the key in a loop and \
         notes when it first sees each new value. The staleness of write *n*: \
         when the reader first saw a value ≥ *n*, minus *n*'s acknowledgement \
         (0 if seen before it). Over {:.1} s of writes after a warm-up of a \
         quarter of that. Target: p99 ≤ {STALE_P99_MS} ms.\n\n\
         | writes/s asked | achieved | writes | p50 | p99 | max | never seen | reads that went back |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {:.0} | {} | {p50:.3} ms | {p99:.3} ms | {max:.3} ms | {} | {} |\n\n\
         The reader's {} `get`s over the run: {} from a copy, {} from the server, \
         after {} invalidations.",
        s.rate,
        s.secs,
        s.rate,
        s.achieved,
        s.writes,
        s.unseen,
        s.regressions,
        s.gets,
        s.reader.hits,
        s.reader.backend_reads,
        s.reader.invalidations,
    );
    let rate_met = s.achieved >= 0.95 * f64::from(s.rate);
    verdicts.check(
        format!(
            "redis + near: cross-node staleness p99 ≤ {STALE_P99_MS} ms at {} writes/s",
            s.rate
        ),
        format!("{p99:.3} ms at {:.0} writes/s", s.achieved),
        "≈ 0 ms (the announcement's one hop)",
        p99 <= STALE_P99_MS && rate_met,
    );
    verdicts.check(
        "redis + near: every write seen by the other node, no read going back",
        format!("{} unseen, {} went back", s.unseen, s.regressions),
        "0 / 0",
        s.unseen == 0 && s.regressions == 0,
    );
}

fn trips(w: &mut String, near: &NearResults, verdicts: &mut Verdicts) {
    if near.trips.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "\n## Near cache: round trips saved under a skewed read load\n\n\
         {KEYS} keys of {VALUE_LEN} bytes read with Zipf-like popularity (s = {ZIPF_S}), \
         one operation in {WRITE_EVERY} a write of a key drawn the same way by another node, \
         {OPS_PER_SEC} operations a second, one after another; the same seeded sequence with \
         plain handles and with a near cache on both nodes (memcached's trust window: \
         {} ms, the default), after every key was written and read once. The reads' \
         round trips are counted by the server side. Information, no target: what is \
         saved depends on the load's skew and write rate.\n\n\
         | backend | reads | writes | round trips without | per read | with the near cache | per read | saved | from a copy | server reads | checks | invalidations | run time without / with |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        TRUST.as_millis()
    );
    for t in &near.trips {
        let per = |n: u64| n as f64 / t.reads.max(1) as f64;
        let saved = 1.0 - t.near as f64 / t.plain.max(1) as f64;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {:.3} | {} | {:.3} | {:.1}% | {} | {} | {} | {} | {:.2} / {:.2} s |",
            t.backend,
            t.reads,
            t.writes,
            t.plain,
            per(t.plain),
            t.near,
            per(t.near),
            saved * 100.0,
            t.stats.hits,
            t.stats.backend_reads,
            t.stats.revalidations,
            t.stats.invalidations,
            t.secs.0,
            t.secs.1,
        );
        let by_library = t.stats.backend_reads + t.stats.revalidations;
        verdicts.check(
            format!(
                "{} + near: the server counts every read's round trip (without: one per read; with: the near cache's reads + checks)",
                t.backend
            ),
            format!(
                "{} of {} reads; {} of {}",
                t.plain, t.reads, t.near, by_library
            ),
            "equal",
            t.plain == t.reads && t.near == by_library,
        );
    }
    let _ = writeln!(w, "\nCounted by:\n");
    for t in &near.trips {
        let _ = writeln!(w, "- {}: {}", t.backend, t.counted_by);
    }
}

/// The section alone, with its targets: what `STAMPEDE_BENCH_ONLY=near`
/// prints.
pub fn alone(near: &NearResults, knobs: &Knobs) -> String {
    let mut out = String::new();
    let mut verdicts = Verdicts::default();
    let mut command = Knobs::set_in_env();
    command.push("cargo bench -p stampede-benches --bench compare".to_owned());
    let _ = writeln!(
        out,
        "# Near-cache rows alone\n\nMeasured by `{}`; not written to BENCHMARKS.md.",
        command.join(" ")
    );
    section(&mut out, near, knobs, &mut verdicts);
    out.push('\n');
    crate::report::targets_section(&mut out, &verdicts);
    out
}
