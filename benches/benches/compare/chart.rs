//! The chart in BENCHMARKS.md: for Redis and memcached, the share of a
//! stampede's callers served by each latency, ours and aiocache's, in one
//! process and across processes. SVG, drawn by plotters (no system fonts).

use std::path::Path;

use plotters::prelude::*;

use crate::report::Results;
use crate::report_seed::aiocache_stampede;
use crate::stampedes::Figure;

/// Where the chart goes, relative to the workspace (and BENCHMARKS.md).
pub const FILE: &str = "benches/stampede-latency.svg";

/// A line of the chart: its name, colour and points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// (fraction served, latency ms) points of a cumulative distribution.
fn cdf(figure: &Figure) -> Vec<(f64, f64)> {
    let mut sorted = figure.outcome.latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, latency)| (latency.max(1.0), (i + 1) as f64 / n))
        .collect()
}

pub fn draw(results: &Results) -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(FILE);
    let root = SVGBackend::new(&path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let procs = results.knobs.procs;
    for (panel, backend) in panels.iter().zip(["redis", "memcached"]) {
        let mut series: Vec<Series> = Vec::new();
        for (b, p, figure) in &results.stampedes {
            if *b == backend {
                let color = if *p > 1 {
                    RGBColor(30, 120, 60)
                } else {
                    RGBColor(20, 80, 200)
                };
                series.push((format!("ours, {p} process(es)"), color, cdf(figure)));
            }
        }
        for (p, color) in [(1, RGBColor(220, 120, 20)), (procs, RGBColor(200, 30, 30))] {
            if let Some(figure) = aiocache_stampede(results, backend, p) {
                series.push((format!("aiocache, {p} process(es)"), color, cdf(&figure)));
            }
        }
        let max = series
            .iter()
            .flat_map(|(_, _, points)| points.iter().map(|(x, _)| *x))
            .fold(10.0, f64::max)
            * 1.3;
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{backend}: {} callers, {} ms fill",
                    results.knobs.callers,
                    results.knobs.fill.as_millis()
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((1f64..max).log_scale(), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc("latency from release to return (ms, log scale)")
            .y_desc("share of callers served")
            .draw()?;
        for (name, color, points) in series {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
