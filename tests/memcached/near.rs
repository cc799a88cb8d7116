//! The near cache on memcached, across two nodes: two handles from two
//! `Cache::from_url` calls, each with a tier of its own, one of them (B)
//! behind a proxy that logs every request it sends.
//!
//! - a write on A is served by B from its copy, without a request, for the
//!   trust window at most, and seen once it has passed;
//! - past the window B checks its copy with one `mg` without the value and
//!   re-reads only when the CAS changed;
//! - a copy never outlives the value's TTL on the server;
//! - a delete on A stops B serving within the window;
//! - a node sees its own writes and deletes at once;
//! - lock records, stale values and fill placeholders are never copied.

use std::time::{Duration, Instant};

use memcache::exp::{Get, Meta};
use stampede::backend::{Backend, Fencing, FillLease, LockAttempt};
use stampede::{Cache, NearStats, RedLock};

use super::proxy::CountRequests;
use super::{backend, servers_of, shared_url, unique};

/// How much later than the trust window a change may be seen: a poll, a
/// round trip or two, and a busy machine.
const MARGIN: Duration = Duration::from_millis(150);
/// A trust window longer than any test, for tests about something else.
const FOREVER: Duration = Duration::from_secs(60);
/// How often a test polls a node.
const POLL: Duration = Duration::from_millis(2);

/// Node A, on the server directly; node B, behind a request-counting proxy.
struct Nodes {
    a: Cache,
    b: Cache,
    b_requests: CountRequests,
    /// The server without a near cache: what memcached holds right now.
    server: Cache,
}

fn near_url(addr: &str, trust: Duration) -> String {
    // No namespace: a namespace's generation is read every second, which
    // would be requests of no read's doing.
    format!(
        "memcached://{addr}?near_capacity={}&near_trust_ms={}",
        1 << 20,
        trust.as_millis()
    )
}

async fn nodes(trust: Duration) -> Nodes {
    let upstream = servers_of(&shared_url()).remove(0);
    let b_requests = CountRequests::start(upstream.clone()).await;
    let a = Cache::from_url(&near_url(&upstream, trust)).await.unwrap();
    let b = Cache::from_url(&near_url(&b_requests.addr.to_string(), trust))
        .await
        .unwrap();
    let server = Cache::from_url(&shared_url()).await.unwrap();
    let _ = b_requests.take_lines();
    Nodes {
        a,
        b,
        b_requests,
        server,
    }
}

fn stats(cache: &Cache) -> NearStats {
    cache.near_stats().expect("a near cache")
}

/// The words of a request line after the command and key: its flags.
fn flags(line: &str) -> Vec<&str> {
    line.split(' ').skip(2).collect()
}

/// `mg <key> …` with the value.
fn is_read(line: &str, key: &str) -> bool {
    line.starts_with(&format!("mg {key} ")) && flags(line).contains(&"v")
}

/// `mg <key> … c t` without the value: a revalidation.
fn is_check(line: &str, key: &str) -> bool {
    let flags = flags(line);
    line.starts_with(&format!("mg {key} "))
        && !flags.contains(&"v")
        && flags.contains(&"c")
        && flags.contains(&"t")
}

