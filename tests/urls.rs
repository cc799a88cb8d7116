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
    for reserved in RESERVED.chars() {
        let url = format!("{scheme}://user:s3cr{reserved}Xq9@{NOBODY}?timeout_ms=200");
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
