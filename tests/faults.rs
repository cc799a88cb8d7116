//! What the locks do when the backend fails under them, through a wrapper
//! backend that fails chosen operations on demand (fault injection over the
//! real memory backend; the network backends' own outage tests stop a real
//! server). The wrapper also counts calls, to check how much backend work a
//! stampede costs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stampede::backend::memory::MemoryBackend;
use stampede::backend::{Backend, CasToken, Fencing, LockAttempt, LockRecord};
use stampede::{Cache, Error, Fill, LeaseState, OptimisticLock, RedLock, Result};
use tokio::time::Instant;

/// Which operations fail right now.
#[derive(Default)]
struct Faults {
    extend: AtomicBool,
    release: AtomicBool,
    try_lock: AtomicBool,
    everything: AtomicBool,
    /// Every call that reached the backend.
    calls: AtomicUsize,
}

struct Flaky {
    inner: MemoryBackend,
    faults: Arc<Faults>,
}

impl Flaky {
    fn check(&self, op: &'static str, specific: &AtomicBool) -> Result<()> {
        self.faults.calls.fetch_add(1, Ordering::SeqCst);
        if specific.load(Ordering::SeqCst) || self.faults.everything.load(Ordering::SeqCst) {
            return Err(Error::backend("flaky", op, "injected failure"));
        }
        Ok(())
    }
    fn any(&self, op: &'static str) -> Result<()> {
        self.check(op, &AtomicBool::new(false))
    }
}

impl Backend for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.any("get")?;
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.any("set")?;
        self.inner.set(key, value, ttl).await
    }
    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        self.any("add")?;
        self.inner.add(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.any("delete")?;
        self.inner.delete(key).await
    }
    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>> {
        self.any("gets")?;
        self.inner.gets(key).await
    }
    async fn cas(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<&CasToken>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.any("cas")?;
        self.inner.cas(key, value, expected, ttl).await
    }
    async fn try_lock(
        &self,
        key: &str,
        owner: &[u8],
        lease: Duration,
        fencing: Fencing,
    ) -> Result<LockAttempt> {
        self.check("try_lock", &self.faults.try_lock)?;
        self.inner.try_lock(key, owner, lease, fencing).await
    }
    async fn lock_record(&self, key: &str) -> Result<Option<LockRecord>> {
        self.any("lock_record")?;
        self.inner.lock_record(key).await
    }
    async fn release(&self, key: &str, owner: &[u8]) -> Result<bool> {
        self.check("release", &self.faults.release)?;
        self.inner.release(key, owner).await
    }
    async fn extend(&self, key: &str, owner: &[u8], lease: Duration) -> Result<bool> {
        self.check("extend", &self.faults.extend)?;
        self.inner.extend(key, owner, lease).await
    }
}

/// Waits (on the test's clock, paused or not) until `done` holds; fails
/// after five seconds, naming `what`.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "never saw: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn flaky_cache() -> (Cache, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let cache = Cache::custom(Flaky {
        inner: MemoryBackend::default(),
        faults: faults.clone(),
    });
    (cache, faults)
}

#[tokio::test(start_paused = true)]
async fn failing_renewals_put_the_lease_in_danger_then_lose_it() {
    let (cache, faults) = flaky_cache();
    let lease = Duration::from_millis(1_200);
    let started = Instant::now();
    let guard = RedLock::new(&cache, "job", lease)
        .auto_renew(true)
        .lock()
        .await
        .unwrap();
    let mut states = guard.watch_state();
    faults.extend.store(true, Ordering::SeqCst);

    states
        .wait_for(|s| *s == LeaseState::InDanger)
        .await
        .unwrap();
    let in_danger = started.elapsed();
    assert!(
        in_danger >= lease / 2 && in_danger < lease,
        "in danger after {in_danger:?}"
    );

    states.wait_for(|s| *s == LeaseState::Lost).await.unwrap();
    let lost = started.elapsed();
    assert!(
        lost >= lease && lost < lease + Duration::from_millis(500),
        "lost after {lost:?}"
    );
    guard.lost().await; // resolves at once now
}

#[tokio::test(start_paused = true)]
async fn a_lease_in_danger_recovers_when_renewals_succeed_again() {
    let (cache, faults) = flaky_cache();
    let lease = Duration::from_millis(1_200);
    let guard = RedLock::new(&cache, "job", lease)
        .auto_renew(true)
        .lock()
        .await
        .unwrap();
    let mut states = guard.watch_state();
    faults.extend.store(true, Ordering::SeqCst);
    states
        .wait_for(|s| *s == LeaseState::InDanger)
        .await
        .unwrap();

    faults.extend.store(false, Ordering::SeqCst);
    states.wait_for(|s| *s == LeaseState::Held).await.unwrap();
    // Recovered for real: it outlives its original lease.
    tokio::time::sleep(lease).await;
    assert!(guard.is_still_valid().await.unwrap());
    assert_eq!(guard.state(), LeaseState::Held);
}

