//! Pieces every figure shares: number formats, label areas, meshes, notes,
//! series colors and axis ranges.

use super::*;

/// A number with about three significant digits, plain or scientific.
pub(super) fn fmt_sig(v: f64) -> String {
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

pub(super) fn superscript(k: i64) -> String {
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
        _ => format!("{:.decimals$}", if v == 0.0 { 0.0 } else { v }),
    }
}

/// Width of the area left of a plot, for tick labels `widest` px wide.
pub(super) fn y_area(widest: u32) -> u32 {
    (widest + 5 + 8 + DESC_PX + 14).clamp(50, 240)
}

/// A chart with this file's margins on `area` (title already drawn).
pub(super) fn chart_on<'a, DB: DrawingBackend, X: Ranged, Y: Ranged>(
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
pub(super) type Fmt<'f, T> = dyn Fn(&T) -> String + 'f;

/// Axes, ticks, tick labels, axis names and (where `grid`) grid lines.
pub(super) fn draw_mesh<DB, X, Y>(
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

pub(super) const X_LABELS: usize = 8;
pub(super) const Y_LABELS: usize = 7;

/// The picture below its title, drawn centered at the top.
pub(super) fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> std::result::Result<DrawingArea<DB, Shift>, String> {
    root.margin(9, 0, 0, 0)
        .titled(title, (FONT, TITLE_PX))
        .map_err(de)
}

/// `msg` centered in the plotting area of `chart`.
pub(super) fn center_note<DB: DrawingBackend, CT: CoordTranslate>(
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
pub(super) fn corner_notes<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    notes: &[String],
) -> DrawResult {
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

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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

/// A 1-2-5 stride such that labels `label_px` long fit in cells `cell_px` wide.
pub(super) fn label_stride(label_px: u32, cell_px: f64) -> usize {
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
pub(super) fn ticked(
    range: Range<f64>,
    ticks: Vec<f64>,
) -> impl Ranged<ValueType = f64, FormatOption = DefaultFormatting> {
    range.clone().with_key_points(ticks).partial_axis(range)
}

/// Width in pixels of the widest of `texts` at `px` size.
pub(super) fn widest<DB: DrawingBackend>(
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
