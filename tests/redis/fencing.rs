//! Fence counters: seeded from the server clock, so tokens never go back
//! after the counter is lost; expiring, so they do not pile up; out of
//! reach of any key a user can write.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stampede::backend::redis::{fence_key, redis};
use stampede::{Cache, RedLock};

use super::common::servers::{self, Server};
use super::common::{Kind, Store};
use super::{lock_key, raw, LONG_LEASE};

/// How long a fence counter outlives its last use past the lease.
const COUNTER_GRACE: Duration = Duration::from_secs(3600);

/// Takes and releases `lock` `times` times; the last token, after checking
/// that each one rose.
async fn tokens(lock: &RedLock, after: u64, times: usize) -> u64 {
    let mut last = after;
    for _ in 0..times {
        let guard = lock.lock().await.unwrap();
        let token = guard.fencing_token();
        assert!(token > last, "token {token} after {last}");
        last = token;
        assert!(guard.release().await.unwrap());
    }
    last
}

fn now_micros() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_micros()).expect("µs fit in u64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_keep_rising_after_the_server_lost_its_data() {
    let server = Server::start(servers::REDIS);
    let cache = Cache::from_url(&format!("{}?namespace=flushed", server.url()))
        .await
        .unwrap();
    let lock = RedLock::new(&cache, "job", LONG_LEASE);
    let before = now_micros();
    let last = tokens(&lock, 0, 6).await;
    // A new counter starts at the server's clock, in µs since the epoch.
    assert!(
        last > before,
        "token {last} is below the clock ({before} µs)"
    );

    let mut admin = raw(&server.url()).await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    tokens(&lock, last, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_counter_jumps_to_the_clock() {
    let store = Store::new(Kind::Redis, "old-counter");
    let cache = store.handle().await;
    let mut admin = raw(&super::shared_url()).await;
    let counter = fence_key(&lock_key(&store, "job"));
    // A counter from before seeding: small, and with no expiry.
    let () = redis::cmd("SET")
        .arg(&counter)
        .arg(6)
        .query_async(&mut admin)
        .await
        .unwrap();
    let lock = RedLock::new(&cache, "job", LONG_LEASE);
    let before = now_micros();
    let guard = lock.lock().await.unwrap();
    let token = guard.fencing_token();
    assert!(
        token > before,
        "token {token} is below the clock ({before} µs)"
    );
    assert!(guard.release().await.unwrap());
}

/// A counter that is *behind* (a failover to a replica that missed the last
/// increments) still hands out a larger token than any it gave out: the
/// token is never below the server clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_that_lost_its_last_increments_still_rises() {
    let store = Store::new(Kind::Redis, "lost-incr");
    let cache = store.handle().await;
    let mut admin = raw(&super::shared_url()).await;
    let counter = fence_key(&lock_key(&store, "job"));
    let lock = RedLock::new(&cache, "job", LONG_LEASE);
    let first = tokens(&lock, 0, 1).await;
    let last = tokens(&lock, first, 3).await;
    // What a replica that missed the last three increments would hold.
    let () = redis::cmd("SET")
        .arg(&counter)
        .arg(first)
        .query_async(&mut admin)
        .await
        .unwrap();
    tokens(&lock, last, 3).await;
}

/// The counter's remaining time to live, in ms.
async fn counter_pttl(admin: &mut redis::aio::MultiplexedConnection, counter: &[u8]) -> i64 {
    redis::cmd("PTTL")
        .arg(counter)
        .query_async(admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_expires_an_hour_past_the_lease_and_each_lock_renews_it() {
    let store = Store::new(Kind::Redis, "counter-ttl");
    let cache = store.handle().await;
    let mut admin = raw(&super::shared_url()).await;
    let counter = fence_key(&lock_key(&store, "job"));
    let lock = RedLock::new(&cache, "job", LONG_LEASE);
    let expected = millis(LONG_LEASE + COUNTER_GRACE);
    let in_range = |pttl: i64| (expected - 60_000..=expected).contains(&pttl);

    let first = tokens(&lock, 0, 1).await;
    let pttl = counter_pttl(&mut admin, counter.as_ref()).await;
    assert!(in_range(pttl), "PTTL {pttl} ms, expected about {expected}");

    // Cut short, then renewed by the next lock.
    let () = redis::cmd("PEXPIRE")
        .arg(&counter)
        .arg(5_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    tokens(&lock, first, 1).await;
    let pttl = counter_pttl(&mut admin, counter.as_ref()).await;
    assert!(
        in_range(pttl),
        "PTTL {pttl} ms after renewal, expected about {expected}"
    );
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).expect("fits")
}

/// Namespace `{B` with key `x-lock}:fence` spells `{B:x-lock}:fence`, which
/// was the fence counter of lock `x` in namespace `B`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_namespace_cannot_reach_a_fence_counter() {
    let store = Store::new(Kind::Redis, "victim");
    let victim = store.handle().await;
    // Another tenant of the same server, in namespace `{<victim's namespace>`.
    let attacker = Cache::from_url(&super::shared_url())
        .await
        .unwrap()
        .with_namespace(&format!("{{{}", store.namespace));
    let spelled = "x-lock}:fence";
    assert_eq!(
        format!("{{{}:{spelled}", store.namespace),
        format!("{{{}}}:fence", lock_key(&store, "x")),
        "the attacker's key spells the old counter name"
    );
    let mut admin = raw(&super::shared_url()).await;
    let counter = fence_key(&lock_key(&store, "x"));
    let lock = RedLock::new(&victim, "x", LONG_LEASE);
    let last = tokens(&lock, 0, 2).await;

    // Deleting it through the attacker's namespace leaves the counter.
    let _ = attacker.delete(spelled).await.unwrap();
    let kept: Option<u64> = redis::cmd("GET")
        .arg(&counter)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(kept, Some(last), "the victim's counter was deleted");

    // Junk written there is the attacker's own key, nothing else.
    attacker.set(spelled, b"junk", None).await.unwrap();
    tokens(&lock, last, 2).await;
    assert_eq!(
        attacker.get(spelled).await.unwrap().as_deref(),
        Some(&b"junk"[..])
    );
    assert_eq!(
        victim.get("x-lock").await.unwrap(),
        None,
        "no lock record left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_that_is_not_a_number_fails_the_lock_and_leaves_no_record() {
    let store = Store::new(Kind::Redis, "junk-counter");
    let cache = store.handle().await;
    let mut admin = raw(&super::shared_url()).await;
    // Only another program can write there now.
    let () = redis::cmd("SET")
        .arg(fence_key(&lock_key(&store, "job")))
        .arg("junk")
        .query_async(&mut admin)
        .await
        .unwrap();
    let error = RedLock::new(&cache, "job", LONG_LEASE)
        .try_lock()
        .await
        .unwrap_err();
    assert!(error.is_backend(), "{error:?}");
    let record: Option<Vec<u8>> = redis::cmd("GET")
        .arg(lock_key(&store, "job"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(record, None, "a record nobody holds");
}
