//! What the crate tells the outside world: a `tracing` span per public
//! operation, and counters and histograms through the `metrics` facade
//! (with the `metrics` feature; without it every call here is empty).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `stampede_hits_total` | counter | `backend`, `op` |
//! | `stampede_misses_total` | counter | `backend`, `op` |
//! | `stampede_fills_total` | counter | `backend`, `outcome` (`stored`, `not_stored`) |
//! | `stampede_fill_errors_total` | counter | `backend` |
//! | `stampede_fill_duration_seconds` | histogram | `backend` |
//! | `stampede_lock_wait_seconds` | histogram | `backend`, `outcome` (`acquired`, `timeout`, `released`) |
//! | `stampede_leases_lost_total` | counter | `backend` |
//! | `stampede_cas_conflicts_total` | counter | `backend`, `op` |
//! | `stampede_stale_served_total` | counter | `backend` |

/// A debug-level span for one public operation: `op`, `backend`, `key`,
/// and an `outcome` recorded by [`outcome`] when it ends.
macro_rules! op_span {
    ($op:literal, $backend:expr, $key:expr) => {
        tracing::debug_span!(
            "stampede",
            op = $op,
            backend = $backend,
            key = $key,
            outcome = tracing::field::Empty
        )
    };
}
pub(crate) use op_span;

/// Records how an operation ended on its span: `ok` on success, `error`
/// with the error otherwise.
pub(crate) fn outcome<T, E: std::fmt::Display>(
    span: &tracing::Span,
    result: &Result<T, E>,
    ok: &'static str,
) {
    match result {
        Ok(_) => span.record("outcome", ok),
        Err(error) => span.record(
            "outcome",
            tracing::field::display(format_args!("error: {error}")),
        ),
    };
}

/// Runs `work` inside `span` and records its outcome there: `ok`, or the
/// error.
pub(crate) async fn traced<T, E: std::fmt::Display>(
    span: tracing::Span,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let result = tracing::Instrument::instrument(work, span.clone()).await;
    outcome(&span, &result, "ok");
    result
}

#[cfg(feature = "metrics")]
mod enabled {
    use std::time::Duration;

    pub(crate) fn hits(backend: &'static str, op: &'static str, n: u64) {
        metrics::counter!("stampede_hits_total", "backend" => backend, "op" => op).increment(n);
    }

    pub(crate) fn misses(backend: &'static str, op: &'static str, n: u64) {
        metrics::counter!("stampede_misses_total", "backend" => backend, "op" => op).increment(n);
    }

    pub(crate) fn fill(backend: &'static str, stored: bool, took: Duration) {
        let outcome = if stored { "stored" } else { "not_stored" };
        metrics::counter!("stampede_fills_total", "backend" => backend, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("stampede_fill_duration_seconds", "backend" => backend)
            .record(took.as_secs_f64());
    }

    pub(crate) fn fill_error(backend: &'static str, took: Duration) {
        metrics::counter!("stampede_fill_errors_total", "backend" => backend).increment(1);
        metrics::histogram!("stampede_fill_duration_seconds", "backend" => backend)
            .record(took.as_secs_f64());
    }

    pub(crate) fn lock_wait(backend: &'static str, outcome: &'static str, waited: Duration) {
        metrics::histogram!("stampede_lock_wait_seconds", "backend" => backend, "outcome" => outcome)
            .record(waited.as_secs_f64());
    }

    pub(crate) fn lease_lost(backend: &'static str) {
        metrics::counter!("stampede_leases_lost_total", "backend" => backend).increment(1);
    }

    pub(crate) fn cas_conflict(backend: &'static str, op: &'static str) {
        metrics::counter!("stampede_cas_conflicts_total", "backend" => backend, "op" => op)
            .increment(1);
    }

    pub(crate) fn stale_served(backend: &'static str) {
        metrics::counter!("stampede_stale_served_total", "backend" => backend).increment(1);
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(clippy::missing_const_for_fn)]
mod enabled {
    use std::time::Duration;

    pub(crate) fn hits(_: &'static str, _: &'static str, _: u64) {}
    pub(crate) fn misses(_: &'static str, _: &'static str, _: u64) {}
    pub(crate) fn fill(_: &'static str, _: bool, _: Duration) {}
    pub(crate) fn fill_error(_: &'static str, _: Duration) {}
    pub(crate) fn lock_wait(_: &'static str, _: &'static str, _: Duration) {}
    pub(crate) fn lease_lost(_: &'static str) {}
    pub(crate) fn cas_conflict(_: &'static str, _: &'static str) {}
    pub(crate) fn stale_served(_: &'static str) {}
}

pub(crate) use enabled::*;
