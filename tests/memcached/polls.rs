//! Waiters in another handle (with its own wake-up map, as another process
//! has) learn that a fill or a lock ended by polling, on the schedule
//! `MemcachedConfig::poll_interval` documents: a few milliseconds late
//! after a short wait, and with no more polls over a long one than the
//! schedule says. The waiting handle talks to memcached through a counting
//! proxy, so every request it sends, polls included, is seen.

use std::time::Duration;

use stampede::typed::Fill;
use stampede::{Cache, RedLock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::proxy::CountRequests;
use super::{servers_of, shared_url, unique};

/// The defaults of `first_poll` and `poll_interval`.
const FIRST_POLL: Duration = Duration::from_millis(5);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Comfortably above what the schedule allows after the short waits below
/// (5 ms, +20%, plus round trips), and below the 35 ms that a fixed 50 ms
/// poll (its first poll 40–60 ms in) would be late at the least after a
/// 5 ms wait, less the millisecond or two the test takes to see the wait
/// begin.
const LATE_AT_MOST: Duration = Duration::from_millis(25);

/// How many polls the documented schedule sends within `wait`, with every
/// interval scaled by `scale` (0.8 and 1.2 are the ends of the jitter),
/// round trips left out: the first `FIRST_POLL` after the start, then each
/// a sixteenth of the time waited so far, within [`FIRST_POLL`,
/// `POLL_INTERVAL`].
fn scheduled_polls(wait: Duration, scale: f64) -> usize {
    let (mut at, mut polls) = (Duration::ZERO, 0);
    loop {
        at += (at / 16).clamp(FIRST_POLL, POLL_INTERVAL).mul_f64(scale);
        if at > wait {
            return polls;
        }
        polls += 1;
    }
}

/// Two handles on one server, each with its own wake-up map: `holder`
/// directly, `waiter` through `proxy`.
struct Handles {
    holder: Cache,
    waiter: Cache,
    proxy: CountRequests,
}

async fn handles() -> Handles {
    let server = servers_of(&shared_url()).remove(0);
    let proxy = CountRequests::start(server.clone()).await;
    // No namespace: a namespace's first call also reads its generation.
    let holder = Cache::from_url(&format!("memcached://{server}"))
        .await
        .unwrap();
    let waiter = Cache::from_url(&format!("memcached://{}", proxy.addr))
        .await
        .unwrap();
    waiter.get(&unique("warm-up")).await.unwrap();
    let _ = proxy.take();
    Handles {
        holder,
        waiter,
        proxy,
    }
}

impl Handles {
    /// Waits until the waiting handle has sent `requests` requests since
    /// the log was last taken, and takes it. The waiter's log is the
    /// signal: nothing else goes through the proxy.
    async fn sent(&self, requests: usize) -> Vec<String> {
        let mut sent = Vec::new();
        while sent.len() < requests {
            sent.extend(self.proxy.take());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sent
    }

    /// Starts a fill of `key` in the holding handle that keeps its lease
    /// until the returned sender fires, and returns once it holds the
    /// lease; the task ends with the instant the value was stored.
    async fn hold_a_fill(&self, key: &str) -> (oneshot::Sender<()>, JoinHandle<Instant>) {
        let (holding, held) = oneshot::channel();
        let (finish, finished) = oneshot::channel::<()>();
        let (holder, key) = (self.holder.clone(), key.to_owned());
        let task = tokio::spawn(async move {
            let value: u32 = holder
                .get_or_fill(&key, Fill::ttl(Duration::from_secs(60)), || async move {
                    let _ = holding.send(());
                    let _ = finished.await;
                    Ok::<_, stampede::Error>(7)
                })
                .await
                .unwrap();
            assert_eq!(value, 7);
            Instant::now()
        });
        held.await.expect("the fill started");
        (finish, task)
    }

    /// Starts the waiting handle's `get_or_fill` of `key`, and returns once
    /// it waits: its first read found the lease out, and so did its read
    /// again after it registered for wake-ups (two `mg`). Ends with the
    /// instant it returned.
    async fn start_waiting(&self, key: &str) -> JoinHandle<Instant> {
        // What an earlier wait sent (the poll that saw its end) is not ours.
        let _ = self.proxy.take();
        let (waiter, key) = (self.waiter.clone(), key.to_owned());
        let task = tokio::spawn(async move {
            let value: u32 = waiter
                .get_or_fill(&key, Fill::ttl(Duration::from_secs(60)), || async {
                    panic!("the waiter filled: it should have waited for the holder's value");
                    #[allow(unreachable_code)]
                    Ok::<u32, stampede::Error>(0)
                })
                .await
                .unwrap();
            assert_eq!(value, 7);
            Instant::now()
        });
        // The poller's first poll (5 ms in) may already be among them on a
        // busy machine: on the wire it is one more `mg`.
        let reads = self.sent(2).await;
        assert!(
            reads.len() >= 2 && reads.iter().all(|word| word == "mg"),
            "a read, and a read again to wait: {reads:?}"
        );
        task
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_in_another_handle_learns_of_a_short_fill_within_a_few_milliseconds() {
    let handles = handles().await;
    for hold in [5, 30, 60].map(Duration::from_millis) {
        let key = unique("short-fill");
        let (finish, filled) = handles.hold_a_fill(&key).await;
        let waited = handles.start_waiting(&key).await;
        tokio::time::sleep(hold).await;
        finish.send(()).unwrap();
        let (filled_at, woken_at) = (filled.await.unwrap(), waited.await.unwrap());
        let late = woken_at.saturating_duration_since(filled_at);
        assert!(
            late < LATE_AT_MOST,
            "a fill that ended {hold:?} into the wait was seen {late:?} late"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_waiter_in_another_handle_learns_of_a_quick_release_within_a_few_milliseconds() {
    let handles = handles().await;
    let key = unique("quick-release");
    let held = RedLock::new(&handles.holder, &key, Duration::from_secs(10))
        .acquire()
        .await
        .unwrap();
    assert!(held.holds_lock());
    let waiting = tokio::spawn({
        let lock = RedLock::new(&handles.waiter, &key, Duration::from_secs(10));
        async move {
            let guard = lock.acquire().await.unwrap();
            (Instant::now(), guard.was_woken())
        }
    });
    while handles.waiter.waiting_lock_keys() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let released_at = Instant::now();
    assert!(held.release().await.unwrap());
    let (woken_at, woken) = waiting.await.unwrap();
    assert!(woken, "the waiter was not woken by the release");
    let late = woken_at.saturating_duration_since(released_at);
    assert!(
        late < LATE_AT_MOST,
        "a release 5 ms into the wait was seen {late:?} late"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_long_wait_the_waiter_polls_as_the_schedule_says() {
    let handles = handles().await;
    let key = unique("long-fill");
    let (finish, filled) = handles.hold_a_fill(&key).await;
    let waited = handles.start_waiting(&key).await;
    let began = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let polls = handles.proxy.take();
    let window = began.elapsed();
    finish.send(()).unwrap();
    filled.await.unwrap();
    waited.await.unwrap();

    assert!(polls.iter().all(|word| word == "mg"), "{polls:?}");
    // The poller started a little before `began` (before the waiter's
    // second read); timers fire late on a busy machine, never early, and
    // each poll's round trip delays the next, so fewer polls than
    // scheduled are possible and more are not.
    let most = scheduled_polls(window + Duration::from_millis(5), 0.8);
    let fewest = scheduled_polls(window, 1.2) * 3 / 4;
    assert!(
        (fewest..=most).contains(&polls.len()),
        "{} polls in {window:?}; the schedule sends {fewest}..={most} \
         (a fixed 50 ms poll about 10)",
        polls.len()
    );
}
