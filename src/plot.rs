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

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, ScaleFont};
use plotters::coord::ranged1d::{BoldPoints, DefaultFormatting, Ranged, ValueFormatter};
use std::ops::Range;

use plotters::coord::combinators::{
    BindKeyPoints, IntoLogRange, IntoPartialAxis, LogCoord, WithKeyPoints,
};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, DerivedColorMap};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

use crate::error::{Error, Result};

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
const NOTE_COLOR: RGBColor = RGBColor(90, 90, 90);

static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

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
        if s.x.len() != s.y.len() {
            return Err(Error::Invalid(format!(
                "{}: series '{}' has {} x values but {} y values",
                out.display(),
                s.name,
                s.x.len(),
                s.y.len()
            )));
        }
    }
    render(out, Figure::Line(p))
}

/// Writes `out.png` and `out.svg`: a heatmap of `h.values`.
///
/// Errors: [`Error::Invalid`] when `values`, `row_names` or `col_names` do not
/// match `rows × cols`; [`Error::Io`] when a file cannot be written.
pub fn heatmap(out: &Path, h: &Heatmap) -> Result<()> {
    let invalid = |msg: String| Err(Error::Invalid(format!("{}: heatmap {msg}", out.display())));
    let Some(n) = h.rows.checked_mul(h.cols) else {
        return invalid(format!("of {} × {} cells is too large", h.rows, h.cols));
    };
    if h.values.len() != n {
        let (r, c, got) = (h.rows, h.cols, h.values.len());
        return invalid(format!("of {r} × {c} cells needs {n} values, got {got}"));
    }
    for (what, names, want) in [
        ("row_names", h.row_names, h.rows),
        ("col_names", h.col_names, h.cols),
    ] {
        if let Some(names) = names.filter(|names| names.len() != want) {
            return invalid(format!(
                "{what} has {} names for {want} entries",
                names.len()
            ));
        }
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
    if names.len() != values.len() {
        return Err(Error::Invalid(format!(
            "{}: bar plot has {} names but {} values",
            out.display(),
            names.len(),
            values.len()
        )));
    }
    render(out, Figure::Bars([title, x_label, y_label], names, values))
}

// ---------------------------------------------------------------------------
// Rendering to both formats
// ---------------------------------------------------------------------------

type DrawResult = std::result::Result<(), String>;

/// What to draw; drawn once on an SVG and once on a bitmap backend.
#[derive(Clone, Copy)]
enum Figure<'f, 'a> {
    Line(&'f LinePlot<'a>),
    Heat(&'f Heatmap<'a>),
    /// `[title, x label, y label]`, names, values.
    Bars([&'f str; 3], &'f [String], &'f [f64]),
}

impl Figure<'_, '_> {
    fn draw<DB: DrawingBackend>(self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(de)?;
        match self {
            Figure::Line(p) => line_figure(root, p),
            Figure::Heat(h) => heat_figure(root, h),
            Figure::Bars(texts, names, values) => bar_figure(root, texts, names, values),
        }
    }
}

/// Error text of a plotters failure.
fn de<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// `out` with `.ext` appended (an existing dot in the stem is kept).
fn with_ext(out: &Path, ext: &str) -> PathBuf {
    let mut s: OsString = out.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn draw_err(path: &Path, msg: String) -> Error {
    Error::Invalid(format!("{}: drawing failed: {msg}", path.display()))
}

/// Draws the SVG in memory, then the PNG straight into its file, then writes
/// the SVG, each whole or not at all (see `crate::atomic`).
fn render(out: &Path, fig: Figure) -> Result<()> {
    font()?;
    let (png, svg_path) = (with_ext(out, "png"), with_ext(out, "svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        fig.draw(&root).map_err(|e| draw_err(&svg_path, e))?;
        root.present().map_err(|e| draw_err(&svg_path, de(e)))?;
    }
    // The PNG is encoded into a temporary file beside it (creating that gives
    // a plain I/O error naming the path) and renamed into place whole.
    let pending = crate::atomic::Pending::new(&png)?;
    let root = Crisp(BitMapBackend::new(pending.path(), SIZE)).into_drawing_area();
    let drawn = fig
        .draw(&root)
        .map_err(|e| draw_err(&png, e))
        .and_then(|()| {
            root.present()
                .map_err(|e| io_err(&png, std::io::Error::other(e.to_string())))
        });
    drop(root); // a bitmap backend saves itself when dropped, even after an error
    drawn?;
    crate::atomic::write(&svg_path, svg)?;
    pending.commit()
}

// ---------------------------------------------------------------------------
// Text in bitmaps
// ---------------------------------------------------------------------------

/// A backend that draws everything through `B` except text, which it lays
/// out with ab_glyph. plotters 0.3.7 draws each glyph at the integer pen
/// position without its left side bearing, which opens gaps inside words
/// ("To ken", "token 1 0"); here each glyph sits at its kerned, sub-pixel
/// place. (SVG text is laid out by the viewer, so SVGs need no such fix.)
struct Crisp<B>(B);

type BackendResult<E> = std::result::Result<(), DrawingErrorKind<E>>;

impl<B: DrawingBackend> DrawingBackend for Crisp<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> BackendResult<B::ErrorType> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> BackendResult<B::ErrorType> {
        self.0.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> BackendResult<B::ErrorType> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> BackendResult<B::ErrorType> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> BackendResult<B::ErrorType> {
        self.0.draw_rect(a, b, style, fill)
    }
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> BackendResult<B::ErrorType> {
        let Ok(font) = font() else {
            return self.0.draw_text(text, style, pos);
        };
        let (color, turn) = (style.color(), style.transform());
        let (w, h) = self.get_size();
        let mut result = Ok(());
        rasterize(
            font,
            text,
            style.size() as f32,
            style.anchor(),
            |x, y, a| {
                let (dx, dy) = turn.transform(x, y);
                let (x, y) = (pos.0 + dx, pos.1 + dy);
                if result.is_ok() && x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    let alpha = color.alpha * f64::from(a);
                    result = self.0.draw_pixel(
                        (x, y),
                        BackendColor {
                            alpha,
                            rgb: color.rgb,
                        },
                    );
                }
            },
        );
        result
    }
}

/// Lays out `text` at `px` size (kerned, as plotters measures it) and calls
/// `pixel(x, y, coverage)` for each pixel it covers, relative to the anchor.
/// A `Top` anchor is the top of the capitals, `Center` their middle.
fn rasterize(
    font: &FontRef,
    text: &str,
    px: f32,
    anchor: Pos,
    mut pixel: impl FnMut(i32, i32, f32),
) {
    let f = font.as_scaled(px);
    let (mut pen, mut prev) = (0.0, None);
    let glyphs: Vec<_> = text
        .chars()
        .map(|c| {
            let id = f.glyph_id(c);
            pen += prev.map_or(0.0, |p| f.kern(p, id));
            prev = Some(id);
            let at = pen;
            pen += f.h_advance(id);
            (id, at)
        })
        .collect();
    let x0 = match anchor.h_pos {
        HPos::Left => 0.0,
        HPos::Center => -pen / 2.0,
        HPos::Right => -pen,
    };
    let cap = f
        .font()
        .outline(f.glyph_id('H'))
        .map_or(0.7 * px, |o| o.bounds.min.y * f.v_scale_factor());
    let baseline = match anchor.v_pos {
        VPos::Top => cap,
        VPos::Center => cap / 2.0,
        VPos::Bottom => f.descent(),
    };
    for (id, at) in glyphs {
        if let Some(g) =
            f.outline_glyph(id.with_scale_and_position(f.scale(), point(x0 + at, baseline)))
        {
            let b = g.px_bounds();
            g.draw(|x, y, c| pixel(b.min.x as i32 + x as i32, b.min.y as i32 + y as i32, c));
        }
    }
}

// ---------------------------------------------------------------------------
// Shared pieces: formats, label areas, notes
// ---------------------------------------------------------------------------

/// A number with about three significant digits, plain or scientific.
fn fmt_sig(v: f64) -> String {
    let trim = |s: &str| -> String {
        match s.contains('.') {
            true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
            false => s.to_string(),
        }
    };
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        format!("{}", if v == 0.0 { 0.0 } else { v })
    } else if (1e-3..1e5).contains(&a) {
        let d = (2 - a.log10().floor() as i32).max(0) as usize;
        trim(&format!("{v:.d$}"))
    } else {
        let s = format!("{v:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{}e{e}", trim(m))
    }
}

fn superscript(k: i64) -> String {
    let digit = |c: char| {
        "⁰¹²³⁴⁵⁶⁷⁸⁹"
            .chars()
            .nth(c.to_digit(10).unwrap_or(0) as usize)
    };
    let sign = (k < 0).then_some('⁻');
    sign.into_iter()
        .chain(k.unsigned_abs().to_string().chars().filter_map(digit))
        .collect()
}

/// The label text for ticks at `ticks`: log axes use [`fmt_sig`] (or 10ⁿ
/// for far powers of ten), linear axes as many decimals as the tick step
/// needs (scientific when large or small).
fn tick_format(ticks: &[f64], log: bool) -> impl Fn(&f64) -> String {
    let step = ticks
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(f64::INFINITY, f64::min);
    let top = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let step_exp = step.log10().floor();
    let sci = top >= 1e5 || (top < 1e-3 && top > 0.0);
    let digits = (top.log10().floor() - step_exp).clamp(0.0, 6.0) as usize;
    let decimals = (-step_exp).clamp(0.0, 15.0) as usize;
    let pow10 = |t: &f64| (t.log10() - t.log10().round()).abs() < 1e-9;
    let sup = log && ticks.iter().all(pow10) && ticks.iter().any(|t| !(1e-3..=1e4).contains(t));
    move |&v| match () {
        _ if sup => format!("10{}", superscript(v.log10().round() as i64)),
        _ if log || !step.is_finite() || step <= 0.0 => fmt_sig(v),
        _ if sci => format!("{v:.digits$e}"),
        _ => format!("{:.decimals$}", if v == 0.0 { 0.0 } else { v }),
    }
}

/// Width of the area left of a plot, for tick labels `widest` px wide.
fn y_area(widest: u32) -> u32 {
    (widest + 5 + 8 + DESC_PX + 14).clamp(50, 240)
}

/// A chart with this file's margins on `area` (title already drawn).
fn chart_on<'a, DB: DrawingBackend, X: Ranged, Y: Ranged>(
    area: &'a DrawingArea<DB, Shift>,
    y_area: u32,
    x: X,
    y: Y,
) -> std::result::Result<ChartContext<'a, DB, Cartesian2d<X, Y>>, String> {
    ChartBuilder::on(area)
        .margin(MARGIN)
        .margin_right(26)
        .x_label_area_size(X_AREA)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x, y)
        .map_err(de)
}

