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
pub(super) fn tick_format(ticks: &[f64], log: bool) -> impl Fn(&f64) -> String {
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
        _ => format!("{:.decimals$}", v + 0.0),
    }
}

/// The least of 1, 2, 5, 10, 20, … that is at least `need`.
pub(super) fn stride(need: f64) -> usize {
    let mut strides = (0..19).flat_map(|e| [1, 2, 5].map(|m| m * 10usize.pow(e)));
    strides.find(|&k| k as f64 >= need).unwrap_or(usize::MAX)
}

/// An axis of `n` unit cells from 0 (downwards where `down`), ticked at the
/// centers of every k-th cell, k a [`stride`] that leaves labels `label_px`
/// long room on an axis `axis_px` long. (The `partial_axis` over the whole
/// range gives it default label formatting.)
pub(super) fn cells(
    n: usize,
    label_px: u32,
    axis_px: f64,
    down: bool,
) -> impl Ranged<ValueType = f64, FormatOption = DefaultFormatting> {
    let k = stride(f64::from(label_px) * n as f64 / axis_px.max(1.0));
    let ticks = (0..n).step_by(k).map(|i| i as f64 + 0.5).collect();
    let end = n.max(1) as f64;
    let range = if down { end..0.0 } else { 0.0..end };
    range.clone().with_key_points(ticks).partial_axis(range)
}

/// A tick label formatter.
pub(super) type Fmt<'f> = dyn Fn(&f64) -> String + 'f;

/// A chart on `area` with axes, ticks, tick labels (`fmt`), axis names
/// (`desc`) and, where `grid`, grid lines. The x axis is made by `x` for the
/// plot's width in pixels (what the y tick labels leave).
pub(super) fn chart_on<'a, DB, X, Y>(
    area: &'a DrawingArea<DB, Shift>,
    x: impl FnOnce(f64) -> X,
    y: Y,
    desc: [&str; 2],
    fmt: [&Fmt; 2],
    grid: [bool; 2],
) -> Drawn<DB, ChartContext<'a, DB, Cartesian2d<X, Y>>>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let y_ticks = y.key_points(BoldPoints(Y_LABELS));
    let y_width = widest(area, TICK_PX, y_ticks.iter().map(fmt[1]));
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
        .x_labels(X_LABELS)
        .y_labels(Y_LABELS)
        .x_label_formatter(fmt[0])
        .y_label_formatter(fmt[1])
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, DESC_PX))
        .set_all_tick_mark_size(5)
        .axis_style(BLACK.mix(0.8))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .max_light_lines(5)
        .draw()?;
    Ok(chart)
}

/// The picture below its title, drawn centered at the top.
pub(super) fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Drawn<DB, DrawingArea<DB, Shift>> {
    root.margin(9, 0, 0, 0).titled(title, (FONT, TITLE_PX))
}

/// `center`, if any, in the middle of `chart`'s plot, and the `corner` notes
/// there are in the bottom-right corner of the picture, one per line.
pub(super) fn notes<DB: DrawingBackend, CT: CoordTranslate>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<DB, CT>,
    center: Option<&str>,
    corner: &[Option<String>],
) -> Drawn<DB> {
    let style = |px: u32, h, v| {
        let font = TextStyle::from((FONT, px).into_font());
        font.color(&NOTE_COLOR).pos(Pos::new(h, v))
    };
    if let Some(msg) = center {
        let area = chart.plotting_area().strip_coord_spec();
        let (w, h) = area.dim_in_pixel();
        let style = style(DESC_PX, HPos::Center, VPos::Center);
        area.draw(&Text::new(msg, (w as i32 / 2, h as i32 / 2), style))?;
    }
    let style = style(NOTE_PX, HPos::Right, VPos::Bottom);
    for (i, note) in corner.iter().flatten().rev().enumerate() {
        let y = SIZE.1 as i32 - 5 - i as i32 * (NOTE_PX as i32 + 4);
        root.draw(&Text::new(
            note.as_str(),
            (SIZE.0 as i32 - 8, y),
            style.clone(),
        ))?;
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

/// Width in pixels of the widest of `texts` at `px` size.
pub(super) fn widest<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    px: u32,
    texts: impl Iterator<Item = String>,
) -> u32 {
    let style = TextStyle::from((FONT, px).into_font());
    texts
        .filter_map(|s| area.estimate_text_size(&s, &style).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0)
}

/// The color `0xRRGGBB`.
pub(super) fn hex(c: u32) -> RGBColor {
    RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
}
