//! SVG line charts (loss and accuracy curves), drawn with `plotters` and its SVG backend.
//!
//! Non-finite points (NaN, ±∞) are skipped; empty and constant series get a padded axis
//! instead of a division by zero. No font feature of plotters is enabled: the SVG's text is
//! laid out with plotters' built-in estimate and rendered by the viewer's own fonts, so no
//! font file or system library is needed.

use std::path::Path;

use plotters::prelude::*;

use crate::atomic::{AtomicWriteError, write_atomic};

/// Errors raised while drawing or writing a chart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// Writing the SVG file failed.
    #[error("cannot write line chart: {0}")]
    Write(#[from] AtomicWriteError),
    /// plotters could not draw the chart.
    #[error("cannot draw line chart {title:?}: {reason}")]
    Draw {
        /// The chart's title.
        title: String,
        /// plotters' error.
        reason: String,
    },
}

/// One named line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Name shown in the legend.
    pub name: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// Creates a series from a name and its points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// Size of a chart in pixels.
const SIZE: (u32, u32) = (800, 500);

/// Tableau 10, the matplotlib default cycle.
const PALETTE: [(u8, u8, u8); 10] = [
    (0x1f, 0x77, 0xb4),
    (0xff, 0x7f, 0x0e),
    (0x2c, 0xa0, 0x2c),
    (0xd6, 0x27, 0x28),
    (0x94, 0x67, 0xbd),
    (0x8c, 0x56, 0x4b),
    (0xe3, 0x77, 0xc2),
    (0x7f, 0x7f, 0x7f),
    (0xbc, 0xbd, 0x22),
    (0x17, 0xbe, 0xcf),
];

/// The colour of the `index`-th series: the Tableau 10 palette, then hues spaced by the
/// golden angle.
fn colour(index: usize) -> RGBColor {
    if let Some(&(r, g, b)) = PALETTE.get(index) {
        return RGBColor(r, g, b);
    }
    let hue = ((index - PALETTE.len()) as f64 * 137.507_764 + 15.0) % 360.0;
    let (r, g, b) = HSLColor(hue / 360.0, 0.65, 0.45).rgb();
    RGBColor(r, g, b)
}

/// `lo..hi` covering `values`, padded by 5%, or by 1 (or 10% of the value) when constant.
fn axis_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        (0.1 * lo.abs()).max(1.0)
    };
    lo - pad..hi + pad
}

/// Renders a line chart with a legend, as an SVG document.
pub fn line_chart_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, PlotError> {
    let finite: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            let ok = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
            s.points.iter().copied().filter(ok).collect()
        })
        .collect();
    let draw_error = |e: &dyn std::fmt::Display| PlotError::Draw {
        title: title.to_string(),
        reason: e.to_string(),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&e))?;
        let x = axis_range(finite.iter().flatten().map(|p| p.0));
        let y = axis_range(finite.iter().flatten().map(|p| p.1));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)
            .map_err(|e| draw_error(&e))?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| draw_error(&e))?;
        for (i, (s, points)) in series.iter().zip(&finite).enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(|e| draw_error(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
            // A lone point draws no line: mark it.
            if let [p] = points.as_slice() {
                chart
                    .draw_series(std::iter::once(Circle::new(*p, 3, c.filled())))
                    .map_err(|e| draw_error(&e))?;
            }
        }
        if finite.iter().all(Vec::is_empty) {
            let centre = (SIZE.0 as i32 / 2 - 30, SIZE.1 as i32 / 2);
            root.draw(&Text::new("no data", centre, ("sans-serif", 18)))
                .map_err(|e| draw_error(&e))?;
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| draw_error(&e))?;
        }
        root.present().map_err(|e| draw_error(&e))?;
    }
    Ok(svg)
}