/// A tick label formatter.
type Fmt<'f, T> = dyn Fn(&T) -> String + 'f;

/// Axes, ticks, tick labels, axis names and (where `grid`) grid lines.
fn draw_mesh<DB, X, Y>(
    chart: &mut ChartContext<DB, Cartesian2d<X, Y>>,
    desc: (&str, &str),
    fmt: (&Fmt<'_, X::ValueType>, &Fmt<'_, Y::ValueType>),
    grid: (bool, bool),
) -> DrawResult
where
    DB: DrawingBackend,
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    let mut mesh = chart.configure_mesh();
    if !grid.0 {
        mesh.disable_x_mesh();
    }
    if !grid.1 {
        mesh.disable_y_mesh();
    }
    mesh.x_desc(desc.0)
        .y_desc(desc.1)
        .x_labels(X_LABELS)
        .y_labels(Y_LABELS)
        .x_label_formatter(fmt.0)
        .y_label_formatter(fmt.1)
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, DESC_PX))
        .set_all_tick_mark_size(5)
        .axis_style(BLACK.mix(0.8))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .max_light_lines(5)
        .draw()
        .map_err(de)
}

const X_LABELS: usize = 8;
const Y_LABELS: usize = 7;

/// The picture below its title, drawn centered at the top.
fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> std::result::Result<DrawingArea<DB, Shift>, String> {
    root.margin(9, 0, 0, 0)
        .titled(title, (FONT, TITLE_PX))
        .map_err(de)
}

