//! The project's small plotting library: line plots, heatmaps and bar plots.
//!
//! Every function takes a path *stem* (`out`, without extension) and writes
//! exactly two files, `out.png` (900×600 px) and `out.svg`, or neither: both
//! pictures are drawn in memory first, then written.
//!
//! Text is drawn with DejaVu Sans, embedded from `assets/DejaVuSans.ttf` and
//! registered once as the "sans-serif" family, so no system font is needed.
//!
//! Data are taken as they come: non-finite values (and values ≤ 0 on a log
//! axis) are skipped, with a note on the picture saying how many; a plot with
//! nothing left to draw is still written, as an empty chart with a note.
//! Only inconsistent inputs (mismatched lengths) are errors.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};

use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
/// At most this many series get their own legend entry.
const MAX_LEGEND: usize = 12;
const NOTE_COLOR: RGBColor = RGBColor(90, 90, 90);

static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static FONT_INIT: Once = Once::new();
static FONT_OK: AtomicBool = AtomicBool::new(false);

/// Registers the embedded DejaVu Sans as "sans-serif", once per process.
fn ensure_font() -> Result<()> {
    FONT_INIT.call_once(|| {
        let ok = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok();
        FONT_OK.store(ok, Ordering::Release);
    });
    if FONT_OK.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(Error::Invalid(
            "the embedded font assets/DejaVuSans.ttf could not be parsed; restore it from the repository".into(),
        ))
    }
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
    render(out, &LineFigure(p))
}

/// Writes `out.png` and `out.svg`: a heatmap of `h.values`.
///
/// Errors: [`Error::Invalid`] when `values`, `row_names` or `col_names` do not
/// match `rows × cols`; [`Error::Io`] when a file cannot be written.
pub fn heatmap(out: &Path, h: &Heatmap) -> Result<()> {
    let n = h.rows.checked_mul(h.cols).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: heatmap of {} × {} cells is too large",
            out.display(),
            h.rows,
            h.cols
        ))
    })?;
    if h.values.len() != n {
        return Err(Error::Invalid(format!(
            "{}: heatmap of {} × {} cells needs {} values, got {}",
            out.display(),
            h.rows,
            h.cols,
            n,
            h.values.len()
        )));
    }
    for (what, names, want) in [
        ("row_names", h.row_names, h.rows),
        ("col_names", h.col_names, h.cols),
    ] {
        if let Some(names) = names {
            if names.len() != want {
                return Err(Error::Invalid(format!(
                    "{}: heatmap {what} has {} names for {want} entries",
                    out.display(),
                    names.len()
                )));
            }
        }
    }
    render(out, &HeatmapFigure(h))
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
    render(
        out,
        &BarFigure {
            title,
            x_label,
            y_label,
            names,
            values,
        },
    )
}

// ---------------------------------------------------------------------------
// Rendering to both formats
// ---------------------------------------------------------------------------

type DrawResult = std::result::Result<(), String>;

/// Something that can draw itself on any plotters backend.
trait Figure {
    /// `fix`: draw text glyph by glyph with bearings restored (bitmaps).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, fix: bool) -> DrawResult;
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

/// Draws `fig` as SVG and as a bitmap in memory, then writes both files.
fn render<F: Figure>(out: &Path, fig: &F) -> Result<()> {
    ensure_font()?;
    let png_path = with_ext(out, "png");
    let svg_path = with_ext(out, "svg");

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        fig.draw(&root, false).map_err(|e| draw_err(&svg_path, e))?;
        root.present().map_err(|e| draw_err(&svg_path, de(e)))?;
    }

    let mut pixels = vec![255u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        fig.draw(&root, true).map_err(|e| draw_err(&png_path, e))?;
        root.present().map_err(|e| draw_err(&png_path, de(e)))?;
    }

    write_png(&png_path, &pixels)?;
    std::fs::write(&svg_path, svg).map_err(|e| io_err(&svg_path, e))
}

/// Encodes an RGB buffer of [`SIZE`] as a PNG file.
fn write_png(path: &Path, pixels: &[u8]) -> Result<()> {
    // Creating the file first gives a plain I/O error (missing folder, no
    // permission) that names the path; the encoder then overwrites it.
    std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    let mut backend = BitMapBackend::new(path, SIZE);
    backend
        .blit_bitmap((0, 0), SIZE, pixels)
        .map_err(|e| draw_err(path, de(e)))?;
    backend
        .present()
        .map_err(|e| io_err(path, std::io::Error::other(e.to_string())))
}

// ---------------------------------------------------------------------------
// Axes: a linear coordinate with our own ticks and labels
// ---------------------------------------------------------------------------

/// A linear axis from `lo` to `hi` (either order) with given tick positions.
/// Log axes are drawn as linear axes over log10 of the data.
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let t = if span != 0.0 {
            (v - self.lo) / span
        } else {
            0.5
        };
        // Far-off or NaN values must not overflow the pixel arithmetic.
        let t = if t.is_finite() {
            t.clamp(-4.0, 5.0)
        } else {
            0.0
        };
        let px = f64::from(limit.0) + t * f64::from(limit.1 - limit.0);
        px.round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// How tick values are written.
#[derive(Debug, Clone, Copy)]
enum LabelStyle {
    /// Fixed number of decimals.
    Fixed(usize),
    /// Scientific notation with this many mantissa decimals.
    Sci(usize),
    /// Powers of ten written out: 0.01, 0.1, 1, 10.
    Pow10Plain,
    /// Powers of ten as 10⁻⁵.
    Pow10Sup,
    /// Three significant digits.
    Sig,
}

/// Turns an axis coordinate into tick label text.
#[derive(Debug, Clone, Copy)]
struct Labeler {
    log: bool,
    style: LabelStyle,
}

impl Labeler {
    fn label(&self, t: f64) -> String {
        let v = if self.log { 10f64.powf(t) } else { t };
        match self.style {
            LabelStyle::Fixed(d) => {
                let s = format!("{v:.d$}");
                // "-0.0" → "0.0"
                if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
                    s[1..].to_string()
                } else {
                    s
                }
            }
            LabelStyle::Sci(d) => format!("{v:.d$e}"),
            LabelStyle::Pow10Plain => {
                let k = t.round() as i32;
                if k < 0 {
                    format!("{:.*}", (-k) as usize, 10f64.powi(k))
                } else {
                    format!("{:.0}", 10f64.powi(k))
                }
            }
            LabelStyle::Pow10Sup => format!("10{}", superscript(t.round() as i64)),
            LabelStyle::Sig => fmt_sig(v),
        }
    }
}

fn superscript(k: i64) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut s = String::new();
    if k < 0 {
        s.push('⁻');
    }
    for c in k.unsigned_abs().to_string().chars() {
        s.push(DIGITS[c.to_digit(10).unwrap_or(0) as usize]);
    }
    s
}

