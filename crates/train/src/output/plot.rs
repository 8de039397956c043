//! Dependency-free SVG line charts (loss and accuracy curves).
//!
//! Non-finite points (NaN, ±∞) are skipped; empty and constant series are
//! drawn without dividing by zero.
//!
//! Written here rather than with `plotters`: in plotters 0.3.7 font support comes with its
//! `ttf` feature (`font-kit`: fontconfig and FreeType on Linux) or a font registered at run
//! time, and the charts' axis labels and legend need text; this file writes the SVG elements
//! directly and leaves the text to the viewer. (A port was not built and measured.)

use std::fmt::Write as _;
use std::path::Path;

use crate::atomic::{AtomicWriteError, write_atomic};

/// Errors raised while writing a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Writing the SVG file failed.
    #[error("cannot write line chart: {0}")]
    Write(#[from] AtomicWriteError),
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

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 500.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 190.0;
const MARGIN_TOP: f64 = 50.0;
const MARGIN_BOTTOM: f64 = 60.0;
const PLOT_W: f64 = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
const PLOT_H: f64 = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
const TARGET_TICKS: usize = 6;

/// Tableau 10, the matplotlib default cycle.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The colour of the `index`-th series: the Tableau 10 palette, then hues
/// spaced by the golden angle.
fn colour(index: usize) -> String {
    if let Some(c) = PALETTE.get(index) {
        return (*c).to_string();
    }
    let hue = ((index - PALETTE.len()) as f64 * 137.507_764 + 15.0) % 360.0;
    format!("hsl({hue:.1},65%,45%)")
}

fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An axis range with "nice" tick positions.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
    ticks: Vec<f64>,
}

/// Rounds `x > 0` to the nearest of 1, 2, 5 or 10 times a power of ten.
fn nice_number(x: f64) -> f64 {
    let base = 10f64.powf(x.log10().floor());
    let f = x / base;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * base
}

/// Builds an axis covering `[min, max]` (finite values) with nice ticks.
fn nice_axis(min: f64, max: f64) -> Axis {
    let (mut min, mut max) = if min.is_finite() && max.is_finite() && min <= max {
        (min, max)
    } else {
        (0.0, 1.0)
    };
    if max - min <= f64::EPSILON * max.abs().max(min.abs()).max(f64::MIN_POSITIVE) {
        // Constant data: pad around the value.
        let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        min -= pad;
        max += pad;
    }
    let step = nice_number((max - min) / (TARGET_TICKS - 1) as f64);
    if !step.is_finite() || step <= 0.0 {
        return Axis {
            lo: min,
            hi: max,
            step: max - min,
            ticks: vec![min, max],
        };
    }
    let lo = (min / step).floor() * step;
    let hi = (max / step).ceil() * step;
    let n = ((hi - lo) / step).round() as usize;
    let ticks = (0..=n.min(100)).map(|i| lo + i as f64 * step).collect();
    Axis {
        lo,
        hi,
        step,
        ticks,
    }
}

