//! Memory-specific behaviour: what the shared suite (`tests/behaviour.rs`)
//! cannot say about every backend.

use stampede::{Cache, Error};

/// Opens `url`, which must be refused as bad configuration naming `param`.
async fn refused(url: &str, param: &str) -> String {
    let err = Cache::from_url(url)
        .await
        .expect_err("a cache that can store nothing was accepted");
    assert!(err.is_invalid_input(), "{err}");
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("`{param}`")), "{message}");
    message
}

#[tokio::test]
async fn a_capacity_that_holds_nothing_is_refused() {
    let message = refused("memory://?max_capacity=0", "max_capacity").await;
    assert!(message.contains("memory://?max_capacity=0"), "{message}");
    // Under the smallest entry's weight (a 1-byte key, an empty value and
    // the 64 bytes charged per entry), nothing fits either.
    refused("memory://?max_capacity=64&namespace=app", "max_capacity").await;

    // The smallest capacity accepted stores that smallest entry.
    let cache = Cache::from_url("memory://?max_capacity=65").await.unwrap();
    cache.set("k", b"", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b""[..]));
}