/// `msg` centered in the plotting area of `chart`.
fn center_note<DB: DrawingBackend, CT: CoordTranslate>(
    chart: &ChartContext<DB, CT>,
    msg: &str,
) -> DrawResult {
    let area = chart.plotting_area().strip_coord_spec();
    let (w, h) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, DESC_PX).into_font()).color(&NOTE_COLOR);
    let style = style.pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(msg, (w as i32 / 2, h as i32 / 2), style))
        .map_err(de)
}

/// Small notes in the bottom-right corner of the picture, one per line.
fn corner_notes<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, notes: &[String]) -> DrawResult {
    let style = TextStyle::from((FONT, NOTE_PX).into_font()).color(&NOTE_COLOR);
    let style = style.pos(Pos::new(HPos::Right, VPos::Bottom));
    for (i, note) in notes.iter().rev().enumerate() {
        let y = SIZE.1 as i32 - 5 - i as i32 * (NOTE_PX as i32 + 4);
        root.draw(&Text::new(
            note.as_str(),
            (SIZE.0 as i32 - 8, y),
            style.clone(),
        ))
        .map_err(de)?;
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    s.chars().take(max - 1).chain(['…']).collect()
}

fn min_max(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.fold(None, |acc, v| {
        Some(acc.map_or((v, v), |(a, b): (f64, f64)| (a.min(v), b.max(v))))
    })
}

/// Usable data: finite and not so large that pixel arithmetic overflows.
fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() < 1e300
}

/// A 1-2-5 stride such that labels `label_px` long fit in cells `cell_px` wide.
fn label_stride(label_px: u32, cell_px: f64) -> usize {
    let need = (f64::from(label_px) / cell_px.max(1e-3))
        .ceil()
        .clamp(1.0, 1e9) as usize;
    let mut base = 1usize;
    loop {
        if let Some(m) = [1, 2, 5].into_iter().find(|m| m * base >= need) {
            return m * base;
        }
        base = base.saturating_mul(10);
    }
}

/// A linear axis over `range` with ticks exactly at `ticks`. (The
/// `partial_axis` over the whole range gives it default label formatting.)
fn ticked(
    range: Range<f64>,
    ticks: Vec<f64>,
) -> impl Ranged<ValueType = f64, FormatOption = DefaultFormatting> {
    range.clone().with_key_points(ticks).partial_axis(range)
}

