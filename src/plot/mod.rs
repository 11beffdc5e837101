//! The project's small plotting library: line plots, heatmaps and bar plots.
//!
//! Every function takes a path *stem* (`out`, without extension) and writes
//! exactly two files, `out.svg` and `out.png` (900×600 px), or neither.
//!
//! A figure is drawn once, with plotters' own parts (`configure_mesh`,
//! `LineSeries`, `DerivedColorMap`) on its SVG backend, on axes of our own
//! ticks and labels (`axes::Axis`); resvg rasterizes that SVG into the PNG,
//! so both show the same picture, with kerned text (plotters' bitmap text
//! opened gaps inside words: "To ken"). Text is DejaVu Sans, embedded from
//! `assets/DejaVuSans.ttf`, registered as "sans-serif" for plotters' text
//! layout and in resvg's font database.
//!
//! Data are taken as they come: non-finite values (and values ≤ 0 on a log
//! axis) are skipped, with a note on the picture saying how many; a plot with
//! nothing left to draw is still written, as an empty chart with a note.
//! Only inconsistent inputs (mismatched lengths) are errors.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use plotters::coord::ranged1d::{
    KeyPointHint, LightPoints, NoDefaultFormatting, Ranged, ValueFormatter,
};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, DerivedColorMap};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::{tiny_skia, usvg};

use crate::error::{Error, Result};

mod axes;
mod bar;
mod heatmap;
mod line;
#[cfg(test)]
mod tests;

use axes::*;
use bar::*;
use heatmap::*;
use line::*;

/// Picture size in pixels (the SVG uses the same user units).
const SIZE: (u32, u32) = (900, 600);
/// The font family every text uses; the embedded font is registered under it.
const FONT: &str = "sans-serif";
const TITLE_PX: u32 = 24;
const DESC_PX: u32 = 18;
const TICK_PX: u32 = 15;
const LEGEND_PX: u32 = 14;
const NOTE_PX: u32 = 13;
/// Height of the tick-label area under the plot, and the room it leaves.
const X_AREA: u32 = 54;
const MARGIN: u32 = 10;
/// Width of the color-bar panel right of a heatmap.
const BAR_PANEL: u32 = 104;
/// At most this many series get their own legend entry.
const MAX_LEGEND: usize = 12;
/// About this many tick labels on an x and on a y axis.
const X_LABELS: usize = 8;
const Y_LABELS: usize = 7;
const NOTE_COLOR: RGBColor = RGBColor(90, 90, 90);

static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// resvg's options with the embedded font as "sans-serif"; on first use
/// the font is also registered with plotters, which lays text out with it.
fn svg_options() -> Result<&'static usvg::Options<'static>> {
    static OPTIONS: OnceLock<Option<usvg::Options>> = OnceLock::new();
    let options = OPTIONS.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).ok()?;
        let mut fonts = usvg::fontdb::Database::new();
        fonts.load_font_data(FONT_BYTES.to_vec());
        let family = fonts.faces().next()?.families.first()?.0.clone();
        fonts.set_sans_serif_family(family);
        let fontdb = Arc::new(fonts);
        Some(usvg::Options {
            fontdb,
            ..Default::default()
        })
    });
    options.as_ref().ok_or_else(|| {
        Error::Invalid("the embedded font assets/DejaVuSans.ttf could not be parsed; restore it from the repository".into())
    })
}

/// One named curve: `y[i]` against `x[i]`. `x` and `y` must have the same length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// A line plot: one colored line per series, with a legend beside the plot.
#[derive(Debug, Clone, Copy)]
pub struct LinePlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic x axis (points with x ≤ 0 are skipped).
    pub log_x: bool,
    /// Logarithmic y axis (points with y ≤ 0 are skipped).
    pub log_y: bool,
    pub series: &'a [Series],
    /// Also mark every data point with a dot.
    pub points: bool,
}

/// A heatmap of a `rows × cols` matrix given row-major in `values`.
///
/// White is 0. Values of one sign use a sequential map (red for positive,
/// blue for negative magnitudes); values of both signs use a diverging
/// blue–white–red map symmetric around 0. Non-finite cells are gray.
#[derive(Debug, Clone, Copy)]
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub rows: usize,
    pub cols: usize,
    /// Row-major, `rows * cols` values.
    pub values: &'a [f64],
    /// One name per row (default: the row index).
    pub row_names: Option<&'a [String]>,
    /// One name per column (default: the column index).
    pub col_names: Option<&'a [String]>,
}

