//! A lock waiter across a server outage, on any backend with a server the
//! test can kill and restart.

use std::time::Duration;

use stampede::{Cache, RedLock};

use super::servers::{Server, ServerKind};
use super::until_waiting;

/// Parks a `RedLock::lock` waiter, kills the server under it, and checks
/// that the waiter is still waiting well after its first attempt on the
/// dead server (the holder's record would have run out after 2 s; the
/// waiter tries again by then), then that it takes the lock once the
/// server is back. Before `lock` retried connection losses, the waiter
/// returned its first connection error.
pub async fn a_lock_waiter_rides_out_an_outage(kind: ServerKind) {
    let mut server = Server::start(kind);
    let holder = Cache::from_url(&server.url()).await.unwrap();
    let waiting = Cache::from_url(&server.url()).await.unwrap();
    let _held = RedLock::new(&holder, "k", Duration::from_secs(2))
        .acquire()
        .await
        .unwrap();
    // A short lease of its own, so a backend that does not report the
    // holder's remaining lease (memcached) tries again within seconds too;
    // the wait timeout is what bounds its wait.
    let mut waiter = tokio::spawn({
        let lock = RedLock::new(&waiting, "k", Duration::from_secs(1))
            .wait_timeout(Duration::from_secs(60));
        async move { lock.lock().await }
    });
    until_waiting(&waiting, 1).await;

    server.kill();
    // The waiter's retries (at 2 s on Redis, 3 s on memcached) all meet a
    // refused connection now.
    if let Ok(gave_up) = tokio::time::timeout(Duration::from_secs(8), &mut waiter).await {
        panic!("the waiter gave up while the server was down: {gave_up:?}");
    }
    server.restart();
    let guard = waiter
        .await
        .unwrap()
        .expect("the waiter takes the lock once the server is back");
    assert!(guard.release().await.unwrap());
}