/// Renders a line chart and writes it to `path` atomically.
pub fn write_line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    let svg = line_chart_svg(title, x_label, y_label, series)?;
    write_atomic(path, svg.as_bytes())?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    /// Every data line (a 2-pixel `<polyline>`) drawn in `c`, as its list of points.
    fn polylines(svg: &str, c: RGBColor) -> Vec<Vec<(f64, f64)>> {
        let stroke = format!("stroke=\"{}\" stroke-width=\"2\"", hex(c));
        svg.split('<')
            .filter(|tag| tag.starts_with("polyline") && tag.contains(&stroke))
            .map(|tag| {
                let start = tag.find("points=\"").unwrap() + 8;
                let end = tag[start..].find('"').unwrap() + start;
                tag[start..end]
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    /// Whether the SVG has a `<text>` element reading `text` (plotters puts it on its own line).
    fn has_text(svg: &str, text: &str) -> bool {
        svg.contains(&format!(">\n{text}\n</text>"))
    }

    /// Parses as XML with balanced tags (a minimal check: every `<x` has its `</x>` or `/>`).
    fn assert_balanced(svg: &str) {
        let mut stack = Vec::new();
        for tag in svg.split('<').skip(1) {
            let end = tag.find('>').expect("unterminated tag");
            let body = &tag[..end];
            if let Some(name) = body.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.trim().to_string()), "{svg}");
            } else if !body.ends_with('/') && !body.starts_with('?') {
                stack.push(body.split_whitespace().next().unwrap().to_string());
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
    }

    #[test]
    fn one_polyline_per_series_with_legend_and_labels() {
        let series = vec![
            Series::new("train loss", vec![(1.0, 2.3), (2.0, 1.8), (3.0, 1.5)]),
            Series::new("test loss", vec![(1.0, 2.1), (3.0, 1.6)]),
        ];
        let svg = line_chart_svg("Loss", "epoch", "loss", &series).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_balanced(&svg);
        let train = polylines(&svg, colour(0));
        assert_eq!(train.len(), 1, "{svg}");
        assert_eq!(train[0].len(), 3);
        assert_eq!(polylines(&svg, colour(1))[0].len(), 2);
        for text in ["train loss", "test loss", "epoch", "loss", "Loss"] {
            assert!(has_text(&svg, text), "{text} missing");
        }
        // Inside the canvas; larger y is drawn higher (a smaller pixel row), later x further
        // right.
        let line = &train[0];
        for &(x, y) in line {
            assert!(
                (0.0..800.0).contains(&x) && (0.0..500.0).contains(&y),
                "{x},{y}"
            );
        }
        assert!(line[0].1 < line[2].1 && line[0].0 < line[2].0);
    }

    #[test]
    fn non_finite_points_are_skipped() {
        let points = vec![
            (0.0, 0.1),
            (1.0, f64::NAN),
            (f64::NAN, 0.3),
            (3.0, f64::INFINITY),
            (4.0, 0.5),
        ];
        let svg = line_chart_svg("t", "x", "y", &[Series::new("acc", points)]).unwrap();
        assert_balanced(&svg);
        assert!(!svg.contains("NaN") && !svg.to_lowercase().contains("inf"));
        assert_eq!(polylines(&svg, colour(0))[0].len(), 2);
    }

    #[test]
    fn single_point_constant_and_empty_series() {
        let series = vec![
            Series::new("one", vec![(5.0, 7.0)]),
            Series::new("empty", vec![]),
            Series::new("flat", vec![(5.0, 7.0), (5.0, 7.0)]),
        ];
        let svg = line_chart_svg("t", "x", "y", &series).unwrap();
        assert_balanced(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert!(svg.contains("<circle"), "a lone point is marked");
        assert!(
            polylines(&svg, colour(1)).is_empty(),
            "an empty series draws no line"
        );
        let flat = &polylines(&svg, colour(2))[0];
        assert_eq!(flat.len(), 2);
        // The constant value sits strictly inside the padded range, not on an edge.
        let (x, y) = flat[0];
        assert!(x > 80.0 && x < 780.0 && y > 40.0 && y < 450.0, "{x},{y}");
        assert_eq!(axis_range([7.0, 7.0].into_iter()), 6.0..8.0);
        assert_eq!(axis_range([100.0].into_iter()), 90.0..110.0);
        assert_eq!(axis_range(std::iter::empty()), 0.0..1.0);
    }

    #[test]
    fn no_series_at_all_still_renders() {
        let svg = line_chart_svg("empty", "x", "y", &[]).unwrap();
        assert_balanced(&svg);
        assert!(has_text(&svg, "no data"), "{svg}");
        assert!(!svg.contains("stroke-width=\"2\""), "no data line");
    }

    #[test]
    fn names_are_escaped() {
        let series = vec![Series::new("a<b & \"c\"", vec![(0.0, 1.0), (1.0, 2.0)])];
        let svg = line_chart_svg("x < y", "<x>", "y&", &series).unwrap();
        assert_balanced(&svg);
        assert!(svg.contains("a&lt;b &amp;"), "{svg}");
        assert!(svg.contains("x &lt; y"));
    }

    #[test]
    fn many_series_get_distinct_colours() {
        let mut colours: Vec<String> = (0..40).map(|i| hex(colour(i))).collect();
        assert_eq!(colours[0], "#1F77B4");
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), 40);
    }

    #[test]
    fn write_line_chart_writes_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.svg");
        let series = vec![Series::new("loss", vec![(0.0, 1.0), (1.0, 0.5)])];
        write_line_chart(&path, "Loss", "step", "loss", &series).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            line_chart_svg("Loss", "step", "loss", &series).unwrap()
        );
        let err =
            write_line_chart(&dir.path().join("missing/x.svg"), "", "", "", &series).unwrap_err();
        assert!(err.to_string().contains("x.svg"), "{err}");
    }
}