/// A number with about three significant digits, plain or scientific.
fn fmt_sig(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let d = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.d$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s == "-0" {
            "0".into()
        } else {
            s
        }
    } else {
        let s = format!("{v:.2e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let m = if m.contains('.') {
                    m.trim_end_matches('0').trim_end_matches('.')
                } else {
                    m
                };
                format!("{m}e{e}")
            }
            None => s,
        }
    }
}

/// A 1-2-5 step giving about `target` intervals over `span`.
fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Multiples of `step` within `[lo, hi]` (at most a few hundred).
fn multiples(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let first = (lo / step - 1e-9).ceil();
    let last = (hi / step + 1e-9).floor();
    if !(first.is_finite() && last.is_finite()) || last - first > 500.0 {
        return vec![];
    }
    let mut out = vec![];
    let mut k = first;
    while k <= last {
        let v = k * step;
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        k += 1.0;
    }
    out
}

/// Ticks and label style for a linear axis over `[lo, hi]`.
fn linear_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, Vec<f64>, LabelStyle) {
    let step = nice_step(hi - lo, target);
    let bold = multiples(lo, hi, step);
    let mant = (step / 10f64.powf(step.log10().floor())).round();
    let minor = step / if mant == 2.0 { 4.0 } else { 5.0 };
    let light = multiples(lo, hi, minor);
    let max_abs = lo.abs().max(hi.abs());
    let step_exp = step.log10().floor() as i32;
    let style = if max_abs >= 1e5 || (max_abs < 1e-3 && max_abs > 0.0) {
        let top_exp = max_abs.log10().floor() as i32;
        LabelStyle::Sci((top_exp - step_exp).clamp(0, 6) as usize)
    } else {
        LabelStyle::Fixed((-step_exp).max(0) as usize)
    };
    (bold, light, style)
}

/// Ticks and label style for a log axis over `[lo, hi]` in log10 units.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>, LabelStyle) {
    let k0 = (lo - 1e-9).ceil() as i64;
    let k1 = (hi + 1e-9).floor() as i64;
    let decades = k1 - k0 + 1;
    // All mantissas m·10^k (m = 1..9) inside the range.
    let mantissa_ticks = |ms: &[f64]| -> Vec<f64> {
        let mut v = vec![];
        let (a, b) = (lo.floor() as i64, hi.ceil() as i64);
        if b - a > 400 {
            return v;
        }
        for k in a..=b {
            for &m in ms {
                let t = m.log10() + k as f64;
                if t >= lo - 1e-9 && t <= hi + 1e-9 {
                    v.push(t);
                }
            }
        }
        v
    };
    let all_mantissas = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    if decades >= 2 {
        let stride = ((decades as f64) / 8.0).ceil().max(1.0) as i64;
        let bold: Vec<f64> = (k0..=k1)
            .filter(|k| k.rem_euclid(stride) == 0)
            .map(|k| k as f64)
            .collect();
        let light = if stride == 1 {
            mantissa_ticks(&all_mantissas)
        } else {
            (k0..=k1).map(|k| k as f64).collect()
        };
        let plain = bold.iter().all(|&k| (-3.0..=4.0).contains(&k));
        let style = if plain {
            LabelStyle::Pow10Plain
        } else {
            LabelStyle::Pow10Sup
        };
        return (bold, light, style);
    }
    // Less than two decades: label 1-2-5 mantissas, or every mantissa.
    let light = mantissa_ticks(&all_mantissas);
    let bold = mantissa_ticks(&[1.0, 2.0, 5.0]);
    if bold.len() >= 3 {
        return (bold, light, LabelStyle::Sig);
    }
    if light.len() >= 3 {
        return (light.clone(), light, LabelStyle::Sig);
    }
    // Very narrow range: linear ticks in data units, placed at their log10.
    let (vlo, vhi) = (10f64.powf(lo), 10f64.powf(hi));
    let lin: Vec<f64> = multiples(vlo, vhi, nice_step(vhi - vlo, 8))
        .into_iter()
        .filter(|&v| v > 0.0)
        .map(f64::log10)
        .collect();
    (lin, vec![], LabelStyle::Sig)
}

/// Padded axis limits for data spanning `[lo, hi]` (in axis units).
fn padded(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    let span = hi - lo;
    if span > 1e-12 * lo.abs().max(hi.abs()) && span.is_finite() {
        (lo - 0.05 * span, hi + 0.05 * span)
    } else if log {
        (lo - 0.5, hi + 0.5)
    } else if lo == 0.0 {
        (-1.0, 1.0)
    } else {
        let pad = 0.1 * lo.abs();
        (lo - pad, hi + pad)
    }
}

/// The axis (ticks included) and its labeler for data in `[lo, hi]`.
fn make_axis(range: Option<(f64, f64)>, log: bool, target: usize) -> (Axis, Labeler) {
    let (lo, hi) = match range {
        Some((a, b)) => padded(a, b, log),
        None if log => (0.0, 1.0),
        None => (0.0, 1.0),
    };
    let (bold, light, style) = if log {
        log_ticks(lo, hi)
    } else {
        linear_ticks(lo, hi, target)
    };
    (
        Axis {
            lo,
            hi,
            bold,
            light,
        },
        Labeler { log, style },
    )
}

// ---------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------
//
// plotters 0.3.7 renders ab_glyph text one glyph at a time at the pen
// position but drops each glyph's left side bearing, so glyphs with a wide
// bearing ("1", "m") land too far left ("token 1 0", "m ore"). In bitmaps we
// therefore draw text glyph by glyph, each shifted by its bearing, read from
// the `hmtx` table of the embedded font. SVG text is laid out by the viewer,
// so there it is drawn whole. All text goes through [`Painter::text`].