/// Width in pixels of the widest of `texts` at `px` size.
fn widest<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    px: u32,
    texts: impl Iterator<Item = String>,
) -> u32 {
    let style = TextStyle::from((FONT, px).into_font());
    texts
        .filter_map(|s| root.estimate_text_size(&s, &style).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Line plot
// ---------------------------------------------------------------------------

/// Tableau 10, then evenly spaced hues for many series.
fn series_color(i: usize, n: usize) -> RGBColor {
    const TAB10: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    if n <= TAB10.len() {
        return TAB10[i % TAB10.len()];
    }
    let (r, g, b) = HSLColor(0.8 * i as f64 / (n - 1) as f64, 0.8, 0.42).rgb();
    RGBColor(r, g, b)
}

/// One series' plottable runs (split at skipped points), with the number of
/// points skipped as non-finite and as ≤ 0 on a log axis.
type Prepared = (Vec<Vec<(f64, f64)>>, usize, usize);

fn prepare(s: &Series, log_x: bool, log_y: bool) -> Prepared {
    let (mut runs, mut bad, mut non_pos) = (vec![vec![]], 0, 0);
    for (&x, &y) in s.x.iter().zip(&s.y) {
        if !(usable(x) && usable(y)) {
            bad += 1;
        } else if (log_x && x <= 0.0) || (log_y && y <= 0.0) {
            non_pos += 1;
        } else {
            if let Some(run) = runs.last_mut() {
                run.push((x, y));
            }
            continue;
        }
        runs.push(vec![]);
    }
    runs.retain(|r| !r.is_empty());
    (runs, bad, non_pos)
}

/// Padded axis limits for data in `[lo, hi]`.
fn axis_range(range: Option<(f64, f64)>, log: bool) -> (f64, f64) {
    let Some((lo, hi)) = range else {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    };
    if log {
        let (a, b) = (lo.log10(), hi.log10());
        let pad = if b - a > 1e-9 { 0.05 * (b - a) } else { 1.0 };
        // plotters' log ticks need hi / lo finite: at most 300 decades.
        let b = (b + pad).min(305.0);
        return (10f64.powf((a - pad).max(b - 300.0)), 10f64.powf(b));
    }
    let span = hi - lo;
    if span > 1e-12 * lo.abs().max(hi.abs()) {
        (lo - 0.05 * span, hi + 0.05 * span)
    } else if lo == 0.0 {
        (-1.0, 1.0)
    } else {
        (lo - 0.1 * lo.abs(), hi + 0.1 * lo.abs())
    }
}

/// A log axis: plotters' ticks (powers of ten) or, over less than two decades
/// where those are too few, ticks at 1, 2, 5 × 10^k (or at every digit).
fn log_axis(lo: f64, hi: f64, n: usize) -> WithKeyPoints<LogCoord<f64>> {
    let axis = LogCoord::from((lo..hi).log_scale());
    let (bold, light) = if hi / lo >= 99.0 {
        (axis.key_points(n), axis.key_points(10 * n))
    } else {
        let decades = lo.log10().floor() as i32..=hi.log10().ceil() as i32;
        let digits = |ms: &[f64]| -> Vec<f64> {
            let at = decades
                .clone()
                .flat_map(|k| ms.iter().map(move |m| m * 10f64.powi(k)));
            at.filter(|v| (lo..=hi).contains(v)).collect()
        };
        let all = digits(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        let bold = [digits(&[1.0, 2.0, 5.0]), all.clone()]
            .into_iter()
            .find(|t| t.len() >= 3);
        (
            bold.unwrap_or_else(|| RangedCoordf64::from(lo..hi).key_points(n)),
            all,
        )
    };
    (lo..hi)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light)
}

/// Indices of the series that get a legend entry: all, or an even spread.
fn legend_indices(n: usize) -> Vec<usize> {
    if n <= MAX_LEGEND {
        return (0..n).collect();
    }
    let k = MAX_LEGEND - 1;
    (0..k).map(|j| j * (n - 1) / (k - 1)).collect()
}

fn line_figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &LinePlot) -> DrawResult {
    let prepared: Vec<Prepared> = p
        .series
        .iter()
        .map(|s| prepare(s, p.log_x, p.log_y))
        .collect();
    let all = || prepared.iter().flat_map(|s| s.0.iter().flatten());
    let (x0, x1) = axis_range(min_max(all().map(|q| q.0)), p.log_x);
    let (y0, y1) = axis_range(min_max(all().map(|q| q.1)), p.log_y);
    let lin = |a: f64, b: f64| RangedCoordf64::from(a..b);

    match (p.log_x, p.log_y) {
        (false, false) => line_chart(root, p, &prepared, lin(x0, x1), lin(y0, y1)),
        (true, false) => line_chart(root, p, &prepared, log_axis(x0, x1, X_LABELS), lin(y0, y1)),
        (false, true) => line_chart(root, p, &prepared, lin(x0, x1), log_axis(y0, y1, Y_LABELS)),
        (true, true) => line_chart(
            root,
            p,
            &prepared,
            log_axis(x0, x1, X_LABELS),
            log_axis(y0, y1, Y_LABELS),
        ),
    }
}

fn line_chart<DB, X, Y>(
    root: &DrawingArea<DB, Shift>,
    p: &LinePlot,
    prepared: &[Prepared],
    x: X,
    y: Y,
) -> DrawResult
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let fx = tick_format(&x.key_points(BoldPoints(X_LABELS)), p.log_x);
    let y_ticks = y.key_points(BoldPoints(Y_LABELS));
    let fy = tick_format(&y_ticks, p.log_y);
    let area = titled(root, p.title)?;
    let y_width = widest(root, TICK_PX, y_ticks.iter().map(&fy));
    let mut chart = chart_on(&area, y_area(y_width), x, y)?;
    draw_mesh(&mut chart, (p.x_label, p.y_label), (&fx, &fy), (true, true))?;

    let (n, shown) = (p.series.len(), legend_indices(p.series.len()));
    let (mut samples, mut labels) = (vec![], vec![]);
    for (i, (s, (runs, ..))) in p.series.iter().zip(prepared).enumerate() {
        let color = series_color(i, n);
        for run in runs {
            chart
                .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                .map_err(de)?;
            if p.points || run.len() == 1 {
                chart
                    .draw_series(run.iter().map(|&q| Circle::new(q, 3, color.filled())))
                    .map_err(de)?;
            }
            // Pixels along the line, to keep the legend off the data.
            let px: Vec<(i32, i32)> = run.iter().map(|q| chart.backend_coord(q)).collect();
            samples.extend(px.windows(2).flat_map(|w| {
                let (a, b) = (w[0], w[1]);
                let k = (((b.0 - a.0).abs() + (b.1 - a.1).abs()) / 6).clamp(1, 300);
                (0..k).map(move |j| (a.0 + (b.0 - a.0) * j / k, a.1 + (b.1 - a.1) * j / k))
            }));
            samples.extend(px.last());
        }
        if !s.name.is_empty() && shown.contains(&i) {
            labels.push(truncate(&s.name, 40));
            let entry = chart
                .draw_series(LineSeries::new(std::iter::empty(), color))
                .map_err(de)?;
            entry
                .label(labels.last().cloned().unwrap_or_default())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3))
                });
        }
    }
    if n > MAX_LEGEND && !labels.is_empty() {
        labels.push(format!("({} of {n} series shown)", labels.len()));
        let entry = chart
            .draw_series(LineSeries::new(std::iter::empty(), WHITE))
            .map_err(de)?;
        entry.label(labels.last().cloned().unwrap_or_default());
    }
    if !labels.is_empty() {
        // The corner where the legend covers the fewest data pixels.
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let w = widest(root, LEGEND_PX, labels.iter().cloned()) as i32 + 28 + 16;
        let h = labels.len() as i32 * LEGEND_PX as i32 + 16;
        let (left, top) = (xr.start + 5, yr.start + 5);
        let (right, bottom) = (xr.end - 5 - w, yr.end - 5 - h);
        let corners = [
            (SeriesLabelPosition::UpperRight, right, top),
            (SeriesLabelPosition::UpperLeft, left, top),
            (SeriesLabelPosition::LowerRight, right, bottom),
            (SeriesLabelPosition::LowerLeft, left, bottom),
        ];
        let covered = |&(_, x, y): &(SeriesLabelPosition, i32, i32)| {
            let inside = |&&(sx, sy): &&(i32, i32)| {
                (x - 4..x + w + 4).contains(&sx) && (y - 4..y + h + 4).contains(&sy)
            };
            samples.iter().filter(inside).count()
        };
        let best = corners
            .iter()
            .min_by_key(|c| covered(c))
            .map_or(SeriesLabelPosition::UpperRight, |c| c.0.clone());
        chart
            .configure_series_labels()
            .position(best)
            .label_font((FONT, LEGEND_PX))
            .legend_area_size(28)
            .margin(8)
            .background_style(WHITE.mix(0.88))
            .border_style(BLACK.mix(0.35))
            .draw()
            .map_err(de)?;
    }

    if prepared.iter().all(|s| s.0.is_empty()) {
        let empty = p.series.iter().all(|s| s.x.is_empty());
        center_note(
            &chart,
            if empty {
                "no data"
            } else {
                "no plottable data points"
            },
        )?;
    }
    let (bad, non_pos) = prepared.iter().fold((0, 0), |(a, b), s| (a + s.1, b + s.2));
    let mut notes = vec![];
    if bad > 0 {
        notes.push(format!(
            "{} skipped",
            plural(bad, "non-finite point", "non-finite points")
        ));
    }
    if non_pos > 0 {
        notes.push(format!(
            "{} skipped (log axis)",
            plural(non_pos, "point ≤ 0", "points ≤ 0")
        ));
    }
    corner_notes(root, &notes)
}

