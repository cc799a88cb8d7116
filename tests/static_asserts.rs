//! Compile-time checks that the public types and futures can cross threads:
//! a `!Send` future (say, one holding a lock guard across an `.await`) would
//! fail to build this file.

use std::future::Future;
use std::time::Duration;

use stampede::{Cache, LeaseGuard, LockGuard, OptimisticLock, RedLock};

fn is_send<T: Send>(_: &T) {}
fn is_send_sync_static<T: Send + Sync + 'static>() {}
fn future_is_send<F: Future + Send>(_: F) {}

#[test]
fn handles_and_guards_are_send_sync_static() {
    is_send_sync_static::<Cache>();
    is_send_sync_static::<RedLock>();
    is_send_sync_static::<LockGuard>();
    is_send_sync_static::<LeaseGuard>();
    is_send_sync_static::<OptimisticLock>();
    is_send_sync_static::<stampede::Error>();
}

#[allow(dead_code, clippy::diverging_sub_expression, unreachable_code)]
fn public_futures_are_send(
    cache: Cache,
    lock: RedLock,
    guard: LeaseGuard,
    held: LockGuard,
    cas: OptimisticLock,
) {
    future_is_send(cache.get("k"));
    future_is_send(cache.set("k", b"v", None));
    future_is_send(cache.add("k", b"v", None));
    future_is_send(cache.delete("k"));
    future_is_send(cache.gets("k"));
    future_is_send(cache.cas("k", b"v", None, None));
    future_is_send(Cache::from_url("memory://"));
    future_is_send(cache.release_all());
    future_is_send(cache.synchronized("k", Duration::from_secs(1), || async {}));
    future_is_send(lock.acquire());
    future_is_send(lock.lock());
    future_is_send(lock.try_lock());
    future_is_send(guard.lost());
    future_is_send(guard.extend(Duration::from_secs(1)));
    future_is_send(guard.is_still_valid());
    future_is_send(guard.release());
    future_is_send(held.release());
    future_is_send(OptimisticLock::acquire(&cache, "k"));
    future_is_send(cas.cas(b"v", None));
    future_is_send(lock.try_acquire());
    future_is_send(cache.set_value("k", &1u8, None));
    future_is_send(cache.get_value::<u8>("k"));
    future_is_send(cache.update("k", None, |n: Option<u8>| n.unwrap_or(0)));
    future_is_send(
        cache.get_or_fill("k", stampede::Fill::ttl(Duration::from_secs(1)), || async {
            Ok::<u8, stampede::Error>(1)
        }),
    );
    future_is_send(cache.get_or_fill_detached(
        "k",
        stampede::Fill::ttl(Duration::from_secs(1)),
        || async { Ok::<u8, stampede::Error>(1) },
    ));
    future_is_send(cache.mark_stale("k", Duration::from_secs(1)));
    is_send(&cache);
}
