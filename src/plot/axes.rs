//! Pieces every figure shares: number formats, axes, the chart and its
//! mesh, notes.

use super::*;

/// A number with about three significant digits, plain or scientific.
pub(super) fn fmt_sig(v: f64) -> String {
    // Read back, the rounded text prints without its trailing zeros.
    let rounded = |s: String| s.parse().unwrap_or(v);
    if (1e-3..1e5).contains(&v.abs()) {
        let d = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{}", rounded(format!("{v:.d$}")))
    } else if v != 0.0 && v.is_finite() {
        format!("{:e}", rounded(format!("{v:.2e}")))
    } else {
        format!("{}", v + 0.0) // -0 + 0 is 0
    }
}

/// `k` in superscript digits: 10 with it reads as the power 10ᵏ.
pub(super) fn superscript(k: i64) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let sup = |c: char| c.to_digit(10).map_or('⁻', |d| DIGITS[d as usize]);
    k.to_string().chars().map(sup).collect()
}

/// The label text for ticks at `ticks`: log axes use [`fmt_sig`] (or 10ⁿ
/// for far powers of ten), linear axes as many decimals as the tick step
/// needs (scientific when large or small).
pub(super) fn tick_format(ticks: &[f64], log: bool) -> impl Fn(f64) -> String {
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
    move |v| match () {
        _ if sup => format!("10{}", superscript(v.log10().round() as i64)),
        _ if log || !step.is_finite() || step <= 0.0 => fmt_sig(v),
        _ if sci => format!("{v:.digits$e}"),
        _ => format!("{:.decimals$}", v + 0.0),
    }
}

/// The least of 1, 2, 5, 10, 20, … that is at least `need`.
pub(super) fn stride(need: f64) -> usize {
    let mut strides = (0..19).flat_map(|e| [1, 2, 5].map(|m| m * 10usize.pow(e)));
    strides.find(|&k| k as f64 >= need).unwrap_or(usize::MAX)
}

/// A chart of the SVG picture, on two [`Axis`].
pub(super) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Axis, Axis>>;

/// One axis, as plotters' coordinate: linear over `range` in plot units
/// (log₁₀ of the value on a log axis, so one type serves all), with its
/// labelled and light ticks and its tick labels.
pub(super) struct Axis {
    pub range: Range<f64>,
    pub ticks: Vec<f64>,
    pub light: Vec<f64>,
    pub label: Box<dyn Fn(f64) -> String>,
}

impl Axis {
    /// Over `lo..hi`, with about `n` ticks where plotters puts them (and
    /// five light lines between two).
    pub fn linear(lo: f64, hi: f64, n: usize) -> Axis {
        let coord = RangedCoordf64::from(lo..hi);
        let ticks = coord.key_points(n);
        let light = coord.key_points(LightPoints::new(n, n * 5));
        let label = Box::new(tick_format(&ticks, false));
        Axis {
            range: lo..hi,
            ticks,
            light,
            label,
        }
    }

    /// For data over `range` in plot units (none: as 0..1), padded by 5% of the
    /// span; a single value by a tenth of it, or by 1 (a decade) where it is
    /// 0 or the axis is log. About `n` ticks; a log axis spans at most 300
    /// decades, so that its values stay finite.
    pub fn fit(range: Option<(f64, f64)>, log: bool, n: usize) -> Axis {
        let (a, b) = range.unwrap_or((0.0, 1.0));
        let single = if log {
            1e-9
        } else {
            1e-12 * a.abs().max(b.abs())
        };
        let pad = match b - a {
            w if w > single => 0.05 * w,
            _ if log || a == 0.0 => 1.0,
            _ => 0.1 * a.abs(),
        };
        let (lo, hi) = (a - pad, b + pad);
        match log {
            true => Axis::log(
                10f64.powf(lo.max(hi.min(305.0) - 300.0)),
                10f64.powf(hi.min(305.0)),
                n,
            ),
            false => Axis::linear(lo, hi, n),
        }
    }

    /// Over `lo..hi` (> 0) on a log scale, ticked at powers of ten (every
    /// [`stride`]-th, for at most about `n` ticks) or, over too few decades
    /// for three of those, at 1, 2, 5 × 10ᵏ or at every digit.
    pub fn log(lo: f64, hi: f64, n: usize) -> Axis {
        let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        let step = stride(f64::from(b - a) / n as f64) as i32;
        let at = |step: i32, ms: &[f64]| -> Vec<f64> {
            let decades = (a..=b).filter(|k| k % step == 0);
            let all = decades.flat_map(|k| ms.iter().map(move |m| m * 10f64.powi(k)));
            all.filter(|v| (lo..=hi).contains(v)).collect()
        };
        let digits = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let ticks = [at(step, &[1.0]), at(1, &[1.0, 2.0, 5.0]), at(1, &digits)]
            .into_iter()
            .find(|t| t.len() >= 3)
            .unwrap_or_else(|| RangedCoordf64::from(lo..hi).key_points(n));
        let light = if step > 1 { vec![] } else { at(1, &digits) };
        let f = tick_format(&ticks, true);
        let log = |v: Vec<f64>| v.into_iter().map(f64::log10).collect();
        Axis {
            range: lo.log10()..hi.log10(),
            ticks: log(ticks),
            light: log(light),
            label: Box::new(move |v| f(10f64.powf(v))),
        }
    }