// ---------------------------------------------------------------------------
// Heatmap
// ---------------------------------------------------------------------------

const NAN_COLOR: RGBColor = RGBColor(190, 190, 190);

/// Values to colors: white at 0, ColorBrewer Reds up to `hi`, Blues down to
/// `lo` (`lo ≤ 0 ≤ hi`, symmetric when the data have both signs).
struct Scale {
    lo: f64,
    hi: f64,
    reds: DerivedColorMap<RGBColor>,
    blues: DerivedColorMap<RGBColor>,
}

impl Scale {
    fn new(range: Option<(f64, f64)>) -> Self {
        let (lo, hi) = match range {
            Some((a, b)) if a < 0.0 && b > 0.0 => (-b.max(-a), b.max(-a)),
            Some((_, b)) if b > 0.0 => (0.0, b),
            Some((a, _)) if a < 0.0 => (a, 0.0),
            _ => (0.0, 1.0),
        };
        let c = |(r, g, b)| RGBColor(r, g, b);
        let reds = [
            (255, 255, 255),
            (252, 187, 161),
            (251, 106, 74),
            (203, 24, 29),
            (103, 0, 13),
        ]
        .map(c);
        let blues = [
            (255, 255, 255),
            (198, 219, 239),
            (107, 174, 214),
            (33, 113, 181),
            (8, 48, 107),
        ]
        .map(c);
        Scale {
            lo,
            hi,
            reds: DerivedColorMap::new(&reds),
            blues: DerivedColorMap::new(&blues),
        }
    }

    /// The color of `v`, quantized to 256 levels per side.
    fn color(&self, v: f64) -> RGBColor {
        let level = |t: f64| (t.clamp(0.0, 1.0) * 255.0).round() / 255.0;
        match v {
            _ if !v.is_finite() => NAN_COLOR,
            _ if v < 0.0 => self.blues.get_color(level(v / self.lo)),
            _ if self.hi > 0.0 => self.reds.get_color(level(v / self.hi)),
            _ => WHITE,
        }
    }
}

fn heat_figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, h: &Heatmap) -> DrawResult {
    let range = min_max(h.values.iter().copied().filter(|v| v.is_finite()));
    let n_nan = h.values.iter().filter(|v| !v.is_finite()).count();
    let scale = Scale::new(range);
    let (rows, cols) = (h.rows.max(1), h.cols.max(1));
    let name = |names: Option<&[String]>, i: usize| {
        names
            .and_then(|n| n.get(i))
            .map_or(i.to_string(), |s| truncate(s, 18))
    };

    let area = titled(root, h.title)?;
    let (left, right) = area.split_horizontally(SIZE.0 - BAR_PANEL);
    // Which rows and columns get a label: as many as fit.
    let (w, ht) = left.dim_in_pixel();
    let plot_h = f64::from(ht - 2 * MARGIN - X_AREA) / rows as f64;
    let ys: Vec<usize> = (0..h.rows)
        .step_by(label_stride(TICK_PX + 5, plot_h))
        .collect();
    let y_width = widest(root, TICK_PX, ys.iter().map(|&r| name(h.row_names, r)));
    let col_width = widest(root, TICK_PX, (0..h.cols).map(|c| name(h.col_names, c)));
    let plot_w = f64::from(w.saturating_sub(MARGIN + 26 + y_area(y_width))) / cols as f64;
    let xs = (0..h.cols).step_by(label_stride(col_width + 10, plot_w));
    let x = ticked(0.0..cols as f64, xs.map(|c| c as f64 + 0.5).collect());
    // Row 0 at the top.
    let y = ticked(
        rows as f64..0.0,
        ys.iter().map(|&r| r as f64 + 0.5).collect(),
    );
    let mut chart = chart_on(&left, y_area(y_width), x, y)?;
    let fx = |v: &f64| name(h.col_names, *v as usize);
    let fy = |v: &f64| name(h.row_names, *v as usize);
    draw_mesh(
        &mut chart,
        (h.x_label, h.y_label),
        (&fx, &fy),
        (false, false),
    )?;

    // Cells, merging runs of equal color within a row; white is the background.
    let mut cells = vec![];
    for (r, row) in h.values.chunks(cols).enumerate() {
        let mut c0 = 0;
        while c0 < row.len() {
            let color = scale.color(row[c0]);
            let c1 = (c0 + 1..row.len())
                .find(|&c| scale.color(row[c]) != color)
                .unwrap_or(row.len());
            if color != WHITE {
                cells.push(Rectangle::new(
                    [(c0 as f64, r as f64), (c1 as f64, r as f64 + 1.0)],
                    color.filled(),
                ));
            }
            c0 = c1;
        }
    }
    chart.draw_series(cells).map_err(de)?;
    let frame = Rectangle::new([(0.0, 0.0), (cols as f64, rows as f64)], BLACK.mix(0.6));
    chart.draw_series([frame]).map_err(de)?;
    if h.rows == 0 || h.cols == 0 {
        center_note(&chart, "no data")?;
    } else if range.is_none() {
        center_note(&chart, "no finite values")?;
    }

    // The color bar: a chart of its own, as tall as the heatmap.
    let (lo, hi) = (scale.lo, scale.hi);
    let mut bar = ChartBuilder::on(&right)
        .margin(MARGIN)
        .margin_left(0)
        .x_label_area_size(X_AREA)
        .set_label_area_size(LabelAreaPosition::Right, BAR_PANEL - 34)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(de)?;
    let fb = tick_format(&RangedCoordf64::from(lo..hi).key_points(5), false);
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_label_formatter(&fb)
        .label_style((FONT, TICK_PX))
        .set_all_tick_mark_size(4)
        .axis_style(BLACK.mix(0.6))
        .draw()
        .map_err(de)?;
    let strip = |k: usize| lo + (hi - lo) * k as f64 / 256.0;
    bar.draw_series((0..256).map(|k| {
        let color = scale.color((strip(k) + strip(k + 1)) / 2.0);
        Rectangle::new([(0.0, strip(k)), (1.0, strip(k + 1))], color.filled())
    }))
    .map_err(de)?;
    bar.draw_series([Rectangle::new([(0.0, lo), (1.0, hi)], BLACK.mix(0.6))])
        .map_err(de)?;

    let mut notes = vec![match range {
        Some((a, b)) => format!("min {}   max {}", fmt_sig(a), fmt_sig(b)),
        None => "min –   max –".to_string(),
    }];
    if n_nan > 0 {
        notes.push(format!(
            "gray: {}",
            plural(n_nan, "non-finite cell", "non-finite cells")
        ));
    }
    corner_notes(root, &notes)
}