/// Polls B until it answers `want`; how long after `since` it did.
async fn until_b_reads(nodes: &Nodes, key: &str, want: Option<&[u8]>, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(5);
    loop {
        if nodes.b.get(key).await.unwrap().as_deref() == want {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "B never read {want:?} at {key}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_is_served_from_the_others_copy_then_seen_within_trust() {
    let trust = Duration::from_millis(300);
    let nodes = nodes(trust).await;
    let key = unique("near-write");
    nodes.a.set(&key, b"one", None).await.unwrap();

    let read = Instant::now();
    assert_eq!(
        nodes.b.get(&key).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    let lines = nodes.b_requests.take_lines();
    assert!(lines.len() == 1 && is_read(&lines[0], &key), "{lines:?}");
    assert_eq!(stats(&nodes.b).copies, 1);

    nodes.a.set(&key, b"two", None).await.unwrap();
    let served = nodes.b.get(&key).await.unwrap();
    if read.elapsed() < trust {
        // Within the window B answers from its copy, without a request.
        assert_eq!(served.as_deref(), Some(&b"one"[..]));
        assert_eq!(nodes.b_requests.take_lines(), Vec::<String>::new());
    }
    let seen = until_b_reads(&nodes, &key, Some(b"two"), read).await;
    assert!(
        seen <= trust + MARGIN,
        "B saw the write {seen:?} after its read"
    );
    // All the polls within the window were answered here: past it, one
    // check and one read.
    let lines = nodes.b_requests.take_lines();
    assert!(
        lines.len() == 2 && is_check(&lines[0], &key) && is_read(&lines[1], &key),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_window_a_copy_is_checked_without_its_value_and_reread_only_on_a_change() {
    let trust = Duration::from_millis(100);
    let nodes = nodes(trust).await;
    let key = unique("near-check");
    nodes.a.set(&key, b"one", None).await.unwrap();
    assert!(nodes.b.get(&key).await.unwrap().is_some());
    let _ = nodes.b_requests.take_lines();
    let before = stats(&nodes.b);

    // Unchanged: one check, no value sent, and the copy is trusted again.
    tokio::time::sleep(trust + POLL).await;
    assert_eq!(
        nodes.b.get(&key).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    let lines = nodes.b_requests.take_lines();
    assert!(lines.len() == 1 && is_check(&lines[0], &key), "{lines:?}");
    let after = stats(&nodes.b);
    assert_eq!(after.revalidations, before.revalidations + 1);
    assert_eq!(after.backend_reads, before.backend_reads, "no re-read");
    assert_eq!(
        nodes.b.get(&key).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    let lines = nodes.b_requests.take_lines();
    assert!(lines.is_empty(), "checked just now: {lines:?}");

    // Changed (same value, new CAS): the check, then one read.
    nodes.a.set(&key, b"one", None).await.unwrap();
    tokio::time::sleep(trust + POLL).await;
    assert_eq!(
        nodes.b.get(&key).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    let lines = nodes.b_requests.take_lines();
    assert!(
        lines.len() == 2 && is_check(&lines[0], &key) && is_read(&lines[1], &key),
        "{lines:?}"
    );
    let last = stats(&nodes.b);
    assert_eq!(last.revalidations, after.revalidations + 1);
    assert_eq!(last.backend_reads, after.backend_reads + 1);
    assert_eq!(last.copies, after.copies + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_never_outlives_the_values_ttl_on_the_server() {
    // A window longer than the test: only the TTL can end a copy.
    let nodes = nodes(FOREVER).await;
    // A 1 s TTL is sent as 3 s, and B keeps `t - 2` s: a copy of 1 s, or
    // none if the server's clock ticked between the write and the read.
    let mut attempts = 0;
    let key = loop {
        let key = unique("near-ttl");
        nodes
            .a
            .set(&key, b"short", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        let copies = stats(&nodes.b).copies;
        assert!(nodes.b.get(&key).await.unwrap().is_some());
        attempts += 1;
        if stats(&nodes.b).copies == copies + 1 || attempts == 3 {
            break key;
        }
    };
    assert!(nodes.b.get(&key).await.unwrap().is_some());
    assert!(stats(&nodes.b).hits >= 1, "B serves its copy");
    // Whenever the server no longer has it, neither node serves it.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let on_server = nodes.server.get(&key).await.unwrap();
        let (on_a, on_b) = (
            nodes.a.get(&key).await.unwrap(),
            nodes.b.get(&key).await.unwrap(),
        );
        if on_server.is_none() {
            assert_eq!(on_b, None, "B served a copy of an expired value");
            assert_eq!(on_a, None, "A served its write past its TTL");
            break;
        }
        assert!(Instant::now() < deadline, "the value never expired");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_one_node_stops_the_other_serving_within_trust() {
    let trust = Duration::from_millis(200);
    let nodes = nodes(trust).await;
    let key = unique("near-delete");
    nodes.a.set(&key, b"doomed", None).await.unwrap();
    let read = Instant::now();
    assert!(nodes.b.get(&key).await.unwrap().is_some());
    assert!(nodes.a.delete(&key).await.unwrap());
    let gone = until_b_reads(&nodes, &key, None, read).await;
    assert!(
        gone <= trust + MARGIN,
        "B served a deleted value {gone:?} after its read"
    );
    // The first read, the check past the window, the re-read of nothing.
    let lines = nodes.b_requests.take_lines();
    assert!(
        lines.len() == 3
            && is_read(&lines[0], &key)
            && is_check(&lines[1], &key)
            && is_read(&lines[2], &key),
        "{lines:?}"
    );
    // The copy went with the check that failed: nothing left to check.
    assert_eq!(nodes.b.get(&key).await.unwrap(), None);
    let lines = nodes.b_requests.take_lines();
    assert!(lines.len() == 1 && is_read(&lines[0], &key), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sees_its_own_writes_and_deletes_at_once() {
    let nodes = nodes(FOREVER).await;
    let key = unique("near-own");
    nodes.b.set(&key, b"one", None).await.unwrap();
    assert_eq!(
        nodes.b.get(&key).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    nodes.b.set(&key, b"two", None).await.unwrap();
    let _ = nodes.b_requests.take_lines();
    assert_eq!(
        nodes.b.get(&key).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(
        nodes.b_requests.take_lines(),
        Vec::<String>::new(),
        "its own copy"
    );
    assert!(nodes.b.delete(&key).await.unwrap());
    assert_eq!(nodes.b.get(&key).await.unwrap(), None);
    // A has no copy yet: it reads what B wrote last.
    assert_eq!(nodes.a.get(&key).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_records_are_read_but_never_copied() {
    let nodes = nodes(FOREVER).await;
    let name = unique("near-lock");
    let record = format!("{name}-lock");
    let guard = RedLock::new(&nodes.a, &name, FOREVER).lock().await.unwrap();
    let copies = stats(&nodes.b).copies;
    for _ in 0..2 {
        assert!(
            nodes.b.get(&record).await.unwrap().is_some(),
            "get reads a lock record"
        );
    }
    assert!(guard.extend(FOREVER).await.unwrap());
    assert!(nodes.b.get(&record).await.unwrap().is_some());
    assert_eq!(stats(&nodes.b).copies, copies);
    let lines = nodes.b_requests.take_lines();
    assert!(
        lines.len() == 3 && lines.iter().all(|line| is_read(line, &record)),
        "{lines:?}"
    );
    assert!(guard.release().await.unwrap());

    // A record created and extended by handles that remember nothing of it
    // (the two-trip extend) is still a lock record.
    let (one, other) = (backend(&shared_url()).await, backend(&shared_url()).await);
    let raw = unique("near-raw-lock");
    let lease = Duration::from_secs(30);
    let taken = one
        .try_lock(&raw, b"owner", lease, Fencing::Skip)
        .await
        .unwrap();
    assert_eq!(taken, LockAttempt::Acquired { fence: None });
    assert!(other.extend(&raw, b"owner", lease).await.unwrap());
    assert_eq!(
        nodes.b.get(&raw).await.unwrap().as_deref(),
        Some(&b"owner"[..])
    );
    assert_eq!(stats(&nodes.b).copies, copies);
    let flags = one
        .client()
        .run(Get::new(&raw).without_value().meta(Meta::NONE.cas()))
        .await
        .unwrap()
        .client_flags;
    assert_eq!(flags, Some(u32::from_be_bytes(*b"LOCK")));
    assert!(other.release(&raw, b"owner").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_values_and_fill_placeholders_are_never_copied() {
    let trust = Duration::from_millis(100);
    let nodes = nodes(trust).await;
    let raw = backend(&shared_url()).await;
    let key = unique("near-stale");
    nodes.a.set(&key, b"old", None).await.unwrap();
    assert!(nodes.b.get(&key).await.unwrap().is_some());
    let copies = stats(&nodes.b).copies;
    assert!(nodes.a.mark_stale(&key, FOREVER).await.unwrap());

    // Past the window: the stale mark gave the item a new CAS, so the check
    // fails; the re-read returns the stale value, as `get` does, and keeps
    // no copy of it.
    tokio::time::sleep(trust + POLL).await;
    let _ = nodes.b_requests.take_lines();
    for _ in 0..2 {
        assert_eq!(
            nodes.b.get(&key).await.unwrap().as_deref(),
            Some(&b"old"[..])
        );
    }
    // memcached hands a stale item's refresh token to its first reader of
    // any kind: each of B's requests won it and handed it back (`md … I`).
    let (gets, others): (Vec<String>, Vec<String>) = nodes
        .b_requests
        .take_lines()
        .into_iter()
        .partition(|line| line.starts_with("mg "));
    assert!(
        gets.len() == 3
            && is_check(&gets[0], &key)
            && is_read(&gets[1], &key)
            && is_read(&gets[2], &key),
        "{gets:?}"
    );
    assert!(
        others.iter().all(|line| line.starts_with("md ")),
        "{others:?}"
    );
    assert_eq!(stats(&nodes.b).copies, copies, "no copy of a stale value");
    // So a filler wins it now.
    let fill = raw
        .read_for_fill(&key, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(fill.stale);
    assert!(
        matches!(fill.lease, FillLease::Granted(_)),
        "{:?}",
        fill.lease
    );

    // A fill's placeholder is nothing to `get`, and nothing to copy.
    let empty = unique("near-placeholder");
    let fill = raw
        .read_for_fill(&empty, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(fill.lease, FillLease::Granted(_)));
    assert_eq!(nodes.b.get(&empty).await.unwrap(), None);
    assert_eq!(stats(&nodes.b).copies, copies);
}

/// Operations in [`random_interleavings_leave_every_copy_current`].
const RANDOM_OPS: usize = 100_008;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_leave_every_copy_current() {
    let trust = Duration::from_millis(50);
    let url = near_url(&servers_of(&shared_url()).remove(0), trust);
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Cache::from_url(&url).await.unwrap());
    }
    let keys: Vec<String> = (0..16).map(|_| unique("near-random")).collect();
    super::common::near::random_operations(&nodes, &keys, RANDOM_OPS).await;
    // Past the trust window every copy is checked before it is served.
    tokio::time::sleep(trust + MARGIN).await;
    let server = Cache::from_url(&shared_url()).await.unwrap();
    for key in &keys {
        let stored = server.get(key).await.unwrap();
        for (at, cache) in nodes.iter().enumerate() {
            assert_eq!(cache.get(key).await.unwrap(), stored, "node {at}, {key}");
        }
    }
    let hits: u64 = nodes.iter().map(|cache| stats(cache).hits).sum();
    assert!(hits > 1_000, "the tiers served {hits} reads");
}
