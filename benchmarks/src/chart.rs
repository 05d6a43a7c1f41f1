//! SVG charts (plotters): per-query times of ShardFusion against DataFusion, and a scale-out
//! curve.

use std::path::Path;

use plotters::prelude::*;

const SHARDFUSION: RGBColor = RGBColor(31, 119, 180);
const DATAFUSION: RGBColor = RGBColor(255, 127, 14);

/// Grouped bars: for each label, ShardFusion's and DataFusion's time in milliseconds.
pub fn query_times(path: &Path, title: &str, rows: &[(String, f64, f64)]) -> Result<(), String> {
    let max = rows
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    let width = (rows.len() as u32 * 48).max(480) + 120;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..rows.len() as f64, 0f64..max * 1.1)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("median time (ms)")
        .x_labels(rows.len().max(1))
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            rows.get(i).map(|r| r.0.clone()).unwrap_or_default()
        })
        .draw()
        .map_err(draw_error)?;
    let bars = |offset: f64, pick: fn(&(String, f64, f64)) -> f64, color: RGBColor| {
        rows.iter().enumerate().map(move |(i, row)| {
            let x = i as f64 + offset;
            Rectangle::new([(x, 0.0), (x + 0.38, pick(row))], color.filled())
        })
    };
    chart
        .draw_series(bars(0.1, |r| r.1, SHARDFUSION))
        .map_err(draw_error)?
        .label("ShardFusion")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], SHARDFUSION.filled()));
    chart
        .draw_series(bars(0.5, |r| r.2, DATAFUSION))
        .map_err(draw_error)?
        .label("DataFusion (single node)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], DATAFUSION.filled()));
    finish(&mut chart, &root)
}

/// A line of total time against worker count, with the ideal (linear) speed-up for reference.
pub fn scaleout(path: &Path, title: &str, points: &[(usize, f64)]) -> Result<(), String> {
    let max_workers = points.iter().map(|p| p.0).max().unwrap_or(1) as f64;
    let max_time = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (560, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.5f64..max_workers + 0.5, 0f64..max_time * 1.1)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("workers")
        .y_desc("sum of medians (s)")
        .draw()
        .map_err(draw_error)?;
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|(w, t)| (*w as f64, *t)),
            SHARDFUSION.stroke_width(2),
        ))
        .map_err(draw_error)?
        .label("ShardFusion")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], SHARDFUSION));
    chart
        .draw_series(
            points
                .iter()
                .map(|(w, t)| Circle::new((*w as f64, *t), 4, SHARDFUSION.filled())),
        )
        .map_err(draw_error)?;
    if let Some((first_workers, first_time)) = points.first().copied() {
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .map(|(w, _)| (*w as f64, first_time * first_workers as f64 / *w as f64)),
                DATAFUSION.stroke_width(1),
            ))
            .map_err(draw_error)?
            .label("linear speed-up")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], DATAFUSION));
    }
    finish(&mut chart, &root)
}

/// Draws the legend and writes the file.
fn finish<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
) -> Result<(), String>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)
}

fn draw_error<E: std::fmt::Display>(e: E) -> String {
    format!("cannot draw the chart: {e}")
}
