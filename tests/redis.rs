//! Redis-only behaviour, against real `redis-server` processes: wake-ups
//! across OS processes, outages and recovery, values written by other
//! clients, a flushed script cache, a dropped pub/sub link, URL parameters.
//!
//! Tests that break their server (kill, pause, restart, killing pub/sub
//! clients) get a dedicated one, so the shared server of the other tests is
//! never disturbed.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stampede::backend::redis::{
    deadpool_redis, fence_key, redis, release_channel, RedisBackend, RedisOptions,
};
use stampede::backend::{Backend, Fencing, LockAttempt};
use stampede::{Cache, Fill, LockGuard, RedLock};
use tokio::task::JoinHandle;

use common::servers::{self, Server};
use common::{assert_between, process, Kind, Store};
use redis::aio::MultiplexedConnection;

/// The issue's bound on a cross-process wake-up.
const CROSS_PROCESS_WAKE: Duration = Duration::from_millis(50);
/// Long enough that a waiter returning early can only have been woken.
const LONG_LEASE: Duration = Duration::from_secs(10);
/// How soon a woken waiter must be back within one process's tests.
const WAKE_BOUND: Duration = Duration::from_secs(1);
/// Scheduling slack on top of a timeout.
const MARGIN: Duration = Duration::from_millis(750);

/// Takes `key`'s lock on `holder` and parks a waiter for it on `waiting`
/// (another handle, as another process would be); returns once the
/// waiter's release channel is subscribed on the server. `full_lock_key`
/// names the lock record with its namespace, as the channel does.
async fn hold_with_remote_waiter(
    holder: &Cache,
    waiting: &Cache,
    key: &str,
    waiter_lease: Duration,
    observer: &mut MultiplexedConnection,
    full_lock_key: &str,
) -> (LockGuard, JoinHandle<LockGuard>) {
    let holding = RedLock::new(holder, key, LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(holding.holds_lock());
    let waiter = tokio::spawn({
        let lock = RedLock::new(waiting, key, waiter_lease);
        async move { lock.acquire().await.unwrap() }
    });
    until_subscribed(observer, &release_channel(full_lock_key), 1).await;
    (holding, waiter)
}

/// Releases `holding` and checks that the release wakes `waiter` promptly.
async fn release_wakes(holding: LockGuard, waiter: JoinHandle<LockGuard>, what: &str) {
    let released_at = Instant::now();
    assert!(holding.release().await.unwrap());
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken(), "{what}: the waiter sat out its lease");
    assert_between(what, released_at.elapsed(), Duration::ZERO, WAKE_BOUND);
}

/// A plain redis-rs connection to `url`, as another program would have.
async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

fn shared_url() -> String {
    servers::shared_url(servers::REDIS)
}

/// The key Redis sees for `key` in `store`'s namespace.
fn full_key(store: &Store, key: &str) -> String {
    format!("{}:{key}", store.namespace)
}

/// The lock record `RedLock::new(cache, key, …)` uses in `store`.
fn lock_key(store: &Store, key: &str) -> String {
    full_key(store, &format!("{key}-lock"))
}

