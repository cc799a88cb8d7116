//! Every public operation runs in a debug-level `tracing` span named
//! `stampede`, with its `op`, `backend`, `key` and `outcome`. Checked with
//! a small subscriber that records the spans it is shown.

use crate::common::process;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stampede::{Cache, Error, Fill, RedLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One span's name and fields, as text.
type Fields = HashMap<String, String>;

/// Records every span's fields, in the order the spans were made.
#[derive(Clone, Default)]
struct Spans {
    next: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<(String, Fields)>>>,
}

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Spans {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::DEBUG
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::new();
        span.record(&mut Collect(&mut fields));
        let mut seen = self.seen.lock().unwrap();
        seen.push((span.metadata().name().to_owned(), fields));
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        assert_eq!(id as usize, seen.len() - 1);
        Id::from_u64(id + 1)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut seen = self.seen.lock().unwrap();
        let (_, fields) = &mut seen[span.into_u64() as usize - 1];
        values.record(&mut Collect(fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Spans {
    /// The fields of every `stampede` span for `op`.
    fn of(&self, op: &str) -> Vec<Fields> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, fields)| {
                name == "stampede" && fields.get("op").map(String::as_str) == Some(op)
            })
            .map(|(_, fields)| fields.clone())
            .collect()
    }
}

/// Runs [`spans_child`] alone in a child process. `tracing` caches, per
/// call site and for the whole process, whether any subscriber listens; a
/// test on another thread of this binary that reaches the same call site
/// while this test's subscriber is being registered can leave it cached as
/// unheard, and the span is then never recorded here.
#[test]
fn public_operations_run_in_spans_with_their_outcome() {
    let child = process::spawn("spans_child", &[]);
    process::expect_success(child, "the spans test in its own process");
}

/// The child of [`public_operations_run_in_spans_with_their_outcome`].
#[test]
#[ignore = "run by public_operations_run_in_spans_with_their_outcome"]
fn spans_child() {
    assert!(process::is_child(), "only runs as a child process");
    let spans = Spans::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(spans.clone(), || {
        runtime.block_on(async {
            let cache = Cache::memory();
            cache.set("k", b"v", None).await.unwrap();
            assert!(cache.get("").await.is_err());
            let _: u32 = cache
                .get_or_fill("f", Fill::ttl(Duration::from_secs(60)), || async {
                    Ok::<_, Error>(1)
                })
                .await
                .unwrap();
            let _ = cache.get_many(&["k", "x"]).await.unwrap();
            let lock = RedLock::new(&cache, "l", Duration::from_secs(10));
            lock.lock().await.unwrap().release().await.unwrap();
        });
    });
    let set = spans.of("set");
    assert_eq!(set.len(), 1, "{set:?}");
    assert_eq!(set[0]["backend"], "memory");
    assert_eq!(set[0]["key"], "k");
    assert_eq!(set[0]["outcome"], "ok");
    let get = spans.of("get");
    assert!(
        get[0]["outcome"].starts_with("error: invalid key"),
        "{get:?}"
    );
    assert_eq!(spans.of("get_or_fill")[0]["outcome"], "ok");
    assert_eq!(
        spans.of("get_many")[0]["key"],
        "2",
        "a batch names its size"
    );
    assert_eq!(spans.of("lock")[0]["key"], "l");
}
