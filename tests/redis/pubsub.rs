//! The pub/sub link is killed while a waiter waits.

use std::time::{Duration, Instant};

use stampede::backend::redis::{redis, release_channel};
use stampede::{Cache, Fill};

use super::common::assert_between;
use super::common::servers::{self, Server};
use super::{
    hold_with_remote_waiter, raw, release_wakes, until_subscribed, MultiplexedConnection,
    LONG_LEASE, MARGIN,
};

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