#[tokio::test(start_paused = true)]
async fn a_failed_release_keeps_the_guard_holding_until_a_retry_succeeds() {
    let (cache, faults) = flaky_cache();
    let guard = RedLock::new(&cache, "k", Duration::from_secs(30))
        .acquire()
        .await
        .unwrap();
    faults.release.store(true, Ordering::SeqCst);
    let err = guard.release().await.unwrap_err();
    assert!(err.is_backend(), "{err}");
    assert!(
        guard.holds_lock(),
        "a failed release must not forget the lock"
    );
    assert!(cache.get("k-lock").await.unwrap().is_some());

    faults.release.store(false, Ordering::SeqCst);
    assert!(guard.release().await.unwrap());
    assert_eq!(cache.get("k-lock").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_guard_whose_release_failed_is_not_left_registered() {
    let (cache, faults) = flaky_cache();
    let lease = RedLock::new(&cache, "k", Duration::from_secs(30))
        .lock()
        .await
        .unwrap();
    faults.release.store(true, Ordering::SeqCst);
    assert!(lease.release().await.is_err());
    drop(lease); // background release fails too, and logs
    until("the dropped guard unregistered", || {
        cache.held_lock_count() == 0
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_backend_outage_fails_calls_and_leaves_no_waiters_or_holders() {
    let (cache, faults) = flaky_cache();
    let holder = RedLock::new(&cache, "k", Duration::from_secs(30))
        .lock()
        .await
        .unwrap();
    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move {
            RedLock::new(&cache, "k", Duration::from_secs(30))
                .lock()
                .await
        }
    });
    until("the waiter waiting", || cache.waiting_lock_keys() == 1).await;
    faults.everything.store(true, Ordering::SeqCst);
    // The holder's release fails; its drop retries in the background (and fails too).
    assert!(holder.release().await.unwrap_err().is_backend());
    drop(holder);
    // The waiter is woken by nothing; its next attempt would fail. Cancel it.
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());

    let err = RedLock::new(&cache, "other", Duration::from_secs(1))
        .acquire()
        .await
        .unwrap_err();
    assert!(err.is_backend());
    let err = OptimisticLock::acquire(&cache, "x").await.unwrap_err();
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("injected failure"), "{err}");
    assert_eq!(cache.waiting_lock_keys(), 0);
    assert_eq!(cache.held_lock_count(), 0);

    // Back up: the same handle works, and the abandoned record runs out or is retaken.
    faults.everything.store(false, Ordering::SeqCst);
    assert!(RedLock::new(&cache, "other", Duration::from_secs(1))
        .acquire()
        .await
        .unwrap()
        .holds_lock());
}

#[tokio::test(start_paused = true)]
async fn a_failing_try_lock_inside_lock_returns_the_error() {
    let (cache, faults) = flaky_cache();
    let _holder = RedLock::new(&cache, "k", Duration::from_millis(400))
        .lock()
        .await
        .unwrap();
    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move {
            RedLock::new(&cache, "k", Duration::from_secs(30))
                .lock()
                .await
        }
    });
    until("the waiter waiting", || cache.waiting_lock_keys() == 1).await;
    faults.try_lock.store(true, Ordering::SeqCst);
    // The waiter retries when the holder's lease would run out, and fails then.
    let err = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_backend(), "{err}");
    assert_eq!(cache.waiting_lock_keys(), 0);
}

/// A thousand callers of one cold key in one process cost the backend what
/// one caller costs: every caller but the flight's leader follows the flight
/// without a backend call.
///
/// Deterministic: the fill is held back until every caller has started, on
/// a current-thread runtime, where a caller runs until it waits. So when the
/// last caller has started, every caller before it already follows (or
/// leads) the flight, whatever the machine's load; without the in-process
/// single flight each would read, try the lock and wait on its own (about
/// four calls each).
#[tokio::test(flavor = "current_thread")]
async fn a_local_stampede_costs_a_handful_of_backend_calls() {
    const CALLERS: usize = 1_000;
    let (cache, faults) = flaky_cache();
    let fill = || Fill::ttl(Duration::from_secs(60));

    // What one cold caller costs, alone.
    let value = cache
        .get_or_fill("alone", fill(), || async { Ok::<_, Error>(42u64) })
        .await
        .unwrap();
    assert_eq!(value, 42);
    let one_caller = faults.calls.swap(0, Ordering::SeqCst);

    let fills = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (open, gate) = tokio::sync::watch::channel(false);
    let calls: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, fills, started) = (cache.clone(), fills.clone(), started.clone());
            let mut gate = gate.clone();
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                cache
                    .get_or_fill("report", fill(), || async move {
                        fills.fetch_add(1, Ordering::SeqCst);
                        gate.wait_for(|open| *open).await.unwrap();
                        Ok::<_, Error>(42u64)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    until("every caller started", || {
        started.load(Ordering::SeqCst) == CALLERS
    })
    .await;
    open.send_replace(true);
    for call in calls {
        assert_eq!(call.await.unwrap(), 42);
    }
    assert_eq!(fills.load(Ordering::SeqCst), 1);
    let calls = faults.calls.load(Ordering::SeqCst);
    assert_eq!(
        calls, one_caller,
        "{CALLERS} callers made {calls} backend calls; one alone makes {one_caller}"
    );
}
