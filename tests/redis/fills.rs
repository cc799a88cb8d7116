//! Fill leases on Redis: a foreign lease, one lease script per stampede.

use std::time::{Duration, Instant};

use stampede::backend::redis::{fill_lease_key, redis};
use stampede::{Cache, Fill};

use super::common::servers::{self, Server};
use super::common::{assert_between, Kind, Store};
use super::raw;
use super::wire::{commands_until_now, monitor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_fill_lease_that_never_expires_does_not_hang_a_fill() {
    let store = Store::new(Kind::Redis, "foreign-fill-lease");
    let cache = store.handle().await;
    // Something that is not ours holds the key's fill lease record, forever.
    let mut admin = raw(&servers::shared_url(servers::REDIS)).await;
    let lease_record = fill_lease_key(&format!("{}:k", store.namespace));
    let () = redis::cmd("SET")
        .arg(&lease_record)
        .arg("not-ours")
        .query_async(&mut admin)
        .await
        .unwrap();
    let lease = Duration::from_millis(300);
    let started = Instant::now();
    let value: String = cache
        .get_or_fill(
            "k",
            Fill::ttl(Duration::from_secs(60)).lease(lease),
            || async { Ok::<_, stampede::Error>("computed".to_owned()) },
        )
        .await
        .unwrap();
    assert_eq!(value, "computed");
    assert_between(
        "giving up on the lease",
        started.elapsed(),
        lease * 2,
        lease * 2 + Duration::from_secs(1),
    );
    assert_eq!(
        cache.get("k").await.unwrap(),
        None,
        "filled without the lease, yet stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_asks_for_the_fill_lease_once_per_process() {
    let server = Server::start(servers::REDIS);
    let cache = Cache::from_url(&format!("{}?namespace=onelease", server.url()))
        .await
        .unwrap();
    let mut admin = raw(&server.url()).await;
    let fill = Fill::ttl(Duration::from_secs(60));
    // Connected, and both fill scripts loaded once.
    let _: u32 = cache
        .get_or_fill("warm", fill.clone(), || async {
            Ok::<_, stampede::Error>(1)
        })
        .await
        .unwrap();
    let mut monitor = monitor(&server.url()).await;
    let fills = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let callers: Vec<_> = (0..200)
        .map(|_| {
            let (cache, fill, fills) = (cache.clone(), fill.clone(), fills.clone());
            tokio::spawn(async move {
                cache
                    .get_or_fill("k", fill, || async move {
                        fills.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<u32, stampede::Error>(7)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 7);
    }
    let commands = commands_until_now(&mut admin, &mut monitor, "end-of-stampede").await;
    assert_eq!(fills.load(std::sync::atomic::Ordering::SeqCst), 1);
    let scripts = commands.iter().filter(|c| *c == "EVALSHA").count();
    assert_eq!(
        scripts, 2,
        "one lease read and one store for 200 callers, not a script each: {commands:?}"
    );
    assert!(
        commands.iter().all(|c| c == "GET" || c == "EVALSHA"),
        "{commands:?}"
    );
}

/// `get_or_fill` of `key` that must return within `bound`, with `made` if it
/// fills.
async fn fill_within(
    cache: &Cache,
    key: &str,
    fill: Fill,
    made: &'static str,
    bound: Duration,
) -> String {
    let started = Instant::now();
    let call = cache.get_or_fill(key, fill, move || async move {
        Ok::<_, stampede::Error>(made.to_owned())
    });
    let value: String = tokio::time::timeout(bound * 4, call)
        .await
        .unwrap_or_else(|_| panic!("{key}: still running after {:?}", bound * 4))
        .unwrap();
    assert!(
        started.elapsed() < bound,
        "{key}: took {:?}",
        started.elapsed()
    );
    value
}

/// A record at `<key>-lock` that is not ours and never expires (written
/// with a plain `set`): `get_or_fill` must neither loop nor wait forever on
/// it, whether the key is missing, marked stale, or past its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_lock_record_that_never_expires_does_not_hang_a_fill() {
    let store = Store::new(Kind::Redis, "foreign-lock-record");
    let cache = store.handle().await;
    for key in ["cold", "stale", "past", "early"] {
        cache
            .set(&format!("{key}-lock"), b"junk", None)
            .await
            .unwrap();
    }
    let lease = Duration::from_millis(300);
    // Twice the lease is the documented patience; the rest is slack.
    let bound = lease * 2 + Duration::from_secs(1);
    let ttl = Duration::from_millis(300);
    let fill = Fill::ttl(ttl).lease(lease);
    let window = fill.clone().stale_while_revalidate(Duration::from_secs(60));

    // A miss: the fill lease is a record of its own, not `cold-lock`.
    assert_eq!(
        fill_within(&cache, "cold", fill.clone(), "filled", bound).await,
        "filled"
    );

    // Marked stale: the refresh takes the fill lease too.
    let old = Fill::ttl(Duration::from_secs(60)).lease(lease);
    assert_eq!(fill_within(&cache, "stale", old, "old", bound).await, "old");
    assert!(cache
        .mark_stale("stale", Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(
        fill_within(&cache, "stale", fill.clone(), "filled", bound).await,
        "filled"
    );

    // Past its time but still stored (written with a stale window, read
    // without one): replaced under the key's RedLock, which `past-lock` holds.
    for key in ["past", "early"] {
        assert_eq!(
            fill_within(&cache, key, window.clone(), "first", bound).await,
            "first"
        );
    }
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(
        fill_within(&cache, "past", fill, "replaced", bound).await,
        "replaced"
    );
    // Within the window: served at once, refreshed only if the RedLock is free.
    assert_eq!(
        fill_within(&cache, "early", window, "refreshed", bound).await,
        "first"
    );

    for key in ["cold", "stale", "past", "early"] {
        let record = cache.get(&format!("{key}-lock")).await.unwrap();
        assert_eq!(record.as_deref(), Some(&b"junk"[..]), "{key}-lock");
    }
}