/// What the glyph-by-glyph drawing needs from the font file.
struct FontMetrics {
    /// Offset of the `cmap` format-4 subtable (Unicode BMP).
    cmap4: usize,
    /// Offset of the `hmtx` table.
    hmtx: usize,
    /// Number of full (advance, bearing) records in `hmtx`.
    num_h: usize,
    /// ascent − descent in font units: ab_glyph scales this to the pixel size.
    height: f64,
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn rd32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Offset of the table `tag` in a TrueType file.
fn find_table(b: &[u8], tag: &[u8; 4]) -> Option<usize> {
    let n = usize::from(rd16(b, 4)?);
    (0..n).find_map(|i| {
        let rec = 12 + 16 * i;
        if b.get(rec..rec + 4)? == tag {
            Some(rd32(b, rec + 8)? as usize)
        } else {
            None
        }
    })
}

fn parse_metrics(b: &[u8]) -> Option<FontMetrics> {
    let hhea = find_table(b, b"hhea")?;
    let ascent = f64::from(rd16(b, hhea + 4)? as i16);
    let descent = f64::from(rd16(b, hhea + 6)? as i16);
    let num_h = usize::from(rd16(b, hhea + 34)?);
    let hmtx = find_table(b, b"hmtx")?;
    let cmap = find_table(b, b"cmap")?;
    let n = usize::from(rd16(b, cmap + 2)?);
    let cmap4 = (0..n).find_map(|i| {
        let rec = cmap + 4 + 8 * i;
        let (platform, encoding) = (rd16(b, rec)?, rd16(b, rec + 2)?);
        let sub = cmap + rd32(b, rec + 4)? as usize;
        let unicode = (platform == 3 && encoding == 1) || platform == 0;
        (unicode && rd16(b, sub)? == 4).then_some(sub)
    })?;
    let height = ascent - descent;
    (height > 0.0).then_some(FontMetrics {
        cmap4,
        hmtx,
        num_h,
        height,
    })
}

impl FontMetrics {
    /// Glyph index of `c` (format-4 cmap lookup).
    fn glyph(&self, c: char) -> Option<u16> {
        let b = FONT_BYTES;
        let code = u16::try_from(u32::from(c)).ok()?;
        let sub = self.cmap4;
        let seg_x2 = usize::from(rd16(b, sub + 6)?);
        let ends = sub + 14;
        let starts = ends + seg_x2 + 2;
        let deltas = starts + seg_x2;
        let ranges = deltas + seg_x2;
        for s in (0..seg_x2).step_by(2) {
            if code > rd16(b, ends + s)? {
                continue;
            }
            let start = rd16(b, starts + s)?;
            if code < start {
                return None;
            }
            let delta = rd16(b, deltas + s)?;
            let range = usize::from(rd16(b, ranges + s)?);
            if range == 0 {
                return Some(code.wrapping_add(delta));
            }
            let at = ranges + s + range + 2 * usize::from(code - start);
            let g = rd16(b, at)?;
            return (g != 0).then(|| g.wrapping_add(delta));
        }
        None
    }

    /// Left side bearing of `c` in font units (0 when unknown).
    fn bearing(&self, c: char) -> i32 {
        let Some(g) = self.glyph(c) else { return 0 };
        let g = usize::from(g);
        let at = if g < self.num_h {
            self.hmtx + 4 * g + 2
        } else {
            self.hmtx + 4 * self.num_h + 2 * (g - self.num_h)
        };
        rd16(FONT_BYTES, at).map_or(0, |v| i32::from(v as i16))
    }
}

fn font_metrics() -> Option<&'static FontMetrics> {
    static METRICS: OnceLock<Option<FontMetrics>> = OnceLock::new();
    METRICS.get_or_init(|| parse_metrics(FONT_BYTES)).as_ref()
}

/// Size, color, anchor and direction of a text.
#[derive(Clone, Copy)]
struct Txt {
    px: u32,
    color: RGBColor,
    h: HPos,
    v: VPos,
    /// Reads bottom to top (rotated 270°).
    vertical: bool,
}

impl Txt {
    fn new(px: u32, h: HPos, v: VPos) -> Self {
        Txt {
            px,
            color: BLACK,
            h,
            v,
            vertical: false,
        }
    }

    fn color(self, color: RGBColor) -> Self {
        Txt { color, ..self }
    }

    fn vertical(self) -> Self {
        Txt {
            vertical: true,
            ..self
        }
    }
}

/// Draws text on the whole picture, in absolute pixel coordinates.
struct Painter<'r, DB: DrawingBackend> {
    root: &'r DrawingArea<DB, Shift>,
    /// Draw glyph by glyph with their bearings restored (bitmaps).
    fix: bool,
}

impl<DB: DrawingBackend> Painter<'_, DB> {
    /// Width in pixels of `text` at `px` size, as plotters lays it out.
    fn width(&self, text: &str, px: u32) -> i32 {
        if text.is_empty() {
            return 0;
        }
        let style = TextStyle::from((FONT, px).into_font());
        match self.root.estimate_text_size(text, &style) {
            Ok((w, _)) => w as i32,
            Err(_) => (text.chars().count() as f64 * f64::from(px) * 0.6) as i32,
        }
    }

    fn text(&self, pos: (i32, i32), text: &str, t: Txt) -> DrawResult {
        if text.is_empty() {
            return Ok(());
        }
        let mut style = TextStyle::from((FONT, t.px).into_font()).color(&t.color);
        if t.vertical {
            style = style.transform(FontTransform::Rotate270);
        }
        let metrics = match font_metrics() {
            Some(m) if self.fix => m,
            _ => {
                let style = style.pos(Pos::new(t.h, t.v));
                return self
                    .root
                    .draw(&Text::new(text.to_string(), pos, style))
                    .map_err(de);
            }
        };
        // The anchor offset plotters would apply to the whole string.
        let width = self.width(text, t.px);
        let height = (f64::from(t.px) / 1.24) as i32;
        let dx = match t.h {
            HPos::Left => 0,
            HPos::Center => -width / 2,
            HPos::Right => -width,
        };
        // plotters puts the baseline at `size / 2` below the layout box top,
        // which leaves text high; these shifts center digits and capitals
        // on a `Center` anchor and put their tops at a `Top` anchor.
        let px = f64::from(t.px);
        let dy = match t.v {
            VPos::Top => (0.12 * px).round() as i32,
            VPos::Center => -height / 2 + (0.21 * px).round() as i32,
            VPos::Bottom => -height,
        };
        let style = style.pos(Pos::new(HPos::Left, VPos::Top));
        let scale = f64::from(t.px) / metrics.height;
        for (i, c) in text.char_indices() {
            if c.is_whitespace() {
                continue;
            }
            let pen = self.width(&text[..i], t.px);
            let bearing = (f64::from(metrics.bearing(c)) * scale).floor() as i32;
            let along = dx + pen + bearing;
            // Rotate270 maps text-space (x, y) to (y, −x).
            let at = if t.vertical {
                (pos.0 + dy, pos.1 - along)
            } else {
                (pos.0 + along, pos.1 + dy)
            };
            self.root
                .draw(&Text::new(c.to_string(), at, style.clone()))
                .map_err(de)?;
        }
        Ok(())
    }

    /// `msg` centered in the plotting area `area`.
    fn center_note(&self, area: &(Range<i32>, Range<i32>), msg: &str) -> DrawResult {
        let (xr, yr) = area;
        let c = ((xr.start + xr.end) / 2, (yr.start + yr.end) / 2);
        let t = Txt::new(DESC_PX, HPos::Center, VPos::Center).color(NOTE_COLOR);
        self.text(c, msg, t)
    }

    /// Small notes in the bottom-right corner of the picture, one per line.
    fn corner_notes(&self, notes: &[String]) -> DrawResult {
        let (w, h) = self.root.dim_in_pixel();
        let n = notes.len() as i32;
        let t = Txt::new(NOTE_PX, HPos::Right, VPos::Bottom).color(NOTE_COLOR);
        for (i, note) in notes.iter().enumerate() {
            let y = h as i32 - 5 - (n - 1 - i as i32) * (NOTE_PX as i32 + 4);
            self.text((w as i32 - 8, y), note, t)?;
        }
        Ok(())
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

// ---------------------------------------------------------------------------
// The chart frame: axes, grid, ticks, tick labels, axis names and title
// ---------------------------------------------------------------------------

const MARGIN_TOP: i32 = 52;
const MARGIN_LEFT: i32 = 10;
const MARGIN_RIGHT: i32 = 26;
const MARGIN_BOTTOM: i32 = 10;
const X_AREA: i32 = 62;
const TICK_LEN: i32 = 5;

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

/// A chart's axes and texts; plotters draws grid and ticks, we draw the text.
struct Frame<'t> {
    title: &'t str,
    x_desc: &'t str,
    y_desc: &'t str,
    x: Axis,
    y: Axis,
    /// One label per bold tick of `x` and of `y`.
    x_labels: Vec<String>,
    y_labels: Vec<String>,
    x_mesh: bool,
    y_mesh: bool,
    /// Extra room on the right (for a color bar).
    right: i32,
}

