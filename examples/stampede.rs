//! 1,000 concurrent requests for one slow value: how many times does the
//! expensive fill run, and how long does everyone wait?
//!
//! ```text
//! cargo run --release --example stampede                       # embedded memory backend
//! cargo run --release --example stampede --features redis -- redis://127.0.0.1:6379
//! cargo run --release --example stampede --features memcached -- memcached://127.0.0.1:11211 --requests 5000 --fill-ms 100
//! ```
//!
//! Without the guard every request would run the fill; with it, one does and
//! the rest are woken the moment it is stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede::{Cache, Fill};

struct Options {
    url: String,
    requests: usize,
    fill: Duration,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        url: "memory://".into(),
        requests: 1_000,
        fill: Duration::from_millis(50),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--requests" => {
                options.requests = value("--requests")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?
            }
            "--fill-ms" => {
                let ms: u64 = value("--fill-ms")?
                    .parse()
                    .map_err(|e| format!("--fill-ms: {e}"))?;
                options.fill = Duration::from_millis(ms);
            }
            "-h" | "--help" => {
                return Err("usage: stampede [URL] [--requests N] [--fill-ms MS]".into())
            }
            url => options.url = url.into(),
        }
    }
    Ok(options)
}

/// The expensive computation everyone wants.
async fn build_report(fill: Duration) -> Result<String, stampede::Error> {
    tokio::time::sleep(fill).await;
    Ok("quarterly report: 42".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    let cache = Cache::from_url(&options.url)
        .await?
        .with_namespace(&format!("example-{}", std::process::id()));
    let fills = Arc::new(AtomicUsize::new(0));
    let fill = Fill::ttl(Duration::from_secs(60)).lease(Duration::from_secs(10));

    let started = Instant::now();
    let requests: Vec<_> = (0..options.requests)
        .map(|_| {
            let (cache, fills, fill, fill_time) =
                (cache.clone(), fills.clone(), fill.clone(), options.fill);
            tokio::spawn(async move {
                let asked = Instant::now();
                let report: String = cache
                    .get_or_fill("report:q3", fill, || {
                        fills.fetch_add(1, Ordering::SeqCst);
                        build_report(fill_time)
                    })
                    .await?;
                Ok::<_, stampede::Error>((report, asked.elapsed()))
            })
        })
        .collect();

    let mut latencies = Vec::with_capacity(options.requests);
    for request in requests {
        let (report, latency) = request.await??;
        assert_eq!(report, "quarterly report: 42");
        latencies.push(latency);
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);

    println!(
        "backend          {} ({})",
        cache.backend_kind(),
        options.url
    );
    println!("requests         {}", options.requests);
    println!("fill time        {}", ms(options.fill));
    println!("fills run        {}", fills.load(Ordering::SeqCst));
    println!("latency p50      {}", ms(at(0.50)));
    println!("latency p99      {}", ms(at(0.99)));
    println!("latency max      {}", ms(at(1.0)));
    println!(
        "p99 over fill    {}",
        ms(at(0.99).saturating_sub(options.fill))
    );
    println!("wall time        {}", ms(wall));
    cache.delete("report:q3").await?;
    Ok(())
}
