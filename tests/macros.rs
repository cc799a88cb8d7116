//! `#[cached]` and `#[synchronized]` in the shapes users write them: free
//! functions and methods, references and `impl Trait` arguments, typed
//! handles, default keys, the caller's own error type, lost leases and
//! wait timeouts. The concurrency cases run on every backend in the shared
//! suite (`tests/suite/macros.rs`).
#![cfg(feature = "macros")]

use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use stampede::{cached, synchronized, Cache, Error};

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// The caller's own error type.
#[derive(Debug)]
enum AppError {
    NotFound(u64),
    Cache(Error),
}

impl From<Error> for AppError {
    fn from(error: Error) -> Self {
        AppError::Cache(error)
    }
}

/// Docs and attributes on the function are kept.
#[cached(cache = &*CACHE, key = "user:{id}", ttl = "5m", lease = "10s")]
#[allow(clippy::unused_async)]
async fn load_user(id: u64) -> Result<String, AppError> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    if id == 0 {
        return Err(AppError::NotFound(id));
    }
    Ok(format!("user {id}"))
}

#[tokio::test]
async fn a_free_function_on_a_static_cache_fills_once_and_keeps_its_error_type() {
    let before = CALLS.load(Ordering::SeqCst);
    assert_eq!(load_user(1).await.unwrap(), "user 1");
    assert_eq!(load_user(1).await.unwrap(), "user 1");
    assert_eq!(CALLS.load(Ordering::SeqCst) - before, 1);
    assert!(matches!(load_user(0).await, Err(AppError::NotFound(0))));
    assert_eq!(
        CACHE.get_value::<String>("user:0").await.unwrap(),
        None,
        "errors are not cached"
    );
}

#[cached(cache = cache, key = "{name}")]
async fn named(cache: &Cache, name: &str) -> Result<u32, AppError> {
    Ok(u32::try_from(name.len()).unwrap_or(u32::MAX))
}

#[tokio::test]
async fn the_caches_own_errors_arrive_as_the_callers_type() {
    let cache = Cache::memory();
    assert_eq!(named(&cache, "abc").await.unwrap(), 3);
    match named(&cache, "").await {
        Err(AppError::Cache(error)) => assert!(error.is_invalid_input(), "{error}"),
        other => panic!("an empty key must be the cache's error: {other:?}"),
    }
}

struct Reports {
    cache: Cache,
    built: AtomicUsize,
}

impl Reports {
    #[cached(cache = &self.cache, key = "report:{quarter}:{region}", ttl = "1h", early_refresh = 1.0)]
    async fn report(&self, quarter: u8, region: &str) -> Result<Vec<u64>, Error> {
        self.built.fetch_add(1, Ordering::SeqCst);
        Ok(vec![u64::from(quarter); region.len()])
    }

    /// No key: the module path, the name and every argument.
    #[cached(cache = &self.cache, ttl = Duration::from_secs(60))]
    async fn total(&self, label: impl Display + Send, scale: u32) -> Result<String, Error> {
        Ok(format!("{label} x{scale}"))
    }
}

#[tokio::test]
async fn methods_take_references_impl_trait_and_a_default_key() {
    let reports = Reports {
        cache: Cache::memory(),
        built: AtomicUsize::new(0),
    };
    assert_eq!(reports.report(3, "eu").await.unwrap(), [3, 3]);
    assert_eq!(reports.report(3, "eu").await.unwrap(), [3, 3]);
    assert_eq!(reports.report(4, "eu").await.unwrap(), [4, 4]);
    assert_eq!(reports.built.load(Ordering::SeqCst), 2);
    let stored: Option<Vec<u64>> = reports.cache.get_value("report:3:eu").await.unwrap();
    assert_eq!(stored, Some(vec![3, 3]));

    assert_eq!(reports.total("sum", 2).await.unwrap(), "sum x2");
    let default_key = format!("{}::total:sum:2", module_path!());
    let stored: Option<String> = reports.cache.get_value(&default_key).await.unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("sum x2"),
        "default key {default_key}"
    );
}

#[cfg(feature = "postcard")]
#[tokio::test]
async fn a_typed_handle_stores_with_its_codec() {
    use stampede::typed::{Postcard, Typed};

    #[cached(cache = typed, key = "n:{n}")]
    async fn square(typed: &Typed<Postcard>, n: u32) -> Result<u32, Error> {
        Ok(n * n)
    }

    let typed = Cache::memory().with_codec(Postcard);
    assert_eq!(square(&typed, 12).await.unwrap(), 144);
    assert_eq!(typed.get_value::<u32>("n:12").await.unwrap(), Some(144));
    let as_json = typed.cache().get_value::<u32>("n:12").await;
    assert!(
        as_json.is_err(),
        "stored as postcard, not JSON: {as_json:?}"
    );
}

#[synchronized(cache = cache, name = "slow:{id}", lease = "200ms", auto_renew = false)]
async fn outlives_its_lease(cache: &Cache, id: u32) -> Result<u32, Error> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(id)
}

#[synchronized(cache = cache, name = "held:{id}", wait = "50ms")]
async fn waits_briefly(cache: &Cache, id: u32) -> Result<u32, Error> {
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn a_lost_lease_cancels_the_body_and_a_wait_can_time_out() {
    let cache = Cache::memory();
    let lost = outlives_its_lease(&cache, 1).await.unwrap_err();
    assert!(lost.is_lost(), "{lost:?}");

    let holder = stampede::RedLock::new(&cache, "held:2", Duration::from_secs(60));
    let _guard = holder.lock().await.unwrap();
    let waited = waits_briefly(&cache, 2).await.unwrap_err();
    assert!(waited.is_timeout(), "{waited:?}");
    assert_eq!(
        waits_briefly(&cache, 3).await.unwrap(),
        3,
        "another name is free"
    );
}