/// Waits until `count` clients are subscribed to `channel`.
async fn until_subscribed(conn: &mut MultiplexedConnection, channel: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(conn)
            .await
            .unwrap();
        if subscribers == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{channel} has {subscribers} subscribers, expected {count}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn wall_clock_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// Retries `attempt` until it succeeds or `within` passes.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = stampede::Result<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => assert!(
                Instant::now() < deadline,
                "{what} still failing after {within:?}: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// 1. A waiter in another OS process wakes on release, not after the lease.
// ---------------------------------------------------------------------------

const CHILD_URL: &str = "STAMPEDE_CHILD_URL";
const CHILD_KEY: &str = "STAMPEDE_CHILD_KEY";
/// The longest the parent waits for any one report from the child.
const CHILD_PATIENCE: Duration = Duration::from_secs(20);

/// The child's reports, read on a thread so the parent can wait with a
/// timeout instead of blocking forever on a child that went wrong.
fn reports_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let mut lines = process::report_lines(child.stdout.take().expect("piped stdout"));
    let (reports, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Some(report) = process::next_report(&mut lines) {
            if reports.send(report).is_err() {
                return;
            }
        }
    });
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_in_another_process_wakes_within_50ms_of_the_release() {
    let store = Store::new(Kind::Redis, "cross_process_wake");
    let mut child = process::spawn_with_stdin(
        "child_holds_a_lock_until_told",
        &[(CHILD_URL, store.url()), (CHILD_KEY, "report".to_owned())],
    );
    let mut orders = child.stdin.take().expect("piped stdin");
    let reports = reports_of(&mut child);
    let held = reports.recv_timeout(CHILD_PATIENCE);
    assert_eq!(
        held.as_deref(),
        Ok("held"),
        "the child did not take the lock"
    );

    // This process waits on its own connections.
    let cache = store.handle().await;
    let waiter = tokio::spawn({
        let lock = RedLock::new(&cache, "report", LONG_LEASE);
        async move {
            let guard = lock.acquire().await.unwrap();
            (guard, wall_clock_ms(), Instant::now())
        }
    });
    let mut observer = raw(&shared_url()).await;
    until_subscribed(
        &mut observer,
        &release_channel(&lock_key(&store, "report")),
        1,
    )
    .await;
    assert!(
        !waiter.is_finished(),
        "waiter returned while the lock was held"
    );

    let ordered_at = Instant::now();
    {
        use std::io::Write;
        writeln!(orders, "release").expect("order the child to release");
        orders.flush().expect("flush the order");
    }
    let released = reports
        .recv_timeout(CHILD_PATIENCE)
        .expect("the child reports its release");
    let released_at_ms: u128 = released
        .strip_prefix("released at ")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("unexpected report {released:?}"));

    let (guard, woke_at_ms, woke_at) = waiter.await.unwrap();
    assert!(guard.was_woken(), "woken by the release, not by the lease");
    assert!(!guard.holds_lock());
    assert!(
        woke_at - ordered_at < LONG_LEASE / 2,
        "waited {:?}: that is the lease, not a wake-up",
        woke_at - ordered_at
    );
    let latency =
        Duration::from_millis(u64::try_from(woke_at_ms.saturating_sub(released_at_ms)).unwrap());
    assert!(
        latency < CROSS_PROCESS_WAKE,
        "woke {latency:?} after the other process released (bound {CROSS_PROCESS_WAKE:?})"
    );
    drop(orders);
    process::expect_success(child, "child holding the lock");
    assert_eq!(cache.waiting_lock_keys(), 0);
}

