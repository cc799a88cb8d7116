//! `STAMPEDE_BENCH_ONLY=stampedes[:<backends>]`: the stampede rows alone,
//! in about a minute, for trying a change to how waiters wait. Prints the
//! table (and, on memcached, the reads the server counted per stampede)
//! and writes nothing.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpStream;

use stampede::Cache;
use stampede_benches::servers;

use crate::knobs::Knobs;
use crate::report::{spread, Verdicts};
use crate::report_seed::cells;
use crate::stampedes::{self, Figure};

/// One row: the backend, its processes, the figure, and memcached's
/// `cmd_get` per stampede over the row (`None` elsewhere).
type Row = (&'static str, usize, Figure, Option<f64>);

/// Runs the one-process stampede on every backend in `backends`, and the
/// one spread over `knobs.procs` processes on Redis and memcached, then
/// prints the table.
pub fn run(knobs: &Knobs, backends: &[&'static str]) {
    let run_id = format!("stampedes-{}", uuid::Uuid::new_v4().simple());
    let rt = stampede_benches::runtime(2);
    let mut rows: Vec<Row> = Vec::new();
    for &backend in backends {
        let (url, params) = match backend {
            "memory" => ("memory://".to_owned(), String::new()),
            "redis" => (servers::redis_url(), String::new()),
            "redis-cluster" => (servers::redis_cluster_url(), String::new()),
            _ => (servers::memcached_url(), knobs.memcached_params.clone()),
        };
        let query = if params.is_empty() {
            format!("namespace={run_id}")
        } else {
            format!("namespace={run_id}&{params}")
        };
        let gets = || (backend == "memcached").then(|| cmd_get(&servers::host_port(&url)));
        let before = gets();
        let figure = rt.block_on(async {
            let cache = Cache::from_url(&format!("{url}?{query}"))
                .await
                .unwrap_or_else(|e| panic!("open {url}: {e}"));
            cache.get("warm-up").await.expect("warm-up read");
            stampedes::one_process(&cache, knobs).await
        });
        eprintln!("{backend}: one process done");
        rows.push((backend, 1, figure, per_stampede(before, gets(), knobs)));
        if matches!(backend, "redis" | "memcached") {
            let before = gets();
            let figure = stampedes::across_processes(&format!("{url}?{query}"), knobs);
            eprintln!("{backend}: {} processes done", knobs.procs);
            rows.push((
                backend,
                knobs.procs,
                figure,
                per_stampede(before, gets(), knobs),
            ));
        }
    }
    println!("{}", table(&rows, knobs));
}

fn per_stampede(before: Option<u64>, after: Option<u64>, knobs: &Knobs) -> Option<f64> {
    let (before, after) = (before?, after?);
    Some(after.saturating_sub(before) as f64 / knobs.stampedes as f64)
}

fn table(rows: &[Row], knobs: &Knobs) -> String {
    let mut w = String::new();
    let mut command = Knobs::set_in_env();
    command.push("cargo bench -p stampede-benches --bench compare".to_owned());
    let _ = writeln!(
        w,
        "# Stampede rows alone\n\nMeasured by `{}`; not written to BENCHMARKS.md. \
         {} callers of one missing key, fill {} ms, {} stampedes per row on \
         fresh keys, latencies pooled, minus the fill time. \"reads\": \
         memcached's `cmd_get` per stampede (every caller's first read, the \
         lease reads, and the pollers' `mg`). \"after the fill\": latency minus \
         the end of the fill, p50 / p99 / max: how late callers learnt of the \
         value, without the wait for the fill to start.\n\n\
         | backend | processes | fills | fill began | fill time | p50 over fill | p99 over fill | max over fill | after the fill | reads |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        command.join(" "),
        knobs.callers,
        knobs.fill.as_millis(),
        knobs.stampedes,
    );
    let mut verdicts = Verdicts::default();
    for (backend, procs, figure, reads) in rows {
        let reads = reads.map_or("—".to_owned(), |reads| format!("{reads:.0}"));
        let (p50, p99, max) = spread(&figure.after_fill_ms);
        let _ = writeln!(
            w,
            "| {backend} | {procs} | {} | {:.1} / {:.1} / {:.1} ms | {reads} |",
            cells(figure),
            p50,
            p99,
            max
        );
        crate::report_seed::stampede_verdicts(&mut verdicts, backend, *procs, figure);
    }
    w.push('\n');
    crate::report::targets_section(&mut w, &verdicts);
    w
}

/// memcached's `cmd_get` counter on `addr`, read over a connection of its own.
fn cmd_get(addr: &str) -> u64 {
    let mut stream = TcpStream::connect(addr).expect("connect for stats");
    stream.write_all(b"stats\r\n").expect("send stats");
    for line in BufReader::new(stream).lines() {
        let line = line.expect("read stats");
        if line == "END" {
            break;
        }
        if let Some(value) = line.strip_prefix("STAT cmd_get ") {
            return value.trim().parse().expect("cmd_get is a number");
        }
    }
    panic!("memcached's stats had no cmd_get")
}