/// Writes `out.png` and `out.svg`: a line plot of `p.series`.
///
/// Errors: [`Error::Invalid`] when a series has `x` and `y` of different
/// lengths; [`Error::Io`] when a file cannot be written.
pub fn line_plot(out: &Path, p: &LinePlot) -> Result<()> {
    for s in p.series {
        let (x, y) = (s.x.len(), s.y.len());
        check(out, x == y, || {
            format!("series '{}' has {x} x values but {y} y values", s.name)
        })?;
    }
    render(out, |root| line_figure(root, p))
}

/// Writes `out.png` and `out.svg`: a heatmap of `h.values`.
///
/// Errors: [`Error::Invalid`] when `values`, `row_names` or `col_names` do not
/// match `rows × cols`; [`Error::Io`] when a file cannot be written.
pub fn heatmap(out: &Path, h: &Heatmap) -> Result<()> {
    let (r, c, got) = (h.rows, h.cols, h.values.len());
    let n = r.checked_mul(c);
    check(out, n == Some(got), || match n {
        Some(n) => format!("heatmap of {r} × {c} cells needs {n} values, got {got}"),
        None => format!("heatmap of {r} × {c} cells is too large"),
    })?;
    for (what, names, want) in [("row_names", h.row_names, r), ("col_names", h.col_names, c)] {
        let have = names.map_or(want, |names| names.len());
        check(out, have == want, || {
            format!("heatmap {what} has {have} names for {want} entries")
        })?;
    }
    render(out, |root| heat_figure(root, h))
}

/// Writes `out.png` and `out.svg`: one bar per name, of height `values[i]`.
///
/// Errors: [`Error::Invalid`] when `names` and `values` differ in length;
/// [`Error::Io`] when a file cannot be written.
pub fn bar_plot(
    out: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    names: &[String],
    values: &[f64],
) -> Result<()> {
    let (n, v) = (names.len(), values.len());
    check(out, n == v, || {
        format!("bar plot has {n} names but {v} values")
    })?;
    let texts = [title, x_label, y_label];
    render(out, |root| bar_figure(root, texts, names, values))
}

/// [`Error::Invalid`] for the plot at `out`, saying `why`, unless `ok`.
fn check(out: &Path, ok: bool, why: impl FnOnce() -> String) -> Result<()> {
    match ok {
        true => Ok(()),
        false => Err(Error::Invalid(format!("{}: {}", out.display(), why()))),
    }
}

/// The SVG drawing area every figure is drawn on.
type Svg<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// What drawing on it returns.
type Drawn<T = ()> = std::result::Result<T, DrawingAreaErrorKind<std::io::Error>>;

/// `out` with `.ext` appended (an existing dot in the stem is kept).
fn with_ext(out: &Path, ext: &str) -> PathBuf {
    let mut s: OsString = out.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Draws the figure as SVG and rasterizes it in memory, then writes the PNG
/// and the SVG, each whole (see `crate::atomic`), the PNG only once the SVG
/// is in place.
fn render(out: &Path, draw: impl FnOnce(&Svg) -> Drawn) -> Result<()> {
    let options = svg_options()?;
    let (png, svg_path) = (with_ext(out, "png"), with_ext(out, "svg"));
    let failed = |e: &dyn std::fmt::Display| {
        Error::Invalid(format!("{}: drawing failed: {e}", out.display()))
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present());
        drawn.map_err(|e| failed(&e))?;
    }
    // XML has no control characters (but tab and line ends): where a name
    // holds one, U+FFFD stands in.
    let xml = |c: char| (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}') || "\t\n\r".contains(c);
    let svg: String = svg
        .chars()
        .map(|c| if xml(c) { c } else { '\u{FFFD}' })
        .collect();
    let tree = usvg::Tree::from_str(&svg, options).map_err(|e| failed(&e))?;
    let mut pixmap = tiny_skia::Pixmap::new(SIZE.0, SIZE.1).ok_or_else(|| failed(&"no pixmap"))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let bytes = pixmap.encode_png().map_err(|e| failed(&e))?;
    let pending = crate::atomic::Pending::new(&png)?;
    let io = |source| Error::Io {
        path: png.clone(),
        source,
    };
    std::fs::write(pending.path(), bytes).map_err(io)?;
    crate::atomic::write(&svg_path, svg)?;
    pending.commit()
}