impl Frame<'_> {
    /// Width of the area left of the plot: tick labels plus the axis name.
    fn y_area<DB: DrawingBackend>(&self, pt: &Painter<DB>) -> i32 {
        let widest = self
            .y_labels
            .iter()
            .map(|s| pt.width(s, TICK_PX))
            .max()
            .unwrap_or(0);
        (widest + TICK_LEN + 8 + DESC_PX as i32 + 14).clamp(50, 240)
    }

    /// Size in pixels of the plotting area for a given `y_area`.
    fn plot_size(y_area: i32, right: i32) -> (f64, f64) {
        let w = SIZE.0 as i32 - MARGIN_LEFT - y_area - MARGIN_RIGHT - right;
        let h = SIZE.1 as i32 - MARGIN_TOP - X_AREA - MARGIN_BOTTOM;
        (f64::from(w.max(1)), f64::from(h.max(1)))
    }

    fn build<'a, DB: DrawingBackend>(
        &self,
        root: &'a DrawingArea<DB, Shift>,
        pt: &Painter<DB>,
    ) -> std::result::Result<Chart<'a, DB>, String> {
        let y_area = self.y_area(pt);
        let mut chart = ChartBuilder::on(root)
            .margin_top(MARGIN_TOP)
            .margin_left(MARGIN_LEFT)
            .margin_right(MARGIN_RIGHT + self.right)
            .margin_bottom(MARGIN_BOTTOM)
            .x_label_area_size(X_AREA)
            .y_label_area_size(y_area)
            .build_cartesian_2d(self.x.clone(), self.y.clone())
            .map_err(de)?;
        let hidden = TextStyle::from((FONT, TICK_PX).into_font()).color(&TRANSPARENT);
        let mut mesh = chart.configure_mesh();
        if !self.x_mesh {
            mesh.disable_x_mesh();
        }
        if !self.y_mesh {
            mesh.disable_y_mesh();
        }
        mesh.label_style(hidden)
            .set_all_tick_mark_size(TICK_LEN)
            .axis_style(BLACK.mix(0.8))
            .bold_line_style(BLACK.mix(0.15))
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(de)?;

        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let tick = Txt::new(TICK_PX, HPos::Center, VPos::Top);
        for (t, s) in self.x.bold.iter().zip(&self.x_labels) {
            let px = chart.backend_coord(&(*t, self.y.lo)).0;
            if px >= xr.start && px <= xr.end {
                pt.text((px, yr.end + TICK_LEN + 5), s, tick)?;
            }
        }
        let tick = Txt::new(TICK_PX, HPos::Right, VPos::Center);
        for (t, s) in self.y.bold.iter().zip(&self.y_labels) {
            let py = chart.backend_coord(&(self.x.lo, *t)).1;
            if py >= yr.start && py <= yr.end {
                pt.text((xr.start - TICK_LEN - 6, py), s, tick)?;
            }
        }
        let mid_x = (xr.start + xr.end) / 2;
        let mid_y = (yr.start + yr.end) / 2;
        let desc = Txt::new(DESC_PX, HPos::Center, VPos::Top);
        pt.text((mid_x, yr.end + TICK_LEN + 30), self.x_desc, desc)?;
        pt.text((xr.start - y_area + 4, mid_y), self.y_desc, desc.vertical())?;

        // The title is centered over the plot, but kept inside the picture.
        let tw = pt.width(self.title, TITLE_PX);
        let half = tw / 2;
        let cx = mid_x.clamp(8 + half, (SIZE.0 as i32 - 8 - half).max(8 + half));
        let title = Txt::new(TITLE_PX, HPos::Center, VPos::Top);
        pt.text((cx, 14), self.title, title)?;
        Ok(chart)
    }
}

// ---------------------------------------------------------------------------
// Line plot
// ---------------------------------------------------------------------------

/// Tableau 10, then evenly spaced hues for many series.
fn series_color(i: usize, n: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    if n <= TAB10.len() {
        let (r, g, b) = TAB10[i % TAB10.len()];
        RGBColor(r, g, b)
    } else {
        let (r, g, b) = HSLColor(0.8 * i as f64 / (n - 1) as f64, 0.8, 0.42).rgb();
        RGBColor(r, g, b)
    }
}

struct LineFigure<'p, 'a>(&'p LinePlot<'a>);

/// The plottable runs of one series (axis units), split at skipped points.
struct Prepared {
    runs: Vec<Vec<(f64, f64)>>,
    non_finite: usize,
    non_positive: usize,
}