/// Formats a tick value with just enough decimals for the tick step.
fn format_tick(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    let magnitude = v.abs().max(step.abs());
    if magnitude >= 1e6 || (step.abs() < 1e-4 && step != 0.0) {
        let s = format!("{v:.2e}");
        // "1.50e6" -> keep as is; strip trailing zeros of the mantissa.
        return match s.split_once('e') {
            Some((m, e)) => {
                let m = if m.contains('.') {
                    m.trim_end_matches('0').trim_end_matches('.')
                } else {
                    m
                };
                format!("{m}e{e}")
            }
            None => s,
        };
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// Renders a line chart of `series` as a standalone SVG document.
pub fn line_chart_svg(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let mut x_min = f64::INFINITY;
    let mut x_max = f64::NEG_INFINITY;
    let mut y_min = f64::INFINITY;
    let mut y_max = f64::NEG_INFINITY;
    for &(x, y) in series.iter().flat_map(|s| s.points.iter().filter(finite)) {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    let has_data = x_min.is_finite();
    let x_axis = nice_axis(x_min, x_max);
    let y_axis = nice_axis(y_min, y_max);
    let sx = |x: f64| MARGIN_LEFT + (x - x_axis.lo) / (x_axis.hi - x_axis.lo) * PLOT_W;
    let sy = |y: f64| MARGIN_TOP + PLOT_H - (y - y_axis.lo) / (y_axis.hi - y_axis.lo) * PLOT_H;

    let mut svg = String::with_capacity(4096);
    // `write!` into a String cannot fail.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        MARGIN_LEFT + PLOT_W / 2.0,
        escape_xml(title)
    );

    // Grid lines and tick labels.
    let _ = writeln!(
        svg,
        r##"<g class="grid" stroke="#e0e0e0" stroke-width="1">"##
    );
    for &t in &x_axis.ticks {
        let x = sx(t);
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.2}" y1="{MARGIN_TOP}" x2="{x:.2}" y2="{}"/>"#,
            MARGIN_TOP + PLOT_H
        );
    }
    for &t in &y_axis.ticks {
        let y = sy(t);
        let _ = writeln!(
            svg,
            r#"<line x1="{MARGIN_LEFT}" y1="{y:.2}" x2="{}" y2="{y:.2}"/>"#,
            MARGIN_LEFT + PLOT_W
        );
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, r#"<g class="ticks" fill="black">"#);
    for &t in &x_axis.ticks {
        let _ = writeln!(
            svg,
            r#"<text x="{:.2}" y="{}" text-anchor="middle">{}</text>"#,
            sx(t),
            MARGIN_TOP + PLOT_H + 18.0,
            escape_xml(&format_tick(t, x_axis.step))
        );
    }
    for &t in &y_axis.ticks {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.2}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
            MARGIN_LEFT - 8.0,
            sy(t),
            escape_xml(&format_tick(t, y_axis.step))
        );
    }
    let _ = writeln!(svg, "</g>");

    // Axes.
    let _ = writeln!(
        svg,
        r#"<path class="axes" d="M{MARGIN_LEFT},{MARGIN_TOP} V{} H{}" fill="none" stroke="black" stroke-width="1.5"/>"#,
        MARGIN_TOP + PLOT_H,
        MARGIN_LEFT + PLOT_W
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT + PLOT_W / 2.0,
        HEIGHT - 15.0,
        escape_xml(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{y}" text-anchor="middle" transform="rotate(-90 20 {y})">{}</text>"#,
        escape_xml(y_label),
        y = MARGIN_TOP + PLOT_H / 2.0
    );
    if !has_data {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888888">no data</text>"##,
            MARGIN_LEFT + PLOT_W / 2.0,
            MARGIN_TOP + PLOT_H / 2.0
        );
    }

    // Data.
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(finite)
            .map(|&(x, y)| (sx(x), sy(y)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let mut coords = String::with_capacity(pts.len() * 16);
        for (j, (x, y)) in pts.iter().enumerate() {
            if j > 0 {
                coords.push(' ');
            }
            let _ = write!(coords, "{x:.2},{y:.2}");
        }
        let _ = writeln!(
            svg,
            r#"<polyline class="series" data-name="{}" points="{coords}" fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round"/>"#,
            escape_xml(&s.name)
        );
        if pts.len() == 1 {
            // A single point has no line to draw: mark it.
            let (x, y) = pts[0];
            let _ = writeln!(svg, r#"<circle cx="{x:.2}" cy="{y:.2}" r="3" fill="{c}"/>"#);
        }
    }

    // Legend.
    let legend_x = MARGIN_LEFT + PLOT_W + 20.0;
    let _ = writeln!(svg, r#"<g class="legend">"#);
    for (i, s) in series.iter().enumerate() {
        let y = MARGIN_TOP + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3"/>"#,
            legend_x + 24.0,
            colour(i)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{y}" dominant-baseline="middle">{}</text>"#,
            legend_x + 30.0,
            escape_xml(&s.name)
        );
    }
    let _ = writeln!(svg, "</g>");
    svg.push_str("</svg>\n");
    svg
}

/// Renders a line chart and writes it to `path` atomically.
pub fn write_line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    let svg = line_chart_svg(title, x_label, y_label, series);
    write_atomic(path, svg.as_bytes())?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Checks that every tag is closed in order; returns the tag names seen.
    fn check_balanced(svg: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            assert!(!text.contains('>'), "stray '>' in text {text:?}");
            let end = rest[start..].find('>').expect("unterminated tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "nested '<' in tag {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().expect("closing tag without opening tag");
                assert_eq!(open, name.trim());
            } else {
                let name: String = tag
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '/')
                    .collect();
                seen.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[end + 1..];
        }
        assert!(rest.trim().is_empty());
        assert!(stack.is_empty(), "unclosed tags {stack:?}");
        seen
    }

    fn polylines(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
        svg.lines()
            .filter(|l| l.starts_with("<polyline"))
            .map(|l| {
                let attr = |name: &str| {
                    let key = format!(" {name}=\"");
                    let start = l.find(&key).unwrap() + key.len();
                    let end = l[start..].find('"').unwrap() + start;
                    l[start..end].to_string()
                };
                let pts = attr("points")
                    .split(' ')
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect();
                (attr("data-name"), pts)
            })
            .collect()
    }

    #[test]
    fn chart_is_balanced_and_has_one_polyline_per_series() {
        let series = vec![
            Series::new("train loss", vec![(1.0, 2.3), (2.0, 1.8), (3.0, 1.5)]),
            Series::new("test loss", vec![(1.0, 2.1), (3.0, 1.6)]),
        ];
        let svg = line_chart_svg("Loss", "epoch", "loss", &series);
        assert!(svg.starts_with("<svg"));
        let tags = check_balanced(&svg);
        assert_eq!(tags.iter().filter(|t| *t == "polyline").count(), 2);
        let lines = polylines(&svg);
        assert_eq!(lines[0].0, "train loss");
        assert_eq!(lines[0].1.len(), 3);
        assert_eq!(lines[1].0, "test loss");
        assert_eq!(lines[1].1.len(), 2);
        // Distinct colours.
        assert!(svg.contains(PALETTE[0]) && svg.contains(PALETTE[1]));
        // Legend and labels.
        assert!(svg.contains(">train loss</text>"));
        assert!(svg.contains(">epoch</text>"));
        assert!(svg.contains(">Loss</text>"));
        // Points map inside the plot area; larger y is drawn higher.
        for (_, pts) in &lines {
            for &(x, y) in pts {
                assert!((MARGIN_LEFT..=MARGIN_LEFT + PLOT_W).contains(&x), "{x}");
                assert!((MARGIN_TOP..=MARGIN_TOP + PLOT_H).contains(&y), "{y}");
            }
        }
        assert!(lines[0].1[0].1 < lines[0].1[2].1);
        assert!(lines[0].1[0].0 < lines[0].1[2].0);
    }

    #[test]
    fn nan_points_are_skipped() {
        let series = vec![Series::new(
            "acc",
            vec![
                (0.0, 0.1),
                (1.0, f64::NAN),
                (f64::NAN, 0.3),
                (3.0, f64::INFINITY),
                (4.0, 0.5),
            ],
        )];
        let svg = line_chart_svg("t", "x", "y", &series);
        check_balanced(&svg);
        assert!(!svg.contains("NaN"));
        assert!(!svg.to_lowercase().contains("inf"));
        let lines = polylines(&svg);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].1.len(), 2);
    }

    #[test]
    fn single_point_constant_and_empty_series() {
        let series = vec![
            Series::new("one", vec![(5.0, 7.0)]),
            Series::new("empty", vec![]),
            Series::new("flat", vec![(5.0, 7.0), (5.0, 7.0)]),
        ];
        let svg = line_chart_svg("t", "x", "y", &series);
        check_balanced(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let lines = polylines(&svg);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].1.len(), 1);
        assert_eq!(lines[1].1.len(), 2);
        assert!(svg.contains("<circle"));
        // The empty series still appears in the legend.
        assert!(svg.contains(">empty</text>"));
        // The constant value sits strictly inside the padded range.
        let (x, y) = lines[0].1[0];
        assert!(x > MARGIN_LEFT && x < MARGIN_LEFT + PLOT_W);
        assert!(y > MARGIN_TOP && y < MARGIN_TOP + PLOT_H);
    }

    #[test]
    fn no_series_at_all_still_renders() {
        let svg = line_chart_svg("empty", "x", "y", &[]);
        check_balanced(&svg);
        assert!(svg.contains("no data"));
        assert!(!svg.contains("<polyline"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn names_are_escaped() {
        let series = vec![Series::new("a<b & \"c\"", vec![(0.0, 1.0), (1.0, 2.0)])];
        let svg = line_chart_svg("x < y", "<x>", "y&", &series);
        check_balanced(&svg);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(svg.contains("x &lt; y"));
    }

    #[test]
    fn many_series_get_distinct_colours() {
        let colours: Vec<String> = (0..40).map(colour).collect();
        let mut unique = colours.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), colours.len());
    }

    #[test]
    fn ticks_are_nice_and_readable() {
        let a = nice_axis(0.0, 0.93);
        assert_eq!(a.step, 0.2);
        assert_eq!(a.lo, 0.0);
        assert!((a.hi - 1.0).abs() < 1e-12);
        let labels: Vec<String> = a.ticks.iter().map(|&t| format_tick(t, a.step)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);

        let a = nice_axis(1.0, 12_000.0);
        assert_eq!(a.step, 2000.0);
        let labels: Vec<String> = a.ticks.iter().map(|&t| format_tick(t, a.step)).collect();
        assert_eq!(labels[..3], ["0", "2000", "4000"]);

        let a = nice_axis(-0.3, 0.3);
        let labels: Vec<String> = a.ticks.iter().map(|&t| format_tick(t, a.step)).collect();
        assert!(labels.contains(&"0.0".to_string()), "{labels:?}");
        assert!(!labels.iter().any(|l| l == "-0.0"), "{labels:?}");

        assert_eq!(format_tick(3.0e7, 1.0e7), "3e7");
        assert_eq!(format_tick(2.5e-5, 5e-6), "2.5e-5");
    }

    #[test]
    fn constant_axis_is_padded() {
        let a = nice_axis(0.0, 0.0);
        assert!(a.lo < 0.0 && a.hi > 0.0);
        let a = nice_axis(100.0, 100.0);
        assert!(a.lo < 100.0 && a.hi > 100.0 && a.hi - a.lo <= 40.0);
    }

    #[test]
    fn write_line_chart_writes_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.svg");
        let series = vec![Series::new("loss", vec![(0.0, 1.0), (1.0, 0.5)])];
        write_line_chart(&path, "Loss", "step", "loss", &series).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, line_chart_svg("Loss", "step", "loss", &series));
        let err =
            write_line_chart(&dir.path().join("missing/x.svg"), "", "", "", &series).unwrap_err();
        assert!(err.to_string().contains("x.svg"), "{err}");
    }
}
