//! Pools, URL parameters, configuration errors, TLS.

use std::time::{Duration, Instant};

use stampede::backend::redis::{deadpool_redis, redis, RedisBackend, RedisOptions};
use stampede::backend::Backend;
use stampede::Cache;

#[cfg(feature = "redis-tls")]
use super::common::servers;
use super::{hold_with_remote_waiter, raw, release_wakes, shared_url, LONG_LEASE, MARGIN};

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