fn prepare_series(s: &Series, log_x: bool, log_y: bool) -> Prepared {
    let mut p = Prepared {
        runs: vec![],
        non_finite: 0,
        non_positive: 0,
    };
    let usable = |v: f64| v.is_finite() && v.abs() < 1e300;
    let mut run = vec![];
    for (&x, &y) in s.x.iter().zip(&s.y) {
        let point = if !(usable(x) && usable(y)) {
            p.non_finite += 1;
            None
        } else if (log_x && x <= 0.0) || (log_y && y <= 0.0) {
            p.non_positive += 1;
            None
        } else {
            let tx = if log_x { x.log10() } else { x };
            let ty = if log_y { y.log10() } else { y };
            Some((tx, ty))
        };
        match point {
            Some(pt) => run.push(pt),
            None => {
                if !run.is_empty() {
                    p.runs.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        p.runs.push(run);
    }
    p
}

fn min_max(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((a, b)) => Some((a.min(v), b.max(v))),
    })
}

/// Top-left corner of a `w × h` legend box in the corner of `area` where it
/// covers the fewest `samples` (upper right preferred on ties).
fn legend_origin(
    samples: &[(i32, i32)],
    area: &(Range<i32>, Range<i32>),
    w: i32,
    h: i32,
) -> (i32, i32) {
    let (xr, yr) = area;
    let left = xr.start + 10;
    let right = xr.end - 10 - w;
    let top = yr.start + 10;
    let bottom = yr.end - 10 - h;
    let corners = [(right, top), (left, top), (right, bottom), (left, bottom)];
    let covered = |&(x, y): &(i32, i32)| {
        samples
            .iter()
            .filter(|(sx, sy)| (x - 4..x + w + 4).contains(sx) && (y - 4..y + h + 4).contains(sy))
            .count()
    };
    let mut best = corners[0];
    let mut best_count = usize::MAX;
    for c in corners {
        let n = covered(&c);
        if n < best_count {
            best = c;
            best_count = n;
        }
    }
    best
}

/// Indices of the series that get a legend entry: all, or an even spread.
fn legend_indices(n: usize) -> Vec<usize> {
    if n <= MAX_LEGEND {
        (0..n).collect()
    } else {
        let k = MAX_LEGEND - 1;
        (0..k).map(|j| j * (n - 1) / (k - 1)).collect()
    }
}

impl Figure for LineFigure<'_, '_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, fix: bool) -> DrawResult {
        let p = self.0;
        let pt = Painter { root, fix };
        root.fill(&WHITE).map_err(de)?;
        let prepared: Vec<Prepared> = p
            .series
            .iter()
            .map(|s| prepare_series(s, p.log_x, p.log_y))
            .collect();
        let all = || prepared.iter().flat_map(|s| s.runs.iter().flatten());
        let x_range = min_max(all().map(|pt| pt.0));
        let y_range = min_max(all().map(|pt| pt.1));
        let (x, x_fmt) = make_axis(x_range, p.log_x, 8);
        let (y, y_fmt) = make_axis(y_range, p.log_y, 7);
        let frame = Frame {
            title: p.title,
            x_desc: p.x_label,
            y_desc: p.y_label,
            x_labels: x.bold.iter().map(|&t| x_fmt.label(t)).collect(),
            y_labels: y.bold.iter().map(|&t| y_fmt.label(t)).collect(),
            x,
            y,
            x_mesh: true,
            y_mesh: true,
            right: 0,
        };
        let mut chart = frame.build(root, &pt)?;

        let n = p.series.len();
        let mut samples = vec![];
        for (i, prep) in prepared.iter().enumerate() {
            let color = series_color(i, n);
            let line = color.stroke_width(2);
            for run in &prep.runs {
                chart
                    .draw_series(LineSeries::new(run.iter().copied(), line))
                    .map_err(de)?;
                if p.points || run.len() == 1 {
                    chart
                        .draw_series(run.iter().map(|&pt| Circle::new(pt, 3, color.filled())))
                        .map_err(de)?;
                }
                // Pixel samples along the line, to place the legend.
                let px: Vec<(i32, i32)> = run.iter().map(|pt| chart.backend_coord(pt)).collect();
                samples.extend(px.iter().copied());
                for w in px.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    let len = (b.0 - a.0).abs() + (b.1 - a.1).abs();
                    let k = (len / 6).clamp(1, 300);
                    for j in 1..k {
                        samples.push((a.0 + (b.0 - a.0) * j / k, a.1 + (b.1 - a.1) * j / k));
                    }
                }
            }
        }

        let area = chart.plotting_area().get_pixel_range();
        if x_range.is_none() {
            let msg = if p.series.iter().all(|s| s.x.is_empty()) {
                "no data"
            } else {
                "no plottable data points"
            };
            pt.center_note(&area, msg)?;
        }

        // Legend: (label, color); a None color is a line of text only.
        let mut entries: Vec<(String, Option<RGBColor>)> = legend_indices(n)
            .into_iter()
            .filter(|&i| !p.series[i].name.is_empty())
            .map(|i| (truncate(&p.series[i].name, 40), Some(series_color(i, n))))
            .collect();
        if n > MAX_LEGEND && !entries.is_empty() {
            entries.push((format!("({} of {n} series shown)", entries.len()), None));
        }
        if !entries.is_empty() {
            let row = LEGEND_PX as i32 + 7;
            let pad = 8;
            let text_w = entries
                .iter()
                .map(|(s, _)| pt.width(s, LEGEND_PX))
                .max()
                .unwrap_or(0);
            let w = 2 * pad + 28 + text_w;
            let h = 2 * pad + row * entries.len() as i32 - 4;
            let (x0, y0) = legend_origin(&samples, &area, w, h);
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + w, y0 + h)],
                WHITE.mix(0.88).filled(),
            ))
            .map_err(de)?;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + w, y0 + h)],
                BLACK.mix(0.35).stroke_width(1),
            ))
            .map_err(de)?;
            for (k, (name, color)) in entries.iter().enumerate() {
                let yc = y0 + pad + row * k as i32 + row / 2 - 2;
                let text_x = match color {
                    Some(c) => {
                        root.draw(&PathElement::new(
                            vec![(x0 + pad, yc), (x0 + pad + 20, yc)],
                            c.stroke_width(3),
                        ))
                        .map_err(de)?;
                        x0 + pad + 28
                    }
                    None => x0 + pad,
                };
                let t = Txt::new(LEGEND_PX, HPos::Left, VPos::Center);
                let t = if color.is_some() {
                    t
                } else {
                    t.color(NOTE_COLOR)
                };
                pt.text((text_x, yc), name, t)?;
            }
        }

        let non_finite: usize = prepared.iter().map(|s| s.non_finite).sum();
        let non_positive: usize = prepared.iter().map(|s| s.non_positive).sum();
        let mut notes = vec![];
        if non_finite > 0 {
            notes.push(format!(
                "{} skipped",
                plural(non_finite, "non-finite point", "non-finite points")
            ));
        }
        if non_positive > 0 {
            notes.push(format!(
                "{} skipped (log axis)",
                plural(non_positive, "point ≤ 0", "points ≤ 0")
            ));
        }
        pt.corner_notes(&notes)
    }
}

// ---------------------------------------------------------------------------
// Heatmap
// ---------------------------------------------------------------------------

/// How values map to colors.
#[derive(Debug, Clone, Copy)]
enum ColorScale {
    /// Blue–white–red over `[-m, m]`.
    Diverging(f64),
    /// White to red over `[0, m]`.
    Positive(f64),
    /// Blue to white over `[-m, 0]`.
    Negative(f64),
}

/// Sequential ramps from white to a dark color (ColorBrewer Reds / Blues).
const REDS: [(u8, u8, u8); 5] = [
    (255, 255, 255),
    (252, 187, 161),
    (251, 106, 74),
    (203, 24, 29),
    (103, 0, 13),
];
const BLUES: [(u8, u8, u8); 5] = [
    (255, 255, 255),
    (198, 219, 239),
    (107, 174, 214),
    (33, 113, 181),
    (8, 48, 107),
];
const NAN_COLOR: RGBColor = RGBColor(190, 190, 190);
const COLOR_BAR_AREA: i32 = 110;

