//! Fill leases on Redis: a foreign lease, one lease script per stampede.

use std::time::{Duration, Instant};

use stampede::backend::redis::{fill_lease_key, redis};
use stampede::{Cache, Fill};

use crate::common::servers::{self, Server};
use crate::common::{assert_between, Kind, Store};
use crate::raw;
use crate::wire::{commands_until_now, monitor};

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