/// Child side: takes the lock, reports `held`, waits for `release` on
/// stdin, releases, and reports the wall-clock millisecond it released at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of a_waiter_in_another_process_wakes_within_50ms_of_the_release"]
async fn child_holds_a_lock_until_told() {
    assert!(process::is_child(), "run only by the cross-process test");
    let cache = Cache::from_url(&process::var(CHILD_URL)).await.unwrap();
    let guard = RedLock::new(&cache, process::var(CHILD_KEY), LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(guard.holds_lock());
    process::report("held");

    let order = tokio::task::spawn_blocking(process::read_order)
        .await
        .unwrap();
    assert_eq!(order.as_deref(), Some("release"));
    // Stamped before the release is sent: the measured latency includes
    // this process's round trip, so it can only overstate.
    let released_at_ms = wall_clock_ms();
    assert!(guard.release().await.unwrap());
    process::report(format!("released at {released_at_ms}"));
}

// ---------------------------------------------------------------------------
// 2 and 3. A dead or hung server fails fast; the same handle recovers.
// ---------------------------------------------------------------------------

const SHORT_TIMEOUT: Duration = Duration::from_millis(500);

async fn short_timeout_cache(server: &Server) -> Cache {
    let url = format!("{}?timeout_ms=500&namespace=outage", server.url());
    Cache::from_url(&url).await.unwrap()
}

/// Runs each kind of operation once and checks it fails in time with `check`.
async fn every_operation_fails(cache: &Cache, check: impl Fn(&stampede::Error) -> bool) {
    let bound = SHORT_TIMEOUT + MARGIN;
    let started = Instant::now();
    let error = cache.get("k").await.unwrap_err();
    assert_between("failed get", started.elapsed(), Duration::ZERO, bound);
    assert!(check(&error), "get: {error:?}");

    let started = Instant::now();
    let error = cache.set("k", b"v", None).await.unwrap_err();
    assert_between("failed set", started.elapsed(), Duration::ZERO, bound);
    assert!(check(&error), "set: {error:?}");

    let started = Instant::now();
    let error = cache.cas("k", b"v", None, None).await.unwrap_err();
    assert_between("failed cas", started.elapsed(), Duration::ZERO, bound);
    assert!(check(&error), "cas: {error:?}");

    let started = Instant::now();
    let error = RedLock::new(cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap_err();
    assert_between("failed acquire", started.elapsed(), Duration::ZERO, bound);
    assert!(check(&error), "acquire: {error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_within_the_timeout() {
    let mut server = Server::start(servers::REDIS);
    let cache = short_timeout_cache(&server).await;
    cache.set("k", b"v", None).await.unwrap(); // connected
    server.kill();
    every_operation_fails(&cache, |e| e.is_backend()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_times_out_within_the_timeout() {
    let server = Server::start(servers::REDIS);
    let cache = short_timeout_cache(&server).await;
    cache.set("k", b"v", None).await.unwrap(); // connected
    server.pause();
    every_operation_fails(&cache, |e| e.is_backend() && e.is_timeout()).await;
    let error = cache.get("k").await.unwrap_err();
    assert!(
        error.to_string().contains("did not answer within 500ms"),
        "{error}"
    );

    // Thawed, the same handle answers again.
    server.resume();
    let value = eventually("get after resume", Duration::from_secs(5), || {
        cache.get("k")
    })
    .await;
    assert_eq!(value.as_deref(), Some(&b"v"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_handle_works_again_after_a_restart() {
    let mut server = Server::start(servers::REDIS);
    let cache = short_timeout_cache(&server).await;
    let other = short_timeout_cache(&server).await;
    cache.set("k", b"before", None).await.unwrap();
    // Both handles have a pub/sub link before the outage.
    let mut observer = raw(&server.url()).await;
    let (holding, waiter) = hold_with_remote_waiter(
        &cache,
        &other,
        "warm",
        LONG_LEASE,
        &mut observer,
        "outage:warm-lock",
    )
    .await;
    release_wakes(holding, waiter, "wake-up before the restart").await;

    // Same port, empty data, empty script cache.
    server.restart();
    // Each handle's connection went to the old process. Reads are resent on
    // a fresh connection, so they work at once...
    assert_eq!(cache.get("k").await.unwrap(), None, "a fresh server");
    // ...but a write is not (whether it ran cannot be known): the first one
    // on a lost connection fails, and the next reconnects.
    let error = other.add("k", b"after", None).await.unwrap_err();
    assert!(error.is_backend(), "{error:?}");
    assert!(other.add("k", b"after", None).await.unwrap());
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"after"[..])
    );

    // Scripts are loaded again, and the pub/sub links come back.
    let mut observer = raw(&server.url()).await;
    let (holding, waiter) = hold_with_remote_waiter(
        &cache,
        &other,
        "after",
        LONG_LEASE,
        &mut observer,
        "outage:after-lock",
    )
    .await;
    release_wakes(holding, waiter, "wake-up after restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_across_a_restart_is_woken_when_the_record_is_gone() {
    let mut server = Server::start(servers::REDIS);
    let holder = short_timeout_cache(&server).await;
    let waiting = short_timeout_cache(&server).await;
    let mut observer = raw(&server.url()).await;
    let (_held, waiter) = hold_with_remote_waiter(
        &holder,
        &waiting,
        "k",
        LONG_LEASE,
        &mut observer,
        "outage:k-lock",
    )
    .await;

    // The restarted server has no data: the record is gone, unreleased. The
    // waiter's pub/sub link comes back and finds that out.
    let restarted_at = Instant::now();
    server.restart();
    let guard = waiter.await.unwrap();
    assert!(guard.was_woken(), "woken, not left to sit out the lease");
    assert!(
        restarted_at.elapsed() < LONG_LEASE / 2,
        "woken only after {:?}",
        restarted_at.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 4. Values written by other Redis clients.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_set_by_another_client_is_a_cas_conflict() {
    let store = Store::new(Kind::Redis, "foreign_set");
    let cache = store.handle().await;
    let mut foreign = raw(&shared_url()).await;
    let key = full_key(&store, "k");

    cache.set("k", b"ours", None).await.unwrap();
    let (_, token) = cache.gets("k").await.unwrap().unwrap();
    // Another program writes the key with a plain SET: even the same bytes.
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("ours")
        .query_async(&mut foreign)
        .await
        .unwrap();
    assert!(!cache.cas("k", b"mine", Some(&token), None).await.unwrap());
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut foreign)
        .await
        .unwrap();
    assert_eq!(stored, b"ours", "the failed cas left the foreign value");

    // A foreign value reads back whole, and its token is its bytes.
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("theirs")
        .query_async(&mut foreign)
        .await
        .unwrap();
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"theirs"[..])
    );
    let (value, token) = cache.gets("k").await.unwrap().unwrap();
    assert_eq!(&value[..], b"theirs");
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("changed")
        .query_async(&mut foreign)
        .await
        .unwrap();
    assert!(!cache.cas("k", b"mine", Some(&token), None).await.unwrap());
    let (_, token) = cache.gets("k").await.unwrap().unwrap();
    assert!(cache.cas("k", b"mine", Some(&token), None).await.unwrap());
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"mine"[..]));

    // What other clients see of our values: the 14-byte envelope first.
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut foreign)
        .await
        .unwrap();
    assert_eq!(stored.len(), 14 + 4);
    assert_eq!(&stored[..6], b"\x00stmp\x01");
    assert_eq!(&stored[14..], b"mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_are_sent_in_milliseconds() {
    let store = Store::new(Kind::Redis, "ttl_millis");
    let cache = store.handle().await;
    let mut observer = raw(&shared_url()).await;
    cache
        .set("k", b"v", Some(Duration::from_millis(1_500)))
        .await
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(full_key(&store, "k"))
        .query_async(&mut observer)
        .await
        .unwrap();
    assert!((1_000..=1_500).contains(&pttl), "PTTL {pttl}");
    cache.set("forever", b"v", None).await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(full_key(&store, "forever"))
        .query_async(&mut observer)
        .await
        .unwrap();
    assert_eq!(pttl, -1);
}

/// What `MONITOR` shows between now and `ECHO <end>`: the command names
/// sent by clients (commands run inside scripts are left out).
/// A `MONITOR` stream on the server at `url`.
async fn monitor(url: &str) -> impl futures::Stream<Item = String> + Unpin {
    redis::Client::open(url)
        .unwrap()
        .get_async_monitor()
        .await
        .unwrap()
        .into_on_message::<String>()
}

/// The commands `MONITOR` saw since the last call, up to a marker sent now.
async fn commands_until_now(
    admin: &mut MultiplexedConnection,
    monitor: &mut (impl futures::Stream<Item = String> + Unpin),
    end: &str,
) -> Vec<String> {
    let _: String = redis::cmd("ECHO")
        .arg(end)
        .query_async(admin)
        .await
        .unwrap();
    monitored_commands(monitor, end).await
}

async fn monitored_commands(
    monitor: &mut (impl futures::Stream<Item = String> + Unpin),
    end: &str,
) -> Vec<String> {
    use futures::StreamExt;
    let mut commands = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(5), monitor.next())
            .await
            .expect("MONITOR output")
            .expect("MONITOR stream open");
        if line.contains(end) {
            return commands;
        }
        // `<time> [<db> <client>] "CMD" "arg" …`; scripts show as `[0 lua]`.
        let Some((client, rest)) = line.split_once("] ") else {
            continue;
        };
        if client.ends_with(" lua") {
            continue;
        }
        let name = rest.split('"').nth(1).unwrap_or_default();
        commands.push(name.to_ascii_uppercase());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_is_one_command_on_the_wire() {
    let server = Server::start(servers::REDIS);
    let cache = Cache::from_url(&format!("{}?namespace=wire", server.url()))
        .await
        .unwrap();
    let mut admin = raw(&server.url()).await;
    // Connected, and every script used below loaded once.
    cache.set("warm", b"v", None).await.unwrap();
    assert!(cache.cas("warm", b"v", None, None).await.is_ok());
    assert!(cache.delete("warm").await.unwrap());
    let lock = RedLock::new(&cache, "warm", LONG_LEASE);
    assert!(lock.acquire().await.unwrap().release().await.unwrap());

    let mut monitor = monitor(&server.url()).await;
    assert_eq!(cache.get("k").await.unwrap(), None);
    cache.set("k", b"v", None).await.unwrap();
    assert!(cache.add("other", b"v", None).await.unwrap());
    let (_, token) = cache.gets("k").await.unwrap().unwrap();
    assert!(cache.cas("k", b"w", Some(&token), None).await.unwrap());
    assert!(cache.delete("k").await.unwrap());
    let guard = RedLock::new(&cache, "k", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    assert!(guard.release().await.unwrap());
    let commands = commands_until_now(&mut admin, &mut monitor, "end-of-operations").await;
    assert_eq!(
        commands,
        ["GET", "SET", "SET", "GET", "EVALSHA", "EVALSHA", "SET", "EVALSHA"],
        "get, set, add, gets, cas, delete (which voids fill leases too), acquire, release: \
         one command each, no PING"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_fill_is_three_round_trips_and_a_hit_one_get() {
    let server = Server::start(servers::REDIS);
    let cache = Cache::from_url(&format!("{}?namespace=fillwire", server.url()))
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
    let cold: u32 = cache
        .get_or_fill("k", fill.clone(), || async { Ok::<_, stampede::Error>(7) })
        .await
        .unwrap();
    let commands = commands_until_now(&mut admin, &mut monitor, "end-of-cold-fill").await;
    assert_eq!(cold, 7);
    assert_eq!(
        commands,
        ["GET", "EVALSHA", "EVALSHA"],
        "a peek, a read with the lease (once per process), a store under it"
    );

    let hot: u32 = cache
        .get_or_fill("k", fill, || async {
            unreachable!("a hit does not fill");
            #[allow(unreachable_code)]
            Ok::<u32, stampede::Error>(0)
        })
        .await
        .unwrap();
    assert_eq!(hot, 7);
    let commands = commands_until_now(&mut admin, &mut monitor, "end-of-hit").await;
    assert_eq!(commands, ["GET"]);
}

// ---------------------------------------------------------------------------
// 5. The script cache flushed between calls.
// ---------------------------------------------------------------------------

async fn flush_scripts(conn: &mut MultiplexedConnection) {
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_survive_a_script_flush() {
    let store = Store::new(Kind::Redis, "script_flush");
    let cache = store.handle().await;
    let mut admin = raw(&shared_url()).await;

    cache.set("k", b"v1", None).await.unwrap();
    let (_, token) = cache.gets("k").await.unwrap().unwrap();
    assert!(cache.cas("k", b"v2", Some(&token), None).await.unwrap());
    flush_scripts(&mut admin).await;
    let (_, token) = cache.gets("k").await.unwrap().unwrap();
    assert!(cache.cas("k", b"v3", Some(&token), None).await.unwrap());
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v3"[..]));

    let guard = RedLock::new(&cache, "lock", LONG_LEASE)
        .acquire()
        .await
        .unwrap();
    flush_scripts(&mut admin).await;
    assert!(guard.release().await.unwrap());
    assert_eq!(cache.get("lock-lock").await.unwrap(), None);
}

/// Fenced locks and `extend` are not reached through `RedLock` yet, so they
/// are driven through the `Backend` trait directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_try_lock_and_extend_run_on_the_server() {
    let url = shared_url();
    let backend = RedisBackend::new(
        deadpool_redis::Config::from_url(url.clone()),
        RedisOptions::default(),
    )
    .unwrap();
    let mut admin = raw(&url).await;
    let key = format!("fenced-{}-lock", uuid::Uuid::new_v4().simple());
    let lease = Duration::from_secs(5);

    let first = backend
        .try_lock(&key, b"a", lease, Fencing::Issue)
        .await
        .unwrap();
    assert_eq!(first, LockAttempt::Acquired { fence: Some(1) });
    let held = backend
        .try_lock(&key, b"b", lease, Fencing::Issue)
        .await
        .unwrap();
    let LockAttempt::Held {
        remaining: Some(remaining),
    } = held
    else {
        panic!("expected Held with a remaining lease, got {held:?}");
    };
    assert_between("remaining lease", remaining, lease / 2, lease);
    assert_eq!(
        backend
            .try_lock(&key, b"b", lease, Fencing::Skip)
            .await
            .unwrap(),
        LockAttempt::Held { remaining: None }
    );

    // The counter lives at fence_key(), in the lock key's slot.
    let counter: u64 = redis::cmd("GET")
        .arg(fence_key(&key))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(counter, 1);

    flush_scripts(&mut admin).await;
    assert!(!backend.extend(&key, b"b", lease * 4).await.unwrap());
    assert!(backend.extend(&key, b"a", lease * 4).await.unwrap());
    let record = backend.lock_record(&key).await.unwrap().expect("record");
    assert_eq!(&record.owner[..], b"a");
    assert!(record.remaining.unwrap() > lease * 3, "{record:?}");

    flush_scripts(&mut admin).await;
    assert!(!backend.release(&key, b"b").await.unwrap());
    assert!(backend.release(&key, b"a").await.unwrap());
    assert_eq!(backend.lock_record(&key).await.unwrap(), None);
    // Fences keep growing across holders.
    assert_eq!(
        backend
            .try_lock(&key, b"c", lease, Fencing::Issue)
            .await
            .unwrap(),
        LockAttempt::Acquired { fence: Some(2) }
    );
    assert!(backend.release(&key, b"c").await.unwrap());
    let () = redis::cmd("DEL")
        .arg(fence_key(&key))
        .query_async(&mut admin)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// 6. The pub/sub link is killed while a waiter waits.
// ---------------------------------------------------------------------------

/// The ids of the server's pub/sub clients, from `CLIENT LIST TYPE pubsub`.
async fn pubsub_client_ids(conn: &mut MultiplexedConnection) -> Vec<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(conn)
        .await
        .unwrap();
    list.lines()
        .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
        .map(|id| id.parse().unwrap())
        .collect()
}

async fn kill_pubsub_clients(conn: &mut MultiplexedConnection) {
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(killed, 1, "exactly the waiting handle's subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pubsub_link_falls_back_to_the_lease_then_recovers() {
    let server = Server::start(servers::REDIS);
    let url = format!("{}?namespace=link", server.url());
    let holder = Cache::from_url(&url).await.unwrap();
    let waiting = Cache::from_url(&url).await.unwrap();
    let mut admin = raw(&server.url()).await;
    let lease = Duration::from_millis(1_500);

    // A lock that stays held: its waiter returns by the lease.
    let started = Instant::now();
    let (_held, waiter) = hold_with_remote_waiter(
        &holder,
        &waiting,
        "held",
        lease,
        &mut admin,
        "link:held-lock",
    )
    .await;
    let channel = release_channel("link:held-lock");
    let before = pubsub_client_ids(&mut admin).await;
    assert_eq!(before.len(), 1);
    kill_pubsub_clients(&mut admin).await;
    // A new link comes up and subscribes the live channel again, while the
    // waiter is still waiting.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = pubsub_client_ids(&mut admin).await;
        if now.len() == 1 && now != before {
            break;
        }
        assert!(Instant::now() < deadline, "no new pub/sub link: {now:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    until_subscribed(&mut admin, &channel, 1).await;
    assert!(!waiter.is_finished(), "the waiter should still be waiting");
    let guard = waiter.await.unwrap();
    assert!(!guard.was_woken(), "nothing released it");
    assert_between(
        "waiting out the lease",
        started.elapsed(),
        lease,
        lease + MARGIN,
    );

    // After reconnection a new waiter is woken by a release from another handle.
    let (holding, waiter) = hold_with_remote_waiter(
        &holder,
        &waiting,
        "next",
        LONG_LEASE,
        &mut admin,
        "link:next-lock",
    )
    .await;
    release_wakes(holding, waiter, "wake-up after reconnect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_published_while_the_link_is_down_still_wakes() {
    let server = Server::start(servers::REDIS);
    let url = format!("{}?namespace=missed", server.url());
    let holder = Cache::from_url(&url).await.unwrap();
    let waiting = Cache::from_url(&url).await.unwrap();
    let mut admin = raw(&server.url()).await;

    let (holding, waiter) = hold_with_remote_waiter(
        &holder,
        &waiting,
        "k",
        LONG_LEASE,
        &mut admin,
        "missed:k-lock",
    )
    .await;
    // Once CLIENT KILL has answered, nobody hears the release's PUBLISH; the
    // reconnect must notice that the record is gone.
    kill_pubsub_clients(&mut admin).await;
    release_wakes(holding, waiter, "wake-up for a release missed by pub/sub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_stored_while_the_link_is_down_still_wakes_its_waiters() {
    let server = Server::start(servers::REDIS);
    let url = format!("{}?namespace=missedfill", server.url());
    let filler = Cache::from_url(&url).await.unwrap();
    let waiting = Cache::from_url(&url).await.unwrap();
    let mut admin = raw(&server.url()).await;
    let fill = Fill::ttl(Duration::from_secs(60)).lease(LONG_LEASE);

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let filling = tokio::spawn({
        let (filler, fill) = (filler.clone(), fill.clone());
        async move {
            filler
                .get_or_fill("k", fill, move || async move {
                    let _ = started_tx.send(());
                    let _ = go_rx.await;
                    Ok::<_, stampede::Error>("filled".to_owned())
                })
                .await
                .unwrap()
        }
    });
    started_rx.await.unwrap();
    let waiter = tokio::spawn(async move {
        waiting
            .get_or_fill("k", fill, || async {
                Ok::<_, stampede::Error>("second fill".to_owned())
            })
            .await
            .unwrap()
    });
    until_subscribed(&mut admin, &release_channel("missedfill:k"), 1).await;
    // Nobody hears the store's PUBLISH: the reconnect must notice that the
    // fill lease is gone, although the key itself now exists.
    kill_pubsub_clients(&mut admin).await;
    let stored_at = Instant::now();
    go_tx.send(()).unwrap();
    assert_eq!(filling.await.unwrap(), "filled");
    assert_eq!(waiter.await.unwrap(), "filled");
    assert!(
        stored_at.elapsed() < LONG_LEASE / 4,
        "the waiter sat out the lease: {:?}",
        stored_at.elapsed()
    );
}

// ---------------------------------------------------------------------------
// A pool the application already has.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_on_the_applications_own_pool() {
    let url = shared_url();
    let pool = deadpool_redis::Config::from_url(url.clone())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let namespace = format!("app_pool-{}", uuid::Uuid::new_v4().simple());
    let cache = Cache::redis((pool.clone(), redis::Client::open(url.clone()).unwrap()))
        .unwrap()
        .with_namespace(&namespace);
    let other = Cache::redis_with(
        deadpool_redis::Config::from_url(url.clone()),
        RedisOptions::default().timeout(Duration::from_secs(1)),
    )
    .unwrap()
    .with_namespace(&namespace);

    cache.set("k", b"v", None).await.unwrap();
    assert_eq!(other.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    // The application keeps using its pool as before.
    let mut conn = pool.get().await.unwrap();
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(format!("{namespace}:k"))
        .query_async(&mut *conn)
        .await
        .unwrap();
    assert_eq!(&stored[14..], b"v");

    let mut observer = raw(&url).await;
    let lock_key = format!("{namespace}:k-lock");
    let (holding, waiter) =
        hold_with_remote_waiter(&cache, &other, "k", LONG_LEASE, &mut observer, &lock_key).await;
    release_wakes(holding, waiter, "wake-up on the application's pool").await;
}

// ---------------------------------------------------------------------------
// 7. URL parameters and configuration errors.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bad_url_parameters_name_the_parameter() {
    for (url, names) in [
        ("redis://127.0.0.1:6379?timeout_ms=soon", "`timeout_ms`"),
        ("redis://127.0.0.1:6379?timeout_ms=0", "`timeout_ms`"),
        (
            "redis://127.0.0.1:6379?timout_ms=5",
            "unknown parameter `timout_ms`",
        ),
        (
            "redis://127.0.0.1:6379?pool_size=4",
            "unknown parameter `pool_size`",
        ),
        ("redis://127.0.0.1:6379?protocol=resp9", "`protocol`"),
        ("redis://127.0.0.1:6379?insecure=true", "`insecure`"),
        ("redis://127.0.0.1:6379?insecure=maybe", "`insecure`"),
        ("redis://?timeout_ms=5", "needs a host"),
        ("redis://127.0.0.1:port", "not a usable Redis address"),
        (
            "redis://127.0.0.1:6379/notadb",
            "not a usable Redis address",
        ),
    ] {
        let error = Cache::from_url(url).await.unwrap_err();
        assert!(error.is_invalid_input(), "{url}: {error:?}");
        assert!(
            matches!(error, stampede::Error::InvalidConfig { .. }),
            "{url}: {error:?}"
        );
        assert!(error.to_string().contains(names), "{url}: {error}");
    }
}

#[tokio::test]
async fn good_urls_open_without_connecting() {
    // Port 1 has no server: opening is lazy, so these still succeed.
    for url in [
        "redis://127.0.0.1:1",
        "redis://127.0.0.1:1/3",
        "redis://user:secret@127.0.0.1:1/0?timeout_ms=250&namespace=app",
        "redis://127.0.0.1:1?protocol=resp3",
        "REDIS://localhost:1",
    ] {
        let cache = Cache::from_url(url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(cache.backend_kind(), "redis");
    }
    // The first operation is what fails, and quickly.
    let cache = Cache::from_url("redis://127.0.0.1:1?timeout_ms=250")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(cache.get("k").await.unwrap_err().is_backend());
    assert!(started.elapsed() < Duration::from_millis(250) + MARGIN);
}

#[tokio::test]
async fn credentials_stay_out_of_redis_config_errors() {
    let error = Cache::from_url("redis://:hunter2@127.0.0.1:6379/notadb")
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn bad_programmatic_configs_are_refused() {
    let zero = Cache::redis_with(
        deadpool_redis::Config::from_url("redis://127.0.0.1:6379"),
        RedisOptions::default().timeout(Duration::ZERO),
    )
    .unwrap_err();
    assert!(zero.is_invalid_input());
    assert!(zero.to_string().contains("timeout"), "{zero}");

    let both = deadpool_redis::Config {
        url: Some("redis://127.0.0.1:6379".into()),
        connection: Some(deadpool_redis::ConnectionInfo::default()),
        pool: None,
    };
    let error = Cache::redis(both).unwrap_err();
    assert!(error.to_string().contains("not both"), "{error}");
}

#[cfg(not(feature = "redis-tls"))]
#[tokio::test]
async fn rediss_without_tls_names_the_missing_feature() {
    let error = Cache::from_url("rediss://127.0.0.1:6379")
        .await
        .unwrap_err();
    assert!(error.is_invalid_input());
    assert!(error.to_string().contains("`redis-tls` feature"), "{error}");
}

#[test]
fn the_backend_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let backend = RedisBackend::new(
        deadpool_redis::Config::from_url("redis://127.0.0.1:1"),
        RedisOptions::default(),
    )
    .unwrap();
    send_sync(&backend);
    send(&backend.get("k"));
    send(&backend.cas("k", b"v", None, None));
    send(&backend.release("k", b"o"));
    send(&backend.watch_releases("k", Default::default()));
}

// ---------------------------------------------------------------------------
// TLS (feature `redis-tls`).
// ---------------------------------------------------------------------------

#[cfg(feature = "redis-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_speak_tls_including_pub_sub() {
    let server = servers::start_tls_redis();
    // The certificate is self-signed, so checking it must fail...
    let checked = Cache::from_url(&format!("{}?timeout_ms=1000", server.url()))
        .await
        .unwrap();
    let error = checked.get("k").await.unwrap_err();
    assert!(error.is_backend(), "{error:?}");

    // ...and with checks off, everything works over TLS.
    let url = format!("{}?insecure=true&namespace=tls", server.url());
    let cache = Cache::from_url(&url).await.unwrap();
    let other = Cache::from_url(&url).await.unwrap();
    cache.set("k", b"secret", None).await.unwrap();
    assert_eq!(
        other.get("k").await.unwrap().as_deref(),
        Some(&b"secret"[..])
    );

    let mut observer = raw(&format!("{}/#insecure", server.url())).await;
    let (holding, waiter) =
        hold_with_remote_waiter(&cache, &other, "k", LONG_LEASE, &mut observer, "tls:k-lock").await;
    release_wakes(holding, waiter, "wake-up over TLS").await;
    let _ = std::fs::remove_dir_all(servers::tls_dir(server.port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_fill_lease_that_never_expires_does_not_hang_a_fill() {
    let store = Store::new(Kind::Redis, "foreign-fill-lease");
    let cache = store.handle().await;
    // Something that is not ours holds the key's fill lease record, forever.
    let mut admin = raw(&servers::shared_url(servers::REDIS)).await;
    let lease_record = format!("{{{}:k}}:fill", store.namespace);
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
