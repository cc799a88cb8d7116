//! The report's section on batches: `get_many` against 100 `get`s and a
//! batch sent by hand, and `get_or_fill_many` under overlapping callers.

use std::fmt::Write as _;

use crate::batches::{Batches, KEYS, PAYLOAD};
use crate::fill_many::{CALLERS, SPAN};
use crate::knobs::Knobs;
use crate::report::{ms, spread, us, Verdicts};

/// The target of `get_many`: at most this many times the floor's batch.
const GET_MANY_TARGET: f64 = 1.3;

/// Writes the section and adds its targets to `verdicts`.
pub fn section(w: &mut String, batches: &Batches, knobs: &Knobs, verdicts: &mut Verdicts) {
    let _ = writeln!(
        w,
        "\n## Batches: `get_many` of {KEYS} keys\n\n\
         One `get_many` of {KEYS} present keys ({PAYLOAD}-byte values), one call \
         after another, against the same {KEYS} keys read with {KEYS} sequential \
         `get`s and against one batch sent by hand with the same client crate \
         (the floor: see below; it reads values of the size ours stores). Time \
         per batch of {KEYS} keys; each figure is the median of {} interleaved \
         rounds. Target: ours ≤ {GET_MANY_TARGET}× the floor.\n\n\
         | backend | ours: `get_many` | {KEYS} × `get` | the floor | ours ÷ floor | target | {KEYS} × `get` ÷ ours |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        knobs.rounds
    );
    for row in &batches.get_many {
        let ratio = row.ours / row.floor;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {ratio:.2} | ≤ {GET_MANY_TARGET} | {:.1}× |",
            row.backend,
            us(row.ours),
            us(row.gets),
            us(row.floor),
            row.gets / row.ours
        );
        verdicts.check(
            format!(
                "{}: get_many of {KEYS} keys ≤ {GET_MANY_TARGET}× the hand-sent batch",
                row.backend
            ),
            format!("{ratio:.2}×"),
            "1.00× (the floor)",
            ratio <= GET_MANY_TARGET,
        );
    }
    let _ = writeln!(w, "\nWhat each floor sends:\n");
    for row in &batches.get_many {
        let _ = writeln!(w, "- {}: {}", row.backend, row.floor_does);
    }
    fill_many_section(w, batches, knobs, verdicts);
    attribute_section(w, batches, knobs, verdicts);
}

fn attribute_section(w: &mut String, batches: &Batches, knobs: &Knobs, verdicts: &mut Verdicts) {
    let target = crate::attribute::TARGET;
    let _ = writeln!(
        w,
        "\n## `#[cached]`: a hit through the attribute against the same call by hand\n\n\
         A hit of `#[cached(cache = cache, key = \"record:{{id}}\", ttl = \"10m\", lease = \"10s\")]` \
         against the `format!` + `Fill` + `get_or_fill` it stands for, written by hand \
         (`benches/benches/compare/attribute.rs`), one call after another; the median of \
         {} short interleaved rounds. Target: ≤ {target}×.\n\n\
         | backend | `#[cached]` hit | by hand | ratio | target |\n\
         |---|---:|---:|---:|---:|",
        knobs.rounds * 8
    );
    for row in &batches.attribute {
        let ratio = row.attribute / row.by_hand;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {ratio:.3} | ≤ {target} |",
            row.backend,
            us(row.attribute),
            us(row.by_hand)
        );
        verdicts.check(
            format!(
                "{}: a #[cached] hit ≤ {target}× the hand-written get_or_fill",
                row.backend
            ),
            format!("{ratio:.3}×"),
            "1.000× (the same call by hand)",
            ratio <= target,
        );
    }
}

fn fill_many_section(w: &mut String, batches: &Batches, knobs: &Knobs, verdicts: &mut Verdicts) {
    let _ = writeln!(
        w,
        "\n## Batches: `get_or_fill_many` of {KEYS} cold keys, {CALLERS} callers\n\n\
         {} rounds per backend, each on {KEYS} fresh keys (a new namespace): \
         {CALLERS} callers released together, caller *c* asking for the {SPAN} \
         keys 2*c* … 2*c*+{} (mod {KEYS}), every other caller in reverse order, \
         so that every key is wanted by several callers at once. The fill sleeps \
         {} ms and counts the keys it is given; the benchmark fails unless every \
         key is filled exactly once in every round. Latency is counted from the \
         release until the caller has all its keys, **minus the fill time**; \
         \"fill calls\" is how many callers ran a fill in a round (median, and \
         the range).\n\n\
         | backend | rounds | callers per key | fill calls | fills per key | fill time (median) | p50 over fill | p99 over fill | max over fill |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|",
        knobs.many_runs,
        SPAN - 1,
        knobs.many_fill.as_millis()
    );
    for figure in &batches.fill_many {
        let mut calls: Vec<f64> = figure.fill_calls.iter().map(|&n| n as f64).collect();
        let (least, most) = (
            figure.fill_calls.iter().min().copied().unwrap_or(0),
            figure.fill_calls.iter().max().copied().unwrap_or(0),
        );
        let calls = stampede_benches::measure::median(&mut calls);
        let (fill, _, _) = spread(&figure.fill_ms);
        let (p50, p99, max) = spread(&figure.overheads_ms);
        let (fewest, most_fills) = figure.fills_per_key;
        let fills = if fewest == most_fills {
            format!("**{fewest}**")
        } else {
            format!("**{fewest}–{most_fills}**")
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {calls:.0} ({least}–{most}) | {fills} | {} | {} | {} | {} |",
            figure.backend,
            figure.runs,
            figure.callers_per_key,
            ms(fill),
            ms(p50),
            ms(p99),
            ms(max)
        );
        verdicts.check(
            format!(
                "{}: get_or_fill_many fills every key exactly once",
                figure.backend
            ),
            format!("{fills} per key, {} rounds", figure.runs),
            "1 per key",
            fewest == 1 && most_fills == 1,
        );
    }
}

/// The section alone, with its targets: what `STAMPEDE_BENCH_ONLY=batches`
/// prints.
pub fn alone(batches: &Batches, knobs: &Knobs) -> String {
    let mut out = String::new();
    let mut verdicts = Verdicts::default();
    let _ = writeln!(
        out,
        "# Batch rows alone\n\nMeasured by `{}`; not written to BENCHMARKS.md.",
        run_command()
    );
    section(&mut out, batches, knobs, &mut verdicts);
    out.push('\n');
    crate::report::targets_section(&mut out, &verdicts);
    out
}

/// The command that ran, knobs included.
fn run_command() -> String {
    let mut command = Knobs::set_in_env();
    command.push("cargo bench -p stampede-benches --bench compare".to_owned());
    command.join(" ")
}