/// Interpolates a ramp at `t ∈ [0, 1]`, quantized to 256 levels.
fn ramp(stops: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let t = (t.clamp(0.0, 1.0) * 255.0).round() / 255.0;
    let seg = (stops.len() - 1) as f64;
    let x = t * seg;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let lerp = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (stops[i], stops[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

impl ColorScale {
    fn for_range(min: f64, max: f64) -> Self {
        if min < 0.0 && max > 0.0 {
            ColorScale::Diverging(min.abs().max(max))
        } else if max > 0.0 {
            ColorScale::Positive(max)
        } else if min < 0.0 {
            ColorScale::Negative(-min)
        } else {
            ColorScale::Positive(1.0)
        }
    }

    /// The range `(bottom, top)` of the color bar.
    fn limits(self) -> (f64, f64) {
        match self {
            ColorScale::Diverging(m) => (-m, m),
            ColorScale::Positive(m) => (0.0, m),
            ColorScale::Negative(m) => (-m, 0.0),
        }
    }

    fn color(self, v: f64) -> RGBColor {
        if !v.is_finite() {
            return NAN_COLOR;
        }
        match self {
            ColorScale::Diverging(m) if v < 0.0 => ramp(&BLUES, -v / m),
            ColorScale::Diverging(m) => ramp(&REDS, v / m),
            ColorScale::Positive(m) => ramp(&REDS, v.max(0.0) / m),
            ColorScale::Negative(m) => ramp(&BLUES, (-v).max(0.0) / m),
        }
    }
}

struct HeatmapFigure<'h, 'a>(&'h Heatmap<'a>);

/// A 1-2-5 stride such that labels of `label_px` fit in cells of `cell_px`.
fn label_stride(label_px: f64, cell_px: f64) -> usize {
    let need = (label_px / cell_px.max(1e-3)).ceil().clamp(1.0, 1e9) as usize;
    let mut base = 1usize;
    loop {
        for m in [1, 2, 5] {
            if m * base >= need {
                return m * base;
            }
        }
        base = base.saturating_mul(10);
    }
}

/// Name of entry `i`: its given name (shortened) or its index.
fn entry_name(names: Option<&[String]>, i: usize) -> String {
    match names.and_then(|n| n.get(i)) {
        Some(s) => truncate(s, 18),
        None => i.to_string(),
    }
}

impl Figure for HeatmapFigure<'_, '_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, fix: bool) -> DrawResult {
        let h = self.0;
        let pt = Painter { root, fix };
        root.fill(&WHITE).map_err(de)?;
        let empty = h.rows == 0 || h.cols == 0;
        let finite = || h.values.iter().copied().filter(|v| v.is_finite());
        let range = min_max(finite());
        let n_nan = h.values.len() - finite().count();
        let scale = match range {
            Some((a, b)) => ColorScale::for_range(a, b),
            None => ColorScale::Positive(1.0),
        };
        let (rows, cols) = (h.rows.max(1), h.cols.max(1));

        // Which rows and columns get a label: as many as fit.
        let mut frame = Frame {
            title: h.title,
            x_desc: h.x_label,
            y_desc: h.y_label,
            x: Axis {
                lo: 0.0,
                hi: cols as f64,
                bold: vec![],
                light: vec![],
            },
            // Row 0 at the top.
            y: Axis {
                lo: rows as f64,
                hi: 0.0,
                bold: vec![],
                light: vec![],
            },
            x_labels: vec![],
            y_labels: (0..h.rows).map(|r| entry_name(h.row_names, r)).collect(),
            x_mesh: false,
            y_mesh: false,
            right: COLOR_BAR_AREA,
        };
        let (plot_w, plot_h) = Frame::plot_size(frame.y_area(&pt), COLOR_BAR_AREA);
        let col_w = (0..h.cols)
            .map(|c| pt.width(&entry_name(h.col_names, c), TICK_PX))
            .max()
            .unwrap_or(0);
        let x_stride = label_stride(f64::from(col_w + 10), plot_w / cols as f64);
        let y_stride = label_stride(f64::from(TICK_PX + 5), plot_h / rows as f64);
        let xs: Vec<usize> = (0..h.cols).step_by(x_stride).collect();
        let ys: Vec<usize> = (0..h.rows).step_by(y_stride).collect();
        frame.x.bold = xs.iter().map(|&c| c as f64 + 0.5).collect();
        frame.x_labels = xs.iter().map(|&c| entry_name(h.col_names, c)).collect();
        frame.y.bold = ys.iter().map(|&r| r as f64 + 0.5).collect();
        frame.y_labels = ys.iter().map(|&r| entry_name(h.row_names, r)).collect();
        let mut chart = frame.build(root, &pt)?;

        // Cells, merging runs of equal color within a row; white is the background.
        let mut rects = vec![];
        for r in 0..h.rows {
            let row = &h.values[r * h.cols..(r + 1) * h.cols];
            let mut c0 = 0;
            while c0 < h.cols {
                let color = scale.color(row[c0]);
                let mut c1 = c0 + 1;
                while c1 < h.cols && scale.color(row[c1]) == color {
                    c1 += 1;
                }
                if color != WHITE {
                    rects.push(Rectangle::new(
                        [(c0 as f64, r as f64), (c1 as f64, (r + 1) as f64)],
                        color.filled(),
                    ));
                }
                c0 = c1;
            }
        }
        chart.draw_series(rects).map_err(de)?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (cols as f64, rows as f64)],
                BLACK.mix(0.6).stroke_width(1),
            )))
            .map_err(de)?;

        let area = chart.plotting_area().get_pixel_range();
        if empty {
            pt.center_note(&area, "no data")?;
        } else if range.is_none() {
            pt.center_note(&area, "no finite values")?;
        }
        draw_color_bar(&pt, scale, &area)?;

        let mut notes = vec![match range {
            Some((a, b)) => format!("min {}   max {}", fmt_sig(a), fmt_sig(b)),
            None => "min –   max –".to_string(),
        }];
        if n_nan > 0 && !empty {
            notes.push(format!(
                "gray: {}",
                plural(n_nan, "non-finite cell", "non-finite cells")
            ));
        }
        pt.corner_notes(&notes)
    }
}

