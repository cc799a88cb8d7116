//! What goes over the wire: values written by other clients, TTLs in
//! milliseconds, one command per operation.

use std::time::Duration;

use stampede::backend::redis::redis;
use stampede::{Cache, Fill, RedLock};

use super::common::servers::{self, Server};
use super::common::{Kind, Store};
use super::{full_key, raw, shared_url, MultiplexedConnection, LONG_LEASE};

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
pub(crate) async fn monitor(url: &str) -> impl futures::Stream<Item = String> + Unpin + use<> {
    redis::Client::open(url)
        .unwrap()
        .get_async_monitor()
        .await
        .unwrap()
        .into_on_message::<String>()
}

/// The commands `MONITOR` saw since the last call, up to a marker sent now.
pub(crate) async fn commands_until_now(
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
