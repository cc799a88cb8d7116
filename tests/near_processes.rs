//! The near cache across three OS processes: a writer and a reader, each a
//! child with a near cache of its own, and this test's process, a third
//! node. Each write or delete the writer acknowledges must be seen by the
//! reader and by this process within the backend's bound.
//!
//! The children are this test binary run again on an `#[ignore]`d entry
//! (see `common::process`); they take orders on stdin and report on stdout.

#![cfg(any(feature = "redis", feature = "memcached"))]

use crate::common;

use std::io::Write;
use std::process::ChildStdin;
use std::time::{Duration, Instant};

use common::process::{self, expect_success, next_report, report_lines, runtime, spawn_with_stdin};
use common::{Kind, Store};
use stampede::{Cache, NearCache};

/// memcached's trust window in these tests.
const TRUST: Duration = Duration::from_millis(100);
const ROUNDS: usize = 40;

fn near() -> NearCache {
    NearCache::max_capacity(1 << 20).trust(TRUST)
}

/// `value` as the orders spell it: `-` for absent.
fn spelled(value: Option<&[u8]>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |v| String::from_utf8_lossy(v).into_owned(),
    )
}

/// Reads `key` until it is `want`; how long that took, or `None` after 5 s.
async fn until(cache: &Cache, key: &str, want: &str) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if spelled(cache.get(key).await.unwrap().as_deref()) == want {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    None
}

#[test]
#[ignore = "child process entry, run by the near-cache process tests"]
fn child_near_node() {
    assert!(
        process::is_child(),
        "run by the near-cache process tests only"
    );
    let url = process::var("STORE_URL");
    runtime().block_on(async move {
        let cache = Cache::from_url(&url)
            .await
            .unwrap()
            .try_with_near_cache(near())
            .unwrap();
        process::report("ready");
        while let Some(order) = process::read_order() {
            let words: Vec<&str> = order.split(' ').collect();
            match words[..] {
                ["set", key, value] => {
                    cache.set(key, value, None).await.unwrap();
                    process::report("ok");
                }
                ["delete", key] => {
                    cache.delete(key).await.unwrap();
                    process::report("ok");
                }
                ["get", key] => {
                    let value = cache.get(key).await.unwrap();
                    process::report(spelled(value.as_deref()));
                }
                ["until", key, want] => match until(&cache, key, want).await {
                    Some(took) => process::report(format!("seen {}", took.as_micros())),
                    None => process::report("never"),
                },
                _ => panic!("unknown order {order:?}"),
            }
        }
    });
}

fn order(
    stdin: &mut ChildStdin,
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    text: &str,
) -> String {
    writeln!(stdin, "{text}").unwrap();
    next_report(lines).unwrap_or_else(|| panic!("no answer to {text:?}"))
}

fn seen_within(answer: &str, bound: Duration, what: &str) -> Duration {
    let micros: u64 = answer
        .strip_prefix("seen ")
        .unwrap_or_else(|| panic!("{what}: {answer}"))
        .parse()
        .unwrap();
    let took = Duration::from_micros(micros);
    assert!(
        took <= bound,
        "{what}: seen after {took:?}, bound {bound:?}"
    );
    took
}

fn writes_reach_every_process(kind: Kind, bound: Duration) {
    let store = Store::new(kind, "near3");
    let vars = [("STORE_URL", store.url())];
    let mut writer = spawn_with_stdin("child_near_node", &vars);
    let mut reader = spawn_with_stdin("child_near_node", &vars);
    let mut w_lines = report_lines(writer.stdout.take().unwrap());
    let mut r_lines = report_lines(reader.stdout.take().unwrap());
    let (mut w_in, mut r_in) = (writer.stdin.take().unwrap(), reader.stdin.take().unwrap());
    assert_eq!(next_report(&mut w_lines).as_deref(), Some("ready"));
    assert_eq!(next_report(&mut r_lines).as_deref(), Some("ready"));
    let mut slowest = Duration::ZERO;
    runtime().block_on(async {
        let here = store.handle().await.try_with_near_cache(near()).unwrap();
        for round in 0..ROUNDS {
            let key = format!("k{}", round % 4);
            // Everyone holds a copy of what is there now.
            let now = spelled(here.get(&key).await.unwrap().as_deref());
            assert_eq!(order(&mut r_in, &mut r_lines, &format!("get {key}")), now);
            let (text, want) = if round % 3 == 2 {
                (format!("delete {key}"), "-".to_owned())
            } else {
                (format!("set {key} v{round}"), format!("v{round}"))
            };
            assert_eq!(order(&mut w_in, &mut w_lines, &text), "ok");
            // Acknowledged: the reader and this process see it in time.
            let answer = order(&mut r_in, &mut r_lines, &format!("until {key} {want}"));
            slowest = slowest.max(seen_within(&answer, bound, "the reader"));
            let here_took = until(&here, &key, &want).await.expect("never seen here");
            assert!(here_took <= bound, "this process: seen after {here_took:?}");
            slowest = slowest.max(here_took);
        }
    });
    drop((w_in, r_in));
    expect_success(writer, "writer");
    expect_success(reader, "reader");
    eprintln!("{kind:?}: slowest sighting {slowest:?} over {ROUNDS} writes");
}

#[cfg(feature = "redis")]
#[test]
fn redis_writes_reach_every_process() {
    // Pushed: a change arrives in well under a millisecond on loopback;
    // the bound allows for a busy two-core machine.
    writes_reach_every_process(Kind::Redis, Duration::from_millis(100));
}

#[cfg(feature = "redis-sentinel")]
#[test]
fn sentinel_writes_reach_every_process() {
    writes_reach_every_process(Kind::RedisSentinel, Duration::from_millis(100));
}

#[cfg(feature = "memcached")]
#[test]
fn memcached_writes_reach_every_process_within_trust() {
    writes_reach_every_process(Kind::Memcached, TRUST + Duration::from_millis(250));
}
