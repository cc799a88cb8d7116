//! Cache URLs: a password never shows in an error, whatever characters it
//! holds and however the URL parsers split it.
#![cfg(any(feature = "redis", feature = "memcached"))]

use std::error::Error as _;

use stampede::Cache;

/// Characters that end or split a URL's user-info when not percent-encoded.
const RESERVED: &str = "/?#@:[]%&=+ !$'()*,;";

/// Every way an error can show text: `Display`, `Debug`, and its sources.
fn everything_shown(error: &stampede::Error) -> String {
    let mut shown = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(inner) = source {
        shown.push_str(&format!(" {inner} {inner:?}"));
        source = inner.source();
    }
    shown
}

#[track_caller]
fn assert_hidden(error: &stampede::Error, url: &str) {
    let shown = everything_shown(error);
    assert!(
        !shown.contains("s3cr") && !shown.contains("Xq9"),
        "{url:?} shows its password in: {shown}"
    );
}

/// A server nothing listens on, so that a URL that parses fails on first use.
const NOBODY: &str = "127.0.0.1:1";

async fn check_scheme(scheme: &str) {
    check_url(scheme, "").await;
}

/// As [`check_scheme`], with `path` after the host (a Sentinel master).
async fn check_url(scheme: &str, path: &str) {
    for reserved in RESERVED.chars() {
        let url = format!("{scheme}://user:s3cr{reserved}Xq9@{NOBODY}{path}?timeout_ms=200");
        match Cache::from_url(&url).await {
            Err(error) => assert_hidden(&error, &url),
            Ok(cache) => {
                let error = cache.get("k").await.unwrap_err();
                assert_hidden(&error, &url);
            }
        }
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_url_passwords_never_show_in_errors() {
    check_scheme("redis").await;
}

#[cfg(feature = "memcached")]
#[tokio::test]
async fn memcached_url_passwords_never_show_in_errors() {
    check_scheme("memcached").await;
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn redis_cluster_url_passwords_never_show_in_errors() {
    check_scheme("redis+cluster").await;
}

#[cfg(feature = "redis-sentinel")]
#[tokio::test]
async fn redis_sentinel_url_passwords_never_show_in_errors() {
    check_url("redis+sentinel", "/mymaster").await;
    check_scheme("redis+sentinel").await;
}

/// Each malformed cluster or Sentinel URL is refused when the cache is
/// built, with a message that says what to write instead.
#[cfg(all(feature = "redis-cluster", feature = "redis-sentinel"))]
#[tokio::test]
async fn malformed_cluster_and_sentinel_urls_say_what_is_wrong() {
    for (url, says) in [
        ("redis+cluster://", "needs a host"),
        ("redis+cluster://h:1,,h:2", "empty host"),
        ("redis+cluster://h:1,h:2/3", "only database 0"),
        ("redis+sentinel://h:26379", "names the master"),
        ("redis+sentinel://h:26379/", "names the master"),
        (
            "redis+sentinel://h:1,h:2/mymaster?protocol=4",
            "resp2 or resp3",
        ),
        (
            "redis+sentinel://h:1/mymaster?insecure=true",
            "only applies to TLS",
        ),
        ("redis+cluster://h:1?bogus=1", "unknown parameter `bogus`"),
        ("redis+shard://h:1", "unknown scheme `redis+shard`"),
    ] {
        let error = Cache::from_url(url).await.unwrap_err();
        assert!(
            matches!(error, stampede::Error::InvalidConfig { .. }),
            "{url}: {error:?}"
        );
        assert!(error.to_string().contains(says), "{url}: {error}");
    }
    for url in [
        "redis+cluster://h:1,h:2,h:3?namespace=app&timeout_ms=300",
        "redis+cluster://user:pass@h:1/0",
        "redis+sentinel://h:1,h:2/mymaster?sentinel_password=p",
        "redis+sentinel://:pass@h:1/mymaster/2?protocol=resp3",
    ] {
        let cache = Cache::from_url(url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(cache.backend_kind(), "redis");
    }
}

/// Configurations that would read from replicas are refused: locks and
/// compare-and-set read what was just written.
#[cfg(all(feature = "redis-cluster", feature = "redis-sentinel"))]
#[test]
fn replica_reads_are_refused() {
    use stampede::backend::redis::deadpool_redis::{cluster, sentinel};
    let mut config = cluster::Config::from_urls(vec!["redis://h:1".to_owned()]);
    config.read_from_replicas = true;
    let error = Cache::redis_cluster(config).unwrap_err();
    assert!(error.to_string().contains("read_from_replicas"), "{error}");

    let config = sentinel::Config::from_urls(
        vec!["redis://h:26379".to_owned()],
        "mymaster".to_owned(),
        sentinel::SentinelServerType::Replica,
    );
    let error = Cache::redis_sentinel(config).unwrap_err();
    assert!(error.to_string().contains("Replica"), "{error}");
}

// ---------------------------------------------------------------- near cache

#[tokio::test]
async fn a_near_cache_on_the_memory_backend_is_refused_by_name() {
    let refused = Cache::from_url("memory://?near_capacity=1048576").await;
    let error = refused.expect_err("a cache of itself");
    assert!(
        matches!(
            error,
            stampede::Error::NearCacheUnsupported {
                backend: "memory",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("cache of itself"), "{error}");
    // The builder form keeps the cache, without a near cache.
    let cache = Cache::memory().with_near_cache(stampede::NearCache::max_capacity(1024));
    assert!(cache.near_cache().is_none());
    assert!(cache.near_stats().is_none());
}

#[tokio::test]
async fn near_cache_parameters_are_checked() {
    for (url, names) in [
        ("memory://?near_ttl_ms=5", "near_capacity"),
        ("memory://?near_capacity=lots", "near_capacity"),
        (
            "memory://?near_capacity=1024&near_trust_ms=-1",
            "near_trust_ms",
        ),
        ("memory://?near_capacity=0", "max_capacity"),
    ] {
        let error = Cache::from_url(url).await.expect_err(url);
        assert!(error.to_string().contains(names), "{url}: {error}");
    }
    let zero = stampede::NearCache::max_capacity(1024).ttl(std::time::Duration::ZERO);
    let error = Cache::memory()
        .try_with_near_cache(zero)
        .expect_err("zero ttl");
    assert!(
        matches!(error, stampede::Error::InvalidArgument { name: "ttl", .. }),
        "{error}"
    );
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn a_near_cache_on_a_redis_cluster_is_refused_by_name() {
    // Refused before anything is sent: no server needed.
    let error = Cache::from_url("redis+cluster://127.0.0.1:1,127.0.0.1:2?near_capacity=1048576")
        .await
        .expect_err("a cluster");
    assert!(
        matches!(
            error,
            stampede::Error::NearCacheUnsupported {
                backend: "redis",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("hash slots"), "{error}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_near_cache_by_url_on_redis_takes_its_settings() {
    let cache = Cache::from_url(
        "redis://127.0.0.1:1?near_capacity=4096&near_ttl_ms=1500&near_max_unverified_ms=300",
    )
    .await
    .unwrap();
    let near = cache.near_cache().expect("a near cache");
    assert_eq!(near.capacity(), 4096);
    assert_eq!(
        near,
        &stampede::NearCache::max_capacity(4096)
            .ttl(std::time::Duration::from_millis(1500))
            .max_unverified(std::time::Duration::from_millis(300))
    );
}