// ---------------------------------------------------------------------------
// Bar plot
// ---------------------------------------------------------------------------

fn bar_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    [title, x_label, y_label]: [&str; 3],
    names: &[String],
    values: &[f64],
) -> DrawResult {
    let n = values.len();
    let range = min_max(values.iter().copied().filter(|&v| usable(v)));
    let n_bad = values.iter().filter(|&&v| !usable(v)).count();
    // Bars start at 0: keep 0 on the axis, pad only away from it.
    let (lo, hi) = match range {
        Some((a, b)) if a < 0.0 || b > 0.0 => {
            let (a, b) = (a.min(0.0), b.max(0.0));
            let pad = 0.05 * (b - a);
            (
                if a < 0.0 { a - pad } else { 0.0 },
                if b > 0.0 { b + pad } else { 0.0 },
            )
        }
        _ => (0.0, 1.0),
    };
    let y = RangedCoordf64::from(lo..hi);
    let y_ticks = y.key_points(Y_LABELS);
    let fy = tick_format(&y_ticks, false);
    let area = titled(root, title)?;
    let y_width = y_area(widest(root, TICK_PX, y_ticks.iter().map(&fy)));
    let name = |i: usize| names.get(i).map_or(String::new(), |s| truncate(s, 18));
    let name_width = widest(root, TICK_PX, (0..n).map(name));
    let plot_w = f64::from(SIZE.0 - 2 * MARGIN - 26 - y_width) / n.max(1) as f64;
    let shown = (0..n)
        .step_by(label_stride(name_width + 10, plot_w))
        .map(|i| i as f64);
    let x = ticked(-0.5..n.max(1) as f64 - 0.5, shown.collect());
    let mut chart = chart_on(&area, y_width, x, y)?;
    let fx = |v: &f64| name(v.round() as usize);
    draw_mesh(&mut chart, (x_label, y_label), (&fx, &fy), (false, true))?;

    let half = if n > 150 { 0.5 } else { 0.4 };
    let bars = values
        .iter()
        .enumerate()
        .filter(|(_, &v)| usable(v) && v != 0.0)
        .map(|(i, &v)| {
            let color = if v > 0.0 {
                series_color(0, 1)
            } else {
                series_color(3, 4)
            };
            Rectangle::new(
                [(i as f64 - half, 0.0), (i as f64 + half, v)],
                color.filled(),
            )
        });
    chart.draw_series(bars).map_err(de)?;
    if lo < 0.0 {
        let zero = [(-0.5, 0.0), (n.max(1) as f64 - 0.5, 0.0)];
        chart
            .draw_series(LineSeries::new(zero, BLACK.mix(0.6)))
            .map_err(de)?;
    }
    if n == 0 {
        center_note(&chart, "no data")?;
    } else if range.is_none() {
        center_note(&chart, "no finite values")?;
    }
    let mut notes = vec![];
    if n_bad > 0 {
        notes.push(format!(
            "{} not drawn",
            plural(n_bad, "non-finite value", "non-finite values")
        ));
    }
    corner_notes(root, &notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: PathBuf) -> Vec<u8> {
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Both files exist, the PNG is a PNG and the SVG an SVG with `title`.
    fn check_pair(stem: &Path, title: &str) {
        let png = read(with_ext(stem, "png"));
        assert!(png.len() > 100, "PNG too small");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = String::from_utf8(read(with_ext(stem, "svg"))).expect("SVG is UTF-8");
        assert!(svg.contains("<svg"), "no <svg element");
        assert!(svg.contains(title), "SVG lacks the title {title:?}");
    }

    /// Only `stem.png` and `stem.svg` in `dir`.
    fn only_pair(dir: &Path, stem: &str) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![format!("{stem}.png"), format!("{stem}.svg")]);
    }

    fn series(name: &str, x: Vec<f64>, y: Vec<f64>) -> Series {
        Series {
            name: name.into(),
            x,
            y,
        }
    }

    fn line<'a>(title: &'a str, series: &'a [Series], log_x: bool, log_y: bool) -> LinePlot<'a> {
        let (x_label, y_label, points) = ("beta", "active tokens", true);
        LinePlot {
            title,
            x_label,
            y_label,
            log_x,
            log_y,
            series,
            points,
        }
    }

    fn heat<'a>(title: &'a str, rows: usize, cols: usize, values: &'a [f64]) -> Heatmap<'a> {
        let (x_label, y_label, row_names, col_names) = ("token", "head", None, None);
        Heatmap {
            title,
            x_label,
            y_label,
            rows,
            cols,
            values,
            row_names,
            col_names,
        }
    }

    #[test]
    fn line_plot_writes_png_and_svg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let x: Vec<f64> = (0..30)
            .map(|i| 10f64.powf(-3.0 + i as f64 * 0.15))
            .collect();
        let s = vec![
            series(
                "head 0",
                x.clone(),
                x.iter().map(|b| 40.0 / (1.0 + b)).collect(),
            ),
            series(
                "head 1",
                x.clone(),
                x.iter().map(|b| 30.0 / (1.0 + 2.0 * b)).collect(),
            ),
        ];
        let stem = dir.path().join("active");
        line_plot(&stem, &line("Active tokens", &s, true, false)).expect("line plot");
        check_pair(&stem, "Active tokens");
        only_pair(dir.path(), "active");
    }

    #[test]
    fn line_plot_log_y_and_many_series() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s: Vec<Series> = (0..40)
            .map(|k| {
                let x: Vec<f64> = (0..50).map(|i| i as f64 * 0.1).collect();
                let y = x.iter().map(|t| (-(k as f64 + 1.0) * t).exp()).collect();
                series(&format!("token {k}"), x, y)
            })
            .collect();
        let stem = dir.path().join("subopt");
        line_plot(&stem, &line("Suboptimality", &s, false, true)).expect("line plot");
        check_pair(&stem, "Suboptimality");
        let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
        assert!(
            svg.contains("(11 of 40 series shown)"),
            "legend lacks its summary line"
        );
    }

    #[test]
    fn line_plot_degenerate_inputs_do_not_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        let cases: Vec<(&str, Vec<Series>, bool, bool, &str)> = vec![
            ("no series", vec![], false, false, "no data"),
            (
                "empty series",
                vec![series("a", vec![], vec![])],
                true,
                true,
                "no data",
            ),
            (
                "nan only",
                vec![series("a", vec![nan, 1.0], vec![2.0, inf])],
                false,
                false,
                "2 non-finite points skipped",
            ),
            (
                "nonpositive on log",
                vec![series("a", vec![0.0, -1.0, 2.0], vec![1.0, 1.0, -3.0])],
                true,
                true,
                "3 points ≤ 0 skipped (log axis)",
            ),
            (
                "one point",
                vec![series("a", vec![1.0], vec![1.0])],
                true,
                true,
                "<circle",
            ),
            (
                "constant",
                vec![series("a", vec![0.0, 0.0], vec![0.0, 0.0])],
                false,
                false,
                "<polyline",
            ),
            (
                "gaps",
                vec![series(
                    "a",
                    vec![1.0, 2.0, 3.0, 4.0],
                    vec![1.0, nan, 3.0, 4.0],
                )],
                false,
                false,
                "1 non-finite point skipped",
            ),
            (
                "huge",
                vec![series("a", vec![-1e308, 1e308], vec![1e-300, 1e300])],
                false,
                true,
                "no plottable data points",
            ),
            (
                "tiny",
                vec![series("a", vec![1e-300, 2e-300], vec![1e-300, 1e299])],
                true,
                true,
                "<polyline",
            ),
        ];
        for (i, (title, s, lx, ly, expect)) in cases.iter().enumerate() {
            let stem = dir.path().join(format!("case{i}"));
            line_plot(&stem, &line(title, s, *lx, *ly)).expect(title);
            check_pair(&stem, title);
            let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
            assert!(svg.contains(expect), "{title}: SVG lacks {expect:?}");
        }
    }

    #[test]
    fn line_plot_rejects_mismatched_lengths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = vec![series("a", vec![1.0, 2.0], vec![1.0])];
        let err = line_plot(&dir.path().join("bad"), &line("bad", &s, false, false));
        assert!(matches!(err, Err(Error::Invalid(_))));
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn missing_folder_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stem = dir.path().join("no_such_dir").join("plot");
        let err = bar_plot(&stem, "t", "x", "y", &[], &[]);
        assert!(matches!(err, Err(Error::Io { .. })), "{err:?}");
    }

    #[test]
    fn heatmap_writes_png_and_svg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (rows, cols) = (4, 12);
        let values: Vec<f64> = (0..rows * cols)
            .map(|k| ((k % cols) as f64 / cols as f64) * (1.0 + (k / cols) as f64))
            .collect();
        let stem = dir.path().join("attn");
        heatmap(&stem, &heat("Attention map", rows, cols, &values)).expect("heatmap");
        check_pair(&stem, "Attention map");
        only_pair(dir.path(), "attn");
    }

    #[test]
    fn heatmap_large_signed_and_degenerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = 200;
        let values: Vec<f64> = (0..n * n)
            .map(|k| ((k / n) as f64 - (k % n) as f64) / n as f64)
            .collect();
        let stem = dir.path().join("mix");
        heatmap(&stem, &heat("Mixing matrix", n, n, &values)).expect("heatmap");
        check_pair(&stem, "Mixing matrix");

        let nan = [f64::NAN; 6];
        let cases = [
            (0, 0, &[][..], "no data"),
            (2, 3, &nan[..], "no finite values"),
            (0, 5, &[][..], "no data"),
        ];
        for (i, (rows, cols, vals, note)) in cases.into_iter().enumerate() {
            let stem = dir.path().join(format!("degenerate{i}"));
            heatmap(&stem, &heat("Degenerate", rows, cols, vals)).expect("degenerate heatmap");
            check_pair(&stem, "Degenerate");
            assert!(String::from_utf8(read(with_ext(&stem, "svg")))
                .expect("UTF-8")
                .contains(note));
        }
        let bad = heat("bad", 2, 2, &[1.0; 3]);
        assert!(matches!(
            heatmap(&dir.path().join("bad"), &bad),
            Err(Error::Invalid(_))
        ));
        let names = vec!["a".to_string()];
        let bad = Heatmap {
            row_names: Some(&names),
            ..heat("bad", 2, 2, &[1.0; 4])
        };
        assert!(matches!(
            heatmap(&dir.path().join("bad"), &bad),
            Err(Error::Invalid(_))
        ));
        assert_eq!(
            std::fs::read_dir(dir.path())
                .expect("dir")
                .filter(|e| e
                    .as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("bad")))
                .count(),
            0
        );
    }

    #[test]
    fn bar_plot_writes_png_and_svg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
        let values: Vec<f64> = (0..16).map(|i| (i as f64 - 5.0) * 0.3).collect();
        let stem = dir.path().join("norms");
        bar_plot(&stem, "Norm per token", "token", "norm", &names, &values).expect("bar");
        check_pair(&stem, "Norm per token");
        only_pair(dir.path(), "norms");

        let stem = dir.path().join("empty");
        bar_plot(&stem, "Empty bars", "token", "norm", &[], &[]).expect("empty bar");
        check_pair(&stem, "Empty bars");
        let stem = dir.path().join("nan");
        let nan_names = vec!["a".to_string(), "b".to_string()];
        bar_plot(
            &stem,
            "NaN bars",
            "token",
            "norm",
            &nan_names,
            &[f64::NAN; 2],
        )
        .expect("nan bar");
        check_pair(&stem, "NaN bars");
        let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
        assert!(svg.contains("2 non-finite values not drawn"));
        let bad = bar_plot(&dir.path().join("bad"), "t", "x", "y", &nan_names, &[1.0]);
        assert!(matches!(bad, Err(Error::Invalid(_))));
    }

    #[test]
    fn tick_labels_read_well() {
        assert_eq!(fmt_sig(0.0), "0");
        assert_eq!(fmt_sig(1234.6), "1235");
        assert_eq!(fmt_sig(0.012345), "0.0123");
        assert_eq!(fmt_sig(2.5e-7), "2.5e-7");
        assert_eq!(superscript(-12), "⁻¹²");
        let labels = |ticks: Vec<f64>, log: bool| -> Vec<String> {
            let f = tick_format(&ticks, log);
            ticks.iter().map(f).collect()
        };
        let lin = RangedCoordf64::from(-0.05..1.05).key_points(Y_LABELS);
        assert_eq!(
            labels(lin, false),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        let log =
            log_axis(10f64.powf(-3.2), 10f64.powf(2.1), X_LABELS).key_points(BoldPoints(X_LABELS));
        assert_eq!(
            labels(log, true),
            ["0.001", "0.01", "0.1", "1", "10", "100"]
        );
        let log = log_axis(1e-9, 1e-1, X_LABELS).key_points(BoldPoints(X_LABELS));
        let far = labels(log, true);
        assert!(
            far.len() >= 3 && far.iter().all(|s| s.starts_with("10⁻")),
            "{far:?}"
        );
        // Less than a decade: 1-2-5 ticks, or every digit.
        let log =
            log_axis(10f64.powf(0.1), 10f64.powf(0.6), X_LABELS).key_points(BoldPoints(X_LABELS));
        assert!(labels(log, true).len() >= 3);
    }

    /// Blank columns between inked columns of `pixels`, left to right.
    fn gaps(pixels: &[(i32, i32)]) -> Vec<i32> {
        let cols: std::collections::BTreeSet<i32> = pixels.iter().map(|p| p.0).collect();
        cols.iter()
            .zip(cols.iter().skip(1))
            .map(|(a, b)| b - a - 1)
            .filter(|&g| g > 0)
            .collect()
    }

    /// Pixels (coverage over 1/4) of `text` drawn on a bitmap through `Crisp`
    /// (or through plain plotters), anchored left/top at (20, 20).
    fn drawn(text: &str, px: u32, crisp: bool) -> Vec<(i32, i32)> {
        font().expect("font");
        let (w, h) = (400u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        let style = TextStyle::from((FONT, px).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
        let text = Text::new(text, (20, 20), style);
        if crisp {
            let root = Crisp(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
            root.draw(&text).expect("draw");
        } else {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.draw(&text).expect("draw");
        }
        let ink = |i: usize| buf[3 * i] < 192;
        (0..(w * h) as usize)
            .filter(|&i| ink(i))
            .map(|i| ((i as u32 % w) as i32, (i as u32 / w) as i32))
            .collect()
    }

    #[test]
    fn title_text_is_laid_out_without_gaps() {
        // Inside a word glyphs are at most a couple of pixels apart: the one
        // wide gap is the space. (Hand-placed glyphs gave "To ken".)
        let pixels = drawn("Token sparsity", TITLE_PX, true);
        let g = gaps(&pixels);
        assert_eq!(g.iter().filter(|&&g| g > 3).count(), 1, "gaps {g:?}");
        // The kerned word is as wide as ab_glyph's layout says.
        let f = font().expect("font").as_scaled(TITLE_PX as f32);
        let ids: Vec<_> = "Token".chars().map(|c| f.glyph_id(c)).collect();
        let advance: f32 = ids.iter().map(|&g| f.h_advance(g)).sum::<f32>()
            + ids.windows(2).map(|w| f.kern(w[0], w[1])).sum::<f32>();
        let word = drawn("Token", TITLE_PX, true);
        let (lo, hi) = (
            word.iter().map(|p| p.0).min(),
            word.iter().map(|p| p.0).max(),
        );
        let width = (hi.unwrap_or(0) - lo.unwrap_or(0) + 1) as f32;
        assert!(
            (width - advance).abs() <= 3.0,
            "ink {width} px, advance {advance} px"
        );
        // The anchor is the top left of the capitals.
        let top = word.iter().map(|p| p.1).min().unwrap_or(0);
        assert!(
            (19..=21).contains(&lo.unwrap_or(0)) && (19..=21).contains(&top),
            "{lo:?} {top}"
        );
    }
}
