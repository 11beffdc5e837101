//! The project's small plotting library: line plots, heatmaps and bar plots.
//!
//! Every function takes a path *stem* (`out`, without extension) and writes
//! exactly two files, `out.png` (900×600 px) and `out.svg`, or neither.
//!
//! Charts are built from plotters' own parts: `ChartBuilder` and
//! `configure_mesh` for axes, ticks and grid, `log_scale()` for log axes,
//! `with_key_points` for named ticks, `configure_series_labels` for legends,
//! `DerivedColorMap` for heatmap colors. Text is DejaVu Sans, embedded from
//! `assets/DejaVuSans.ttf` and registered as the "sans-serif" family; in the
//! PNG it is laid out by ab_glyph (see [`Crisp`]).
//!
//! Data are taken as they come: non-finite values (and values ≤ 0 on a log
//! axis) are skipped, with a note on the picture saying how many; a plot with
//! nothing left to draw is still written, as an empty chart with a note.
//! Only inconsistent inputs (mismatched lengths) are errors.
//!
//! Here: the public API and rendering to both formats; one file per figure
//! (`line.rs`, `heatmap.rs`, `bar.rs`), the pieces they share (`axes.rs`)
//! and the bitmap text layout (`text.rs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, ScaleFont};
use plotters::coord::combinators::{
    BindKeyPoints, IntoLogRange, IntoPartialAxis, LogCoord, WithKeyPoints,
};
use plotters::coord::ranged1d::{BoldPoints, DefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, DerivedColorMap};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

use crate::error::{Error, Result};

mod axes;
mod bar;
mod heatmap;
mod line;
#[cfg(test)]
mod tests;
mod text;

use axes::*;
use bar::*;
use heatmap::*;
use line::*;
use text::*;

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

/// The embedded font, registered with plotters as "sans-serif" on first use.
fn font() -> Result<&'static FontRef<'static>> {
    static FONT_REF: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT_REF
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).ok()?;
            FontRef::try_from_slice(FONT_BYTES).ok()
        })
        .as_ref()
        .ok_or_else(|| {
            Error::Invalid("the embedded font assets/DejaVuSans.ttf could not be parsed; restore it from the repository".into())
        })
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// One named curve: `y[i]` against `x[i]`. `x` and `y` must have the same length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// A line plot: one colored line per series, with a legend.
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
    render(out, Figure::Line(p))
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
    render(out, Figure::Heat(h))
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
    render(out, Figure::Bars([title, x_label, y_label], names, values))
}

/// [`Error::Invalid`] for the plot at `out`, saying `why`, unless `ok`.
fn check(out: &Path, ok: bool, why: impl FnOnce() -> String) -> Result<()> {
    match ok {
        true => Ok(()),
        false => Err(Error::Invalid(format!("{}: {}", out.display(), why()))),
    }
}

// ---------------------------------------------------------------------------
// Rendering to both formats
// ---------------------------------------------------------------------------

/// A plotters result on backend `DB`.
type Drawn<DB, T = ()> =
    std::result::Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// What to draw; drawn once on an SVG and once on a bitmap backend.
#[derive(Clone, Copy)]
enum Figure<'f, 'a> {
    Line(&'f LinePlot<'a>),
    Heat(&'f Heatmap<'a>),
    /// `[title, x label, y label]`, names, values.
    Bars([&'f str; 3], &'f [String], &'f [f64]),
}

impl Figure<'_, '_> {
    fn draw<DB: DrawingBackend>(self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        match self {
            Figure::Line(p) => line_figure(root, p),
            Figure::Heat(h) => heat_figure(root, h),
            Figure::Bars(texts, names, values) => bar_figure(root, texts, names, values),
        }
    }
}

/// `out` with `.ext` appended (an existing dot in the stem is kept).
fn with_ext(out: &Path, ext: &str) -> PathBuf {
    let mut s: OsString = out.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Draws the SVG in memory, then the PNG straight into its file, then writes
/// the SVG, each whole or not at all (see `crate::atomic`).
fn render(out: &Path, fig: Figure) -> Result<()> {
    font()?;
    let (png, svg_path) = (with_ext(out, "png"), with_ext(out, "svg"));
    let failed = |path: &Path, e: &dyn std::fmt::Display| {
        Error::Invalid(format!("{}: drawing failed: {e}", path.display()))
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let drawn = fig.draw(&root).and_then(|()| root.present());
        drawn.map_err(|e| failed(&svg_path, &e))?;
    }
    // The PNG is encoded into a temporary file beside it (creating that gives
    // a plain I/O error naming the path) and renamed into place whole.
    let pending = crate::atomic::Pending::new(&png)?;
    let root = Crisp(BitMapBackend::new(pending.path(), SIZE)).into_drawing_area();
    let drawn = fig
        .draw(&root)
        .map_err(|e| failed(&png, &e))
        .and_then(|()| {
            root.present().map_err(|e| Error::Io {
                path: png.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        });
    drop(root); // a bitmap backend saves itself when dropped, even after an error
    drawn?;
    crate::atomic::write(&svg_path, svg)?;
    pending.commit()
}