/// A vertical color bar right of the plot, as tall as the plot.
fn draw_color_bar<DB: DrawingBackend>(
    pt: &Painter<DB>,
    scale: ColorScale,
    plot: &(Range<i32>, Range<i32>),
) -> DrawResult {
    let root = pt.root;
    let (top, bottom) = (plot.1.start, plot.1.end);
    let x0 = plot.0.end + MARGIN_RIGHT;
    let x1 = x0 + 22;
    let (lo, hi) = scale.limits();
    let height = (bottom - top).max(2);
    let color_at = |y: i32| {
        let t = f64::from(bottom - 1 - y) / f64::from(height - 1);
        scale.color(lo + t * (hi - lo))
    };
    // One rectangle per run of equal color (the scale has 256 levels).
    let mut y0 = top;
    while y0 < bottom {
        let color = color_at(y0);
        let mut y1 = y0 + 1;
        while y1 < bottom && color_at(y1) == color {
            y1 += 1;
        }
        root.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled()))
            .map_err(de)?;
        y0 = y1;
    }
    root.draw(&Rectangle::new(
        [(x0, top), (x1, bottom)],
        BLACK.mix(0.6).stroke_width(1),
    ))
    .map_err(de)?;
    let mut ticks = vec![(hi, top), (lo, bottom - 1)];
    if let ColorScale::Diverging(_) = scale {
        ticks.push((0.0, (top + bottom) / 2));
    }
    for (v, y) in ticks {
        root.draw(&PathElement::new(
            vec![(x1, y), (x1 + 4, y)],
            BLACK.stroke_width(1),
        ))
        .map_err(de)?;
        pt.text(
            (x1 + 7, y),
            &fmt_sig(v),
            Txt::new(TICK_PX, HPos::Left, VPos::Center),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Bar plot
// ---------------------------------------------------------------------------

struct BarFigure<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    names: &'a [String],
    values: &'a [f64],
}

impl Figure for BarFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, fix: bool) -> DrawResult {
        let pt = Painter { root, fix };
        root.fill(&WHITE).map_err(de)?;
        let n = self.values.len();
        let usable = |v: f64| v.is_finite() && v.abs() < 1e300;
        let range = min_max(self.values.iter().copied().filter(|&v| usable(v)));
        let n_bad = self.values.iter().filter(|&&v| !usable(v)).count();

        // Bars start at 0: keep 0 on the axis, pad only away from it.
        let (lo, hi) = match range {
            Some((a, b)) => {
                let (a, b) = (a.min(0.0), b.max(0.0));
                let span = b - a;
                if span > 0.0 {
                    (
                        if a < 0.0 { a - 0.05 * span } else { 0.0 },
                        if b > 0.0 { b + 0.05 * span } else { 0.0 },
                    )
                } else {
                    (0.0, 1.0)
                }
            }
            None => (0.0, 1.0),
        };
        let (bold, light, style) = linear_ticks(lo, hi, 7);
        let y_fmt = Labeler { log: false, style };
        let mut frame = Frame {
            title: self.title,
            x_desc: self.x_label,
            y_desc: self.y_label,
            x: Axis {
                lo: -0.5,
                hi: n.max(1) as f64 - 0.5,
                bold: vec![],
                light: vec![],
            },
            y_labels: bold.iter().map(|&t| y_fmt.label(t)).collect(),
            y: Axis {
                lo,
                hi,
                bold,
                light,
            },
            x_labels: vec![],
            x_mesh: false,
            y_mesh: true,
            right: 0,
        };
        let (plot_w, _) = Frame::plot_size(frame.y_area(&pt), 0);
        let name_w = (0..n)
            .map(|i| pt.width(&entry_name(Some(self.names), i), TICK_PX))
            .max()
            .unwrap_or(0);
        let stride = label_stride(f64::from(name_w + 10), plot_w / n.max(1) as f64);
        let shown: Vec<usize> = (0..n).step_by(stride).collect();
        frame.x.bold = shown.iter().map(|&i| i as f64).collect();
        frame.x_labels = shown
            .iter()
            .map(|&i| entry_name(Some(self.names), i))
            .collect();
        let mut chart = frame.build(root, &pt)?;

