//! Bar plots: one named value per bar.

use super::*;

pub(super) fn bar_figure(
    root: &Svg,
    [title, x_label, y_label]: [&str; 3],
    names: &[String],
    values: &[f64],
) -> Drawn {
    let n = values.len();
    let range = min_max(values.iter().copied().filter(|&v| usable(v)));
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
    let names: Vec<String> = (0..n)
        .map(|i| names.get(i).map_or(String::new(), |s| truncate(s, 18)))
        .collect();
    let name_px = widest(root, TICK_PX, &names) + 10;
    let area = titled(root, title)?;
    let x = |plot_w| Axis::cells(names, (name_px, plot_w), false);
    let y = Axis::linear(lo, hi, Y_LABELS);
    let mut chart = chart_on(&area, x, y, [x_label, y_label], [false, true])?;

    let half = if n > 150 { 0.5 } else { 0.4 };
    let bars = values
        .iter()
        .enumerate()
        .filter(|(_, &v)| usable(v) && v != 0.0)
        .map(|(i, &v)| {
            let color = series_color(if v > 0.0 { 0 } else { 3 }, 4);
            let mid = i as f64 + 0.5;
            Rectangle::new([(mid - half, 0.0), (mid + half, v)], color.filled())
        });
    chart.draw_series(bars)?;
    if lo < 0.0 {
        let zero = [(0.0, 0.0), (n.max(1) as f64, 0.0)];
        chart.draw_series(LineSeries::new(zero, BLACK.mix(0.6)))?;
    }
    let center = match range {
        _ if n == 0 => Some("no data"),
        None => Some("no finite values"),
        Some(_) => None,
    };
    let n_bad = values.iter().filter(|&&v| !usable(v)).count();
    let corner = [count(n_bad, "{n} non-finite value{s} not drawn")];
    notes(root, &chart, center, &corner)
}
