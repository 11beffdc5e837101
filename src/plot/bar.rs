//! Bar plots: one named value per bar.

use super::*;

pub(super) fn bar_figure<DB: DrawingBackend>(
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
