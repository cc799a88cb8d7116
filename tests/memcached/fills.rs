//! Fills on memcached's own leases: counted round trips, a lease that is
//! not ours and never runs out, and stale refresh tokens that plain reads
//! win by accident.

use std::time::{Duration, Instant};

use memcache::exp::{Get, LeaseState};
use stampede::typed::Fill;
use stampede::Cache;

use super::proxy::CountRequests;
use super::{backend, servers_of, shared_url, unique};

fn cache_url(addr: &str, namespace: &str) -> String {
    format!("memcached://{addr}?namespace={namespace}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_fill_is_two_round_trips_and_a_hit_one() {
    let proxy = CountRequests::start(servers_of(&shared_url()).remove(0)).await;
    // No namespace: a namespace's first call also reads its generation
    // (see `Cache::clear`), which is not the fill's doing.
    let cache = Cache::from_url(&format!("memcached://{}", proxy.addr))
        .await
        .unwrap();
    let key = unique("fill-trips");
    let fill = Fill::ttl(Duration::from_secs(60));
    let _ = proxy.take();
    let cold: u32 = cache
        .get_or_fill(&key, fill.clone(), || async { Ok::<_, stampede::Error>(7) })
        .await
        .unwrap();
    assert_eq!(cold, 7);
    assert_eq!(proxy.take(), ["mg", "ms"], "vivify on miss, then ms C<cas>");
    let hot: u32 = cache
        .get_or_fill(&key, fill, || async {
            unreachable!("a hit does not fill");
            #[allow(unreachable_code)]
            Ok::<u32, stampede::Error>(0)
        })
        .await
        .unwrap();
    assert_eq!(hot, 7);
    assert_eq!(proxy.take(), ["mg"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_lease_that_never_runs_out_does_not_hang_a_fill() {
    let namespace = unique("foreign-lease");
    let url = cache_url(&servers_of(&shared_url())[0], &namespace);
    let cache = Cache::from_url(&url).await.unwrap();
    // Another client vivified the key with a day-long lease and went away.
    let raw = backend(&shared_url()).await;
    let wire = format!("{namespace}:k");
    let placeholder = raw
        .client()
        .run(Get::new(&wire).lease_ttl(86_400))
        .await
        .unwrap();
    assert_eq!(placeholder.lease_state, LeaseState::Granted);

    let lease = Duration::from_secs(1);
    let started = Instant::now();
    let value: String = cache
        .get_or_fill(
            "k",
            Fill::ttl(Duration::from_secs(60)).lease(lease),
            || async { Ok::<_, stampede::Error>("computed".to_owned()) },
        )
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(value, "computed");
    // Twice the lease as memcached keeps it (1 s is sent as 3 s), plus a poll.
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(8),
        "gave up after {waited:?}"
    );
    assert_eq!(
        cache.get("k").await.unwrap(),
        None,
        "a value filled without the lease was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_get_of_a_stale_item_leaves_the_refresh_to_a_filler() {
    let cache = Cache::from_url(&cache_url(
        &servers_of(&shared_url())[0],
        &unique("stale-win"),
    ))
    .await
    .unwrap();
    cache.set_value("k", "old", None).await.unwrap();
    assert!(cache
        .mark_stale("k", Duration::from_secs(60))
        .await
        .unwrap());
    // memcached hands the refresh token to the first reader of any kind.
    assert!(cache.get("k").await.unwrap().is_some());
    let started = Instant::now();
    let value: String = cache
        .get_or_fill("k", Fill::ttl(Duration::from_secs(60)), || async {
            Ok::<_, stampede::Error>("new".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(value, "new", "the filler did not win the refresh");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        cache.get_value::<String>("k").await.unwrap().as_deref(),
        Some("new")
    );
}
