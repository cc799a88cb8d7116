//! The near cache on Redis: nodes are handles from separate
//! `Cache::from_url` calls (each its own tier, feed and origin), on a
//! server of their own (some tests cut the feed's link).

use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::backend::redis::redis;
use stampede::{Cache, NearCache, NearStats};

use super::common::servers::{self, Server};
use super::{raw, MultiplexedConnection};

fn near() -> NearCache {
    NearCache::max_capacity(1 << 20).max_unverified(Duration::from_millis(400))
}

async fn node(server: &Server) -> Cache {
    let cache = Cache::from_url(&format!("{}?namespace=near", server.url()))
        .await
        .unwrap()
        .try_with_near_cache(near())
        .unwrap();
    until_live(&cache).await;
    cache
}

/// Waits until `cache`'s feed is connected and caught up: copies taken
/// from then on are kept current.
async fn until_live(cache: &Cache) {
    let started = Instant::now();
    while !stats(cache).live {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the feed never came up"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn stats(cache: &Cache) -> NearStats {
    cache.near_stats().expect("a near cache")
}

/// Reads `key` on `cache` until it returns `want`; how long that took.
async fn until_seen(cache: &Cache, key: &str, want: Option<&[u8]>, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = cache.get(key).await.unwrap();
        if got.as_deref() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{key}: still {got:?} after {within:?}, expected {want:?}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_reaches_the_others_copies() {
    let server = Server::start(servers::REDIS);
    let (a, b) = (node(&server).await, node(&server).await);
    a.set("k", b"v1", None).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    let read = stats(&b).backend_reads;
    // B's copy answers without a round trip.
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(stats(&b).backend_reads, read, "served from the copy");
    assert!(stats(&b).hits >= 1);

    a.set("k", b"v2", None).await.unwrap();
    let seen = until_seen(&b, "k", Some(b"v2"), Duration::from_secs(2)).await;
    assert!(
        seen < Duration::from_millis(200),
        "B saw the write after {seen:?}"
    );
    assert!(stats(&b).invalidations >= 1);

    a.delete("k").await.unwrap();
    until_seen(&b, "k", None, Duration::from_secs(2)).await;

    // The writer's own copy is its write, before the call returned; its
    // echo does not take it away.
    a.set("own", b"mine", None).await.unwrap();
    let read = stats(&a).backend_reads;
    assert_eq!(a.get("own").await.unwrap().as_deref(), Some(&b"mine"[..]));
    assert_eq!(stats(&a).backend_reads, read, "the writer's copy, no read");
    until_seen(&b, "own", Some(b"mine"), Duration::from_secs(2)).await;
    b.set("theirs", b"x", None).await.unwrap();
    until_seen(&a, "theirs", Some(b"x"), Duration::from_secs(2)).await;
    assert_eq!(a.get("own").await.unwrap().as_deref(), Some(&b"mine"[..]));
    assert_eq!(stats(&a).backend_reads, read + 1, "only `theirs` was read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_reaches_other_copies() {
    let server = Server::start(servers::REDIS);
    let (a, b) = (node(&server).await, node(&server).await);
    let fresh = |key: &'static str, value: &'static [u8]| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            a.set(key, value, None).await.unwrap();
            until_seen(&b, key, Some(value), Duration::from_secs(2)).await;
        }
    };
    fresh("cas", b"1").await;
    let (_, token) = a.gets("cas").await.unwrap().unwrap();
    assert!(a.cas("cas", b"2", Some(&token), None).await.unwrap());
    until_seen(&b, "cas", Some(b"2"), Duration::from_secs(2)).await;

    fresh("many", b"1").await;
    a.set_many(&[("many", b"2")], None).await.unwrap();
    until_seen(&b, "many", Some(b"2"), Duration::from_secs(2)).await;
    a.delete_many(&["many"]).await.unwrap();
    until_seen(&b, "many", None, Duration::from_secs(2)).await;

    fresh("count", b"1").await;
    assert_eq!(a.increment("count", 4).await.unwrap(), 5);
    until_seen(&b, "count", Some(b"5"), Duration::from_secs(2)).await;

    fresh("cleared", b"1").await;
    a.clear().await.unwrap();
    until_seen(&b, "cleared", None, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_never_outlives_the_value_on_the_server() {
    let server = Server::start(servers::REDIS);
    let (a, b) = (node(&server).await, node(&server).await);
    a.set("short", b"v", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(b.get("short").await.unwrap().as_deref(), Some(&b"v"[..]));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        b.get("short").await.unwrap(),
        None,
        "B's copy outlived the TTL"
    );
    assert_eq!(
        a.get("short").await.unwrap(),
        None,
        "A's copy outlived the TTL"
    );
}

async fn pubsub_ids(admin: &mut MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(admin)
        .await
        .unwrap();
    list.lines().count()
}

async fn config_set(admin: &mut MultiplexedConnection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(admin)
        .await
        .unwrap();
}

/// Cuts every feed and keeps it from coming back (no new connections)
/// until [`let_feeds_back`].
async fn cut_feeds(admin: &mut MultiplexedConnection) {
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    let open = clients.lines().count() - pubsub_ids(admin).await;
    config_set(admin, "maxclients", &open.to_string()).await;
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(admin)
        .await
        .unwrap();
}

async fn let_feeds_back(admin: &mut MultiplexedConnection) {
    config_set(admin, "maxclients", "10000").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_feed_replays_what_it_missed() {
    let server = Server::start(servers::REDIS);
    let (a, b) = (node(&server).await, node(&server).await);
    let mut admin = raw(&server.url()).await;
    for key in ["kept", "written"] {
        a.set(key, b"old", None).await.unwrap();
        until_seen(&b, key, Some(b"old"), Duration::from_secs(2)).await;
    }
    cut_feeds(&mut admin).await;
    a.set("written", b"new", None).await.unwrap();
    // Within max_unverified of the cut, B still serves its copies.
    let_feeds_back(&mut admin).await;
    until_seen(&b, "written", Some(b"new"), Duration::from_secs(3)).await;
    let read = stats(&b).backend_reads;
    assert_eq!(b.get("kept").await.unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(
        stats(&b).backend_reads,
        read,
        "a key not written keeps its copy"
    );
    assert_eq!(stats(&b).flushes, 0, "the log reached back: no flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_trimmed_past_the_outage_flushes_the_tier() {
    let server = Server::start(servers::REDIS);
    let (a, b) = (node(&server).await, node(&server).await);
    let mut admin = raw(&server.url()).await;
    a.set("kept", b"old", None).await.unwrap();
    until_seen(&b, "kept", Some(b"old"), Duration::from_secs(2)).await;
    cut_feeds(&mut admin).await;
    // More changes than the log keeps.
    let entries: Vec<(String, &[u8])> = (0..12_000)
        .map(|i| (format!("filler{i}"), &b"x"[..]))
        .collect();
    a.set_many(&entries, None).await.unwrap();
    let_feeds_back(&mut admin).await;
    let started = Instant::now();
    while stats(&b).flushes == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "B never flushed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let read = stats(&b).backend_reads;
    assert_eq!(b.get("kept").await.unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(
        stats(&b).backend_reads,
        read + 1,
        "the flushed copy is read again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_feed_stops_copies_being_served_within_max_unverified() {
    let server = Server::start(servers::REDIS);
    let b = node(&server).await;
    b.set("k", b"v", None).await.unwrap();
    // The feed starts with the first read through the tier.
    b.delete("other").await.unwrap();
    assert_eq!(b.get("other").await.unwrap(), None);
    until_live(&b).await;
    server.pause(); // half-open: nothing answers, nothing is closed
    let paused = Instant::now();
    // Served from the copy for a while, then no longer: the read goes to
    // the (silent) server and fails rather than serve an unverified copy.
    let mut last_served = Duration::ZERO;
    loop {
        match tokio::time::timeout(Duration::from_millis(100), b.get("k")).await {
            Ok(Ok(Some(_))) => last_served = paused.elapsed(),
            _ => break,
        }
        assert!(
            paused.elapsed() < Duration::from_secs(3),
            "still served after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.resume();
    // Heartbeat (200 ms) + its timeout (200 ms) + max_unverified (400 ms).
    assert!(
        last_served <= Duration::from_millis(400 + 400 + 150),
        "an unverified copy was served {last_served:?} into the outage"
    );
}

/// Operations in [`random_interleavings_leave_every_copy_current`].
const RANDOM_OPS: usize = 100_008;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_leave_every_copy_current() {
    let server = Server::start(servers::REDIS);
    let nodes = [
        node(&server).await,
        node(&server).await,
        node(&server).await,
    ];
    let keys: Vec<String> = (0..16).map(|i| format!("r{i}")).collect();
    super::common::near::random_operations(&nodes, &keys, RANDOM_OPS).await;
    // Quiesce: each node's marker write, seen by every node, comes after
    // every change before it in the log.
    for (at, cache) in nodes.iter().enumerate() {
        cache.set(&format!("marker{at}"), b"m", None).await.unwrap();
    }
    for cache in &nodes {
        for at in 0..nodes.len() {
            until_seen(
                cache,
                &format!("marker{at}"),
                Some(b"m"),
                Duration::from_secs(5),
            )
            .await;
        }
    }
    let plain = Cache::from_url(&format!("{}?namespace=near", server.url()))
        .await
        .unwrap();
    for key in &keys {
        let stored = plain.get(key).await.unwrap();
        for (at, cache) in nodes.iter().enumerate() {
            assert_eq!(cache.get(key).await.unwrap(), stored, "node {at}, {key}");
        }
    }
    let copies: u64 = nodes.iter().map(|cache| stats(cache).hits).sum();
    assert!(copies > 1_000, "the tiers served {copies} reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_hits_share_one_decoded_value_per_copy() {
    let server = Server::start(servers::REDIS);
    let (a, b) = (node(&server).await, node(&server).await);
    a.set_value("user", &vec!["ada".to_owned()], None)
        .await
        .unwrap();
    let first = b.get_shared::<Vec<String>>("user").await.unwrap().unwrap();
    let second = b.get_shared::<Vec<String>>("user").await.unwrap().unwrap();
    let third = b.get_shared::<Vec<String>>("user").await.unwrap().unwrap();
    assert_eq!(*first, ["ada"]);
    // The first read copied the value; the second decoded the copy once;
    // the third is that same decoded value.
    assert!(Arc::ptr_eq(&second, &third), "decoded again");
    // Another type asks for its own decode and does not disturb the first.
    let raw = b
        .get_shared::<serde_json::Value>("user")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*raw, serde_json::json!(["ada"]));
    let again = b.get_shared::<Vec<String>>("user").await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&second, &again));

    a.set_value("user", &vec!["grace".to_owned()], None)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let now = b.get_shared::<Vec<String>>("user").await.unwrap().unwrap();
        if *now == ["grace"] {
            break;
        }
        assert!(Arc::ptr_eq(&now, &second) || *now == ["ada"]);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "never saw the write"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_without_a_near_cache_can_announce_its_writes() {
    let server = Server::start(servers::REDIS);
    let reader = node(&server).await;
    let url = format!("{}?namespace=near&announce_writes=true", server.url());
    let writer = Cache::from_url(&url).await.unwrap();
    assert!(writer.near_stats().is_none(), "it keeps no copies");
    writer.set("k", b"1", None).await.unwrap();
    until_seen(&reader, "k", Some(b"1"), Duration::from_secs(2)).await;
    writer.set("k", b"2", None).await.unwrap();
    let seen = until_seen(&reader, "k", Some(b"2"), Duration::from_secs(2)).await;
    assert!(seen < Duration::from_millis(200), "seen after {seen:?}");
    // A near cache attached later to an announcing handle still hears
    // everyone else.
    let late = writer.clone().try_with_near_cache(near()).unwrap();
    until_live(&late).await;
    assert_eq!(late.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
    reader.set("k", b"3", None).await.unwrap();
    until_seen(&late, "k", Some(b"3"), Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_dropped_mid_call_still_reaches_its_own_copy() {
    let server = Server::start(servers::REDIS);
    let a = node(&server).await;
    let plain = Cache::from_url(&format!("{}?namespace=near", server.url()))
        .await
        .unwrap();
    for round in 0..60u64 {
        a.set("k", format!("kept {round}"), None).await.unwrap();
        assert!(a.get("k").await.unwrap().is_some());
        // Dropped somewhere between sending and updating the copy: before
        // the request left, while it was on the wire, or after it landed.
        let cut = Duration::from_micros(round * 15);
        let _ = tokio::time::timeout(cut, a.set("k", format!("dropped {round}"), None)).await;
        // Behind the dropped request on A's connection: it has landed or
        // never will.
        a.delete("barrier").await.unwrap();
        let stored = plain.get("k").await.unwrap();
        let want = stored.as_deref();
        until_seen(&a, "k", want, Duration::from_secs(2)).await;
    }
}

#[test]
fn a_feed_whose_runtime_is_gone_no_longer_vouches_for_copies() {
    let server = Server::start(servers::REDIS);
    let first = tokio::runtime::Runtime::new().unwrap();
    let cache = first.block_on(async {
        let cache = node(&server).await;
        cache.set("k", b"v", None).await.unwrap();
        assert!(stats(&cache).live);
        cache
    });
    // The feed's task goes with its runtime; the tier must not go on
    // serving copies as if it still listened.
    drop(first);
    assert!(!stats(&cache).live, "the tier still trusts a dead feed");
}