    /// `names.len()` unit cells from 0 (downwards where `down`), ticked with
    /// their names at the centers of every k-th cell, k a [`stride`] that
    /// leaves labels `label_px` long room on an axis `axis_px` long.
    pub fn cells(names: Vec<String>, (label_px, axis_px): (u32, f64), down: bool) -> Axis {
        let n = names.len();
        let k = stride(f64::from(label_px) * n as f64 / axis_px.max(1.0));
        let end = n.max(1) as f64;
        Axis {
            range: if down { end..0.0 } else { 0.0..end },
            ticks: (0..n).step_by(k).map(|i| i as f64 + 0.5).collect(),
            light: vec![],
            label: Box::new(move |v| names.get(v as usize).cloned().unwrap_or_default()),
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        RangedCoordf64::from(self.range.clone()).map(v, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        match hint.weight().allow_light_points() {
            true => self.light.clone(),
            false => self.ticks.clone(),
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, v: &f64) -> String {
        (self.label)(*v)
    }
}

/// A chart on `area` with axes, ticks, tick labels, axis names (`desc`)
/// and, where `grid`, grid lines. The x axis is made by `x` for the plot's
/// width in pixels (what the y tick labels leave).
pub(super) fn chart_on<'a, 'b>(
    area: &'a Svg<'b>,
    x: impl FnOnce(f64) -> Axis,
    y: Axis,
    desc: [&str; 2],
    grid: [bool; 2],
) -> Drawn<Chart<'a, 'b>> {
    let y_width = widest(area, TICK_PX, y.ticks.iter().map(|&t| (y.label)(t)));
    let y_area = (y_width + 5 + 8 + DESC_PX + 14).clamp(50, 240);
    let plot_w = area.dim_in_pixel().0.saturating_sub(MARGIN + 26 + y_area);
    let mut chart = ChartBuilder::on(area)
        .margin(MARGIN)
        .margin_right(26)
        .x_label_area_size(X_AREA)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x(f64::from(plot_w)), y)?;
    let mut mesh = chart.configure_mesh();
    if !grid[0] {
        mesh.disable_x_mesh();
    }
    if !grid[1] {
        mesh.disable_y_mesh();
    }
    mesh.x_desc(desc[0])
        .y_desc(desc[1])
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, DESC_PX))
        .set_all_tick_mark_size(5)
        .axis_style(BLACK.mix(0.8))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    Ok(chart)
}

/// The picture below its title, drawn centered at the top.
pub(super) fn titled<'b>(root: &Svg<'b>, title: &str) -> Drawn<Svg<'b>> {
    root.margin(9, 0, 0, 0).titled(title, (FONT, TITLE_PX))
}

/// `center`, if any, in the middle of `chart`'s plot, and the `corner` notes
/// there are in the bottom-right corner of the picture, one per line.
pub(super) fn notes(
    root: &Svg,
    chart: &Chart,
    center: Option<&str>,
    corner: &[Option<String>],
) -> Drawn {
    let style = |px, h, v| text_style(px, h, v).color(&NOTE_COLOR);
    if let Some(msg) = center {
        let area = chart.plotting_area().strip_coord_spec();
        let (w, h) = area.dim_in_pixel();
        let style = style(DESC_PX, HPos::Center, VPos::Center);
        area.draw(&Text::new(msg, (w as i32 / 2, h as i32 / 2), style))?;
    }
    let style = style(NOTE_PX, HPos::Right, VPos::Bottom);
    for (i, note) in corner.iter().flatten().rev().enumerate() {
        let y = SIZE.1 as i32 - 5 - i as i32 * (NOTE_PX as i32 + 4);
        let at = (SIZE.0 as i32 - 8, y);
        root.draw(&Text::new(note.as_str(), at, style.clone()))?;
    }
    Ok(())
}

/// `text` with `{n}` replaced by `n` and `{s}` by a plural "s"; none when
/// `n` is 0.
pub(super) fn count(n: usize, text: &str) -> Option<String> {
    let s = if n == 1 { "" } else { "s" };
    (n > 0).then(|| text.replace("{n}", &n.to_string()).replace("{s}", s))
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    s.chars().take(max - 1).chain(['…']).collect()
}

pub(super) fn min_max(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.fold(None, |acc, v| {
        Some(acc.map_or((v, v), |(a, b): (f64, f64)| (a.min(v), b.max(v))))
    })
}

/// Usable data: finite and not so large that pixel arithmetic overflows.
pub(super) fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() < 1e300
}

/// Text at `px` size, anchored at its `h`, `v` point.
pub(super) fn text_style(px: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FONT, px).into_font()).pos(Pos::new(h, v))
}

/// Width in pixels of the widest of `texts` at `px` size.
pub(super) fn widest(area: &Svg, px: u32, texts: impl IntoIterator<Item = impl AsRef<str>>) -> u32 {
    let style = TextStyle::from((FONT, px).into_font());
    texts
        .into_iter()
        .filter_map(|s| area.estimate_text_size(s.as_ref(), &style).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0)
}

/// The color `0xRRGGBB`.
pub(super) fn hex(c: u32) -> RGBColor {
    RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
}