        let half = if n > 150 { 0.5 } else { 0.4 };
        let positive = RGBColor(31, 119, 180);
        let negative = RGBColor(214, 39, 40);
        chart
            .draw_series(
                self.values
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| usable(v) && v != 0.0)
                    .map(|(i, &v)| {
                        let x = i as f64;
                        let color = if v >= 0.0 { positive } else { negative };
                        Rectangle::new([(x - half, 0.0), (x + half, v)], color.filled())
                    }),
            )
            .map_err(de)?;
        if lo < 0.0 {
            chart
                .draw_series(LineSeries::new(
                    [(-0.5, 0.0), (n.max(1) as f64 - 0.5, 0.0)],
                    BLACK.mix(0.6).stroke_width(1),
                ))
                .map_err(de)?;
        }

        let area = chart.plotting_area().get_pixel_range();
        if n == 0 {
            pt.center_note(&area, "no data")?;
        } else if range.is_none() {
            pt.center_note(&area, "no finite values")?;
        }
        let mut notes = vec![];
        if n_bad > 0 {
            notes.push(format!(
                "{} not drawn",
                plural(n_bad, "non-finite value", "non-finite values")
            ));
        }
        pt.corner_notes(&notes)
    }
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
        LinePlot {
            title,
            x_label: "beta",
            y_label: "active tokens",
            log_x,
            log_y,
            series,
            points: true,
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
    }

    #[test]
    fn line_plot_degenerate_inputs_do_not_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: Vec<(&str, Vec<Series>, bool, bool)> = vec![
            ("no series", vec![], false, false),
            (
                "empty series",
                vec![series("a", vec![], vec![])],
                true,
                true,
            ),
            (
                "nan only",
                vec![series("a", vec![f64::NAN, 1.0], vec![2.0, f64::INFINITY])],
                false,
                false,
            ),
            (
                "nonpositive on log",
                vec![series("a", vec![0.0, -1.0, 2.0], vec![1.0, 1.0, -3.0])],
                true,
                true,
            ),
            (
                "one point",
                vec![series("a", vec![1.0], vec![1.0])],
                true,
                true,
            ),
            (
                "constant",
                vec![series("a", vec![0.0, 0.0], vec![0.0, 0.0])],
                false,
                false,
            ),
            (
                "gaps",
                vec![series(
                    "a",
                    vec![1.0, 2.0, 3.0, 4.0],
                    vec![1.0, f64::NAN, 3.0, 4.0],
                )],
                false,
                false,
            ),
            (
                "huge",
                vec![series("a", vec![-1e308, 1e308], vec![1e-300, 1e300])],
                false,
                true,
            ),
        ];
        for (i, (title, s, lx, ly)) in cases.iter().enumerate() {
            let stem = dir.path().join(format!("case{i}"));
            line_plot(&stem, &line(title, s, *lx, *ly)).expect(title);
            check_pair(&stem, title);
        }
    }

    #[test]
    fn line_plot_rejects_mismatched_lengths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = vec![series("a", vec![1.0, 2.0], vec![1.0])];
        let stem = dir.path().join("bad");
        let err = line_plot(&stem, &line("bad", &s, false, false));
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
        let h = Heatmap {
            title: "Attention map",
            x_label: "token",
            y_label: "head",
            rows,
            cols,
            values: &values,
            row_names: None,
            col_names: None,
        };
        heatmap(&stem, &h).expect("heatmap");
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
        let h = Heatmap {
            title: "Mixing matrix",
            x_label: "j",
            y_label: "i",
            rows: n,
            cols: n,
            values: &values,
            row_names: None,
            col_names: None,
        };
        heatmap(&stem, &h).expect("heatmap");
        check_pair(&stem, "Mixing matrix");

        let nan = [f64::NAN; 6];
        for (i, (rows, cols, vals)) in [(0, 0, &[][..]), (2, 3, &nan[..]), (0, 5, &[][..])]
            .into_iter()
            .enumerate()
        {
            let stem = dir.path().join(format!("degenerate{i}"));
            let h = Heatmap {
                title: "Degenerate",
                x_label: "x",
                y_label: "y",
                rows,
                cols,
                values: vals,
                row_names: None,
                col_names: None,
            };
            heatmap(&stem, &h).expect("degenerate heatmap");
            check_pair(&stem, "Degenerate");
        }

        let bad = Heatmap {
            title: "bad",
            x_label: "x",
            y_label: "y",
            rows: 2,
            cols: 2,
            values: &[1.0; 3],
            row_names: None,
            col_names: None,
        };
        assert!(matches!(
            heatmap(&dir.path().join("bad"), &bad),
            Err(Error::Invalid(_))
        ));
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
            &[f64::NAN, f64::NAN],
        )
        .expect("nan bar");
        check_pair(&stem, "NaN bars");
        assert!(matches!(
            bar_plot(&dir.path().join("bad"), "t", "x", "y", &nan_names, &[1.0]),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn tick_labels_read_well() {
        assert_eq!(fmt_sig(0.0), "0");
        assert_eq!(fmt_sig(1234.6), "1235");
        assert_eq!(fmt_sig(0.012345), "0.0123");
        assert_eq!(fmt_sig(2.5e-7), "2.5e-7");
        assert_eq!(superscript(-12), "⁻¹²");
        let (bold, _, style) = linear_ticks(-0.05, 1.05, 6);
        let l = Labeler { log: false, style };
        let labels: Vec<String> = bold.iter().map(|&t| l.label(t)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let (bold, _, style) = log_ticks(-3.2, 2.1);
        let l = Labeler { log: true, style };
        let labels: Vec<String> = bold.iter().map(|&t| l.label(t)).collect();
        assert_eq!(labels, ["0.001", "0.01", "0.1", "1", "10", "100"]);
        let (bold, _, _) = log_ticks(0.1, 0.6);
        assert!(bold.len() >= 3, "{bold:?}");
    }

    /// Writes one example of each plot to $PLOT_CHECK_DIR for a visual check.
    #[test]
    fn examples_for_visual_check() {
        let Ok(dir) = std::env::var("PLOT_CHECK_DIR") else {
            return;
        };
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create dir");
        let betas: Vec<f64> = (0..40).map(|i| 10f64.powf(-3.0 + i as f64 * 0.1)).collect();
        let s: Vec<Series> = (0..3)
            .map(|h| {
                let y = betas
                    .iter()
                    .map(|b| (64.0 / (1.0 + (h as f64 + 1.0) * b * 3.0)).round())
                    .collect();
                series(&format!("head {h}"), betas.clone(), y)
            })
            .collect();
        let p = LinePlot {
            title: "Active tokens along the β path",
            x_label: "β",
            y_label: "active tokens",
            log_x: true,
            log_y: false,
            series: &s,
            points: true,
        };
        line_plot(&dir.join("line_logx"), &p).expect("line");

        let t: Vec<f64> = (0..60).map(|i| i as f64 * 0.05).collect();
        let s: Vec<Series> = ["FISTA", "working set", "screening"]
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let y = t
                    .iter()
                    .map(|t| 10f64.powf(-(k as f64 + 1.5) * t))
                    .collect();
                series(name, t.clone(), y)
            })
            .collect();
        let p = LinePlot {
            title: "Objective suboptimality",
            x_label: "time (s)",
            y_label: "P(Z) − P*",
            log_x: false,
            log_y: true,
            series: &s,
            points: false,
        };
        line_plot(&dir.join("line_logy"), &p).expect("line");

        let s: Vec<Series> = (0..30)
            .map(|k| {
                let y = betas
                    .iter()
                    .map(|b| (1.0 - b / (0.05 + 0.03 * k as f64)).max(0.0) * (k as f64 + 1.0))
                    .collect();
                series(&format!("token {k}"), betas.clone(), y)
            })
            .collect();
        let p = LinePlot {
            title: "Group norms along the path",
            x_label: "β",
            y_label: "‖Z_j‖",
            log_x: true,
            log_y: false,
            series: &s,
            points: false,
        };
        line_plot(&dir.join("line_many"), &p).expect("line");

        let (rows, cols) = (8, 24);
        let values: Vec<f64> = (0..rows * cols)
            .map(|k| {
                let (r, c) = ((k / cols) as f64, (k % cols) as f64);
                (-(c - 3.0 * r).powi(2) / 8.0).exp()
            })
            .collect();
        let col_names: Vec<String> = (0..cols).map(|c| format!("tok{c}")).collect();
        let h = Heatmap {
            title: "Attention map",
            x_label: "token",
            y_label: "head",
            rows,
            cols,
            values: &values,
            row_names: None,
            col_names: Some(&col_names),
        };
        heatmap(&dir.join("heat_attn"), &h).expect("heatmap");

        let n = 120;
        let values: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = ((k / n) as f64, (k % n) as f64);
                ((i - j) / 17.0).sin() * (-(i - j).abs() / 60.0).exp()
            })
            .collect();
        let h = Heatmap {
            title: "Mixing matrix",
            x_label: "j",
            y_label: "i",
            rows: n,
            cols: n,
            values: &values,
            row_names: None,
            col_names: None,
        };
        heatmap(&dir.join("heat_mix"), &h).expect("heatmap");

        let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let values: Vec<f64> = (0..20)
            .map(|i| {
                if i % 3 == 0 {
                    0.0
                } else {
                    1.0 / (1.0 + i as f64)
                }
            })
            .collect();
        bar_plot(
            &dir.join("bar"),
            "Norm per token",
            "token",
            "‖Z_j‖",
            &names,
            &values,
        )
        .expect("bar");

        let s = vec![
            series("empty", vec![], vec![]),
            series("nan", vec![f64::NAN, 0.0], vec![1.0, f64::INFINITY]),
        ];
        let p = LinePlot {
            title: "Nothing to draw",
            x_label: "β",
            y_label: "y",
            log_x: true,
            log_y: true,
            series: &s,
            points: false,
        };
        line_plot(&dir.join("line_empty"), &p).expect("line");
        let row_names: Vec<String> = ["1e-3", "1e-2", "1e-1"].map(String::from).to_vec();
        let h = Heatmap {
            title: "Heatmap with NaN",
            x_label: "token",
            y_label: "β",
            rows: 3,
            cols: 4,
            values: &[
                0.0,
                -1.0,
                f64::NAN,
                -3.0,
                0.0,
                0.0,
                -0.5,
                -0.25,
                -2.0,
                0.0,
                0.0,
                -1.0,
            ],
            row_names: Some(&row_names),
            col_names: None,
        };
        heatmap(&dir.join("heat_nan"), &h).expect("heatmap");
    }
}
