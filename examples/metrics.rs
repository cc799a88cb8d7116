//! Metrics in Prometheus text after a short stampede.
//!
//! ```text
//! cargo run --example metrics --features metrics
//! ```
//!
//! stampede records through the `metrics` facade; the application picks the
//! exporter. Here it is `metrics-exporter-prometheus`, rendering the text a
//! `/metrics` endpoint would serve.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use stampede::{Cache, Fill};

#[tokio::main]
async fn main() -> stampede::Result<()> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("no other metrics recorder is installed");
    let cache = Cache::memory().with_namespace("demo");

    // 200 requests for one cold report: one of them fills it.
    let fill = Fill::ttl(Duration::from_secs(60)).lease(Duration::from_secs(5));
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let (cache, fill) = (cache.clone(), fill.clone());
            tokio::spawn(async move {
                cache
                    .get_or_fill("report:q3", fill, || async {
                        tokio::time::sleep(Duration::from_millis(50)).await; // the slow query
                        Ok::<_, stampede::Error>(vec![42u64; 16])
                    })
                    .await
            })
        })
        .collect();
    for request in requests {
        request.await.expect("request task")?;
    }
    // A batch: two hits, one miss.
    cache.set("a", b"1", None).await?;
    cache.set("b", b"2", None).await?;
    cache.get_many(&["a", "b", "c"]).await?;

    print!("{}", prometheus.render());
    Ok(())
}
