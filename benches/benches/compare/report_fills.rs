//! The report's sections on fills: their round trips, counted, and a
//! delete landing inside a fill, raced, ours beside aiocache's.

use std::fmt::Write as _;

use serde_json::Value;

use crate::race::RaceOutcome;
use crate::report::{Results, Verdicts};

/// `n: A, B, …`, or `0` when nothing was sent.
fn sequence<S: AsRef<str>>(requests: &[S]) -> String {
    if requests.is_empty() {
        return "0".to_owned();
    }
    let names: Vec<&str> = requests.iter().map(AsRef::as_ref).collect();
    format!("{}: {}", names.len(), names.join(", "))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// aiocache's race figures for a backend, from the seed's JSON.
fn aiocache_race(seed: &Value, backend: &str) -> Option<RaceOutcome> {
    let entry = &seed["race"][backend];
    let count = |name: &str| entry[name].as_u64().map(|n| n as usize);
    Some(RaceOutcome {
        trials: count("trials")?,
        stale: count("stale")?,
        empty: count("empty")?,
        fresh: count("fresh")?,
        secs: entry["secs"].as_f64()?,
    })
}

pub fn fills_section(w: &mut String, results: &Results, verdicts: &mut Verdicts) {
    let seed = results.seed.as_ref().ok();
    let _ = writeln!(
        w,
        "\n## Round trips of a fill, counted\n\n\
         One leader's `get_or_fill` of a fresh key (the cold fill), then one \
         `get_or_fill` of the same key (a hit), after a warm-up (connections \
         open, scripts loaded). Nothing is assumed: Redis commands are read \
         from `MONITOR` (commands run inside scripts, `[0 lua]`, are not round \
         trips and are left out), memcached requests are counted by a proxy on \
         loopback between the client and the server, and on memory, which has \
         no wire, the calls reaching the `Backend` are logged by a wrapper \
         passed to `Cache::custom`. aiocache runs the body of its \
         `cached_stampede` decorator (`get`; on a miss `RedLock`'s `add`, `get`, \
         the fill, `set`, the release), counted the same way; on memory, by \
         the calls of its backend methods. Targets for ours: 2 for a cold \
         fill (the read that takes the fill lease, the write-back under it) \
         and 1 for a hit; on Redis at most 3 for a cold fill (a plain `GET` \
         first, so that a stampede's callers send one lease script per \
         process, not one each).\n\n\
         | backend | who | counted by | leader's cold fill | hit |\n\
         |---|---|---|---|---|"
    );
    for trips in &results.round_trips {
        let _ = writeln!(
            w,
            "| {} | ours | {} | {} | {} |",
            trips.backend,
            trips.counted_by,
            sequence(&trips.cold),
            sequence(&trips.hit)
        );
        if let Some(theirs) = seed.map(|seed| &seed["round_trips"][trips.backend]) {
            if theirs.is_object() {
                let _ = writeln!(
                    w,
                    "| {} | aiocache | {} | {} | {} |",
                    trips.backend,
                    theirs["counted_by"].as_str().unwrap_or("?"),
                    sequence(&strings(&theirs["cold"])),
                    sequence(&strings(&theirs["hit"]))
                );
            }
        }
        // The targets: 2 where the lease comes with the first read
        // (memcached's vivify, memory), at most 3 on Redis, which peeks with
        // a plain GET so that a stampede sends one lease script per process.
        let most = if trips.backend == "redis" { 3 } else { 2 };
        verdicts.check(
            format!(
                "{}: a leader's cold fill is at most {most} round trips",
                trips.backend
            ),
            trips.cold.len().to_string(),
            "2 (the read that takes the lease, the write-back under it)",
            trips.cold.len() <= most,
        );
        verdicts.check(
            format!("{}: a hit is 1 round trip", trips.backend),
            trips.hit.len().to_string(),
            "1",
            trips.hit.len() == 1,
        );
    }

    let k = &results.knobs;
    let _ = writeln!(
        w,
        "\n## A delete during the fill, {} times per backend\n\n\
         Each trial, on a fresh key: a fill starts; its closure reads the \
         \"database\" (version *old*), signals that it has, and waits; a writer \
         then updates the database (*new*), deletes the key from the cache, \
         and lets the fill return. The delete always lands after the fill \
         read the database and before it returns (signals, not sleeps). \
         Afterwards the key is read: **stale** means the fill stored *old* \
         over the delete, and every later reader gets data the database no \
         longer holds, until the TTL. {} trials in flight at once, on \
         distinct keys. Ours: `get_or_fill` (the delete voids the fill's \
         lease, so its write-back is refused). aiocache: the same race on its \
         `cached_stampede` body, where nothing ties the `set` to what happened \
         since the `get`. Target for ours: no stale value stored.\n\n\
         | backend | who | trials | stale values stored | key empty after | time |\n\
         |---|---|---:|---:|---:|---:|",
        k.race_trials, k.race_in_flight
    );
    for (backend, ours) in &results.races {
        let _ = writeln!(w, "| {backend} | ours | {} |", race_cells(ours));
        if let Some(theirs) = seed.and_then(|seed| aiocache_race(seed, backend)) {
            let _ = writeln!(w, "| {backend} | aiocache | {} |", race_cells(&theirs));
        }
        verdicts.check(
            format!("{backend}: no stale value stored by a fill a delete landed in"),
            format!("{} of {}", ours.stale, ours.trials),
            "0",
            ours.stale == 0 && ours.trials > 0,
        );
    }
}

fn race_cells(race: &RaceOutcome) -> String {
    let fresh = if race.fresh > 0 {
        format!(" (and {} new)", race.fresh)
    } else {
        String::new()
    };
    format!(
        "{} | **{}** | {}{fresh} | {:.1} s",
        race.trials, race.stale, race.empty, race.secs
    )
}
