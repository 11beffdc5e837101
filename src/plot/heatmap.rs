//! Heatmaps: a diverging color scale, labels, a color bar.

use super::*;

pub(super) fn heat_figure(root: &Svg, h: &Heatmap) -> Drawn {
    let range = min_max(h.values.iter().copied().filter(|v| v.is_finite()));
    // White at 0, ColorBrewer Reds up to `hi` and Blues down to `lo` (symmetric
    // when the data have both signs), in 256 levels a side; non-finite gray.
    let (lo, hi) = match range {
        Some((a, b)) if a < 0.0 && b > 0.0 => (-b.max(-a), b.max(-a)),
        Some((_, b)) if b > 0.0 => (0.0, b),
        Some((a, _)) if a < 0.0 => (a, 0.0),
        _ => (0.0, 1.0),
    };
    let blues_reds = [
        0x08306b, 0x2171b5, 0x6baed6, 0xc6dbef, 0xffffff, 0xfcbba1, 0xfb6a4a, 0xcb181d, 0x67000d,
    ];
    let map = DerivedColorMap::new(&blues_reds.map(hex));
    let level = |t: f64| (t.clamp(0.0, 1.0) * 255.0).round() / 255.0;
    let color = |v: f64| match v {
        _ if !v.is_finite() => RGBColor(190, 190, 190),
        _ if v < 0.0 => map.get_color(0.5 - level(v / lo) / 2.0),
        _ if hi > 0.0 => map.get_color(0.5 + level(v / hi) / 2.0),
        _ => WHITE,
    };
    let (rows, cols) = (h.rows.max(1) as f64, h.cols.max(1));
    // Each row's and column's name (default: its index).
    let names = |names: Option<&[String]>, n: usize| -> Vec<String> {
        let name = |i: usize| names.and_then(|s| s.get(i)).map(|s| truncate(s, 18));
        (0..n).map(|i| name(i).unwrap_or(i.to_string())).collect()
    };
    let cols_named = names(h.col_names, h.cols);

    let area = titled(root, h.title)?;
    let (left, right) = area.split_horizontally(SIZE.0 - BAR_PANEL);
    // As many row and column labels as fit; row 0 at the top.
    let plot_h = f64::from(left.dim_in_pixel().1 - 2 * MARGIN - X_AREA);
    let y = Axis::cells(names(h.row_names, h.rows), (TICK_PX + 5, plot_h), true);
    let col_px = widest(root, TICK_PX, &cols_named) + 10;
    let x = |w| Axis::cells(cols_named, (col_px, w), false);
    let desc = [h.x_label, h.y_label];
    let mut chart = chart_on(&left, x, y, desc, [false, false])?;

    // Cells, merging runs of equal color within a row; white is the background.
    let mut cells = vec![];
    for (r, row) in h.values.chunks(cols).enumerate() {
        let (r, mut c) = (r as f64, 0.0);
        for run in row.chunk_by(|a, b| color(*a) == color(*b)) {
            let (c0, color) = (c, color(run[0]));
            c += run.len() as f64;
            if color != WHITE {
                cells.push(Rectangle::new([(c0, r), (c, r + 1.0)], color.filled()));
            }
        }
    }
    chart.draw_series(cells)?;
    let frame = Rectangle::new([(0.0, 0.0), (cols as f64, rows)], BLACK.mix(0.6));
    chart.draw_series([frame])?;

    // The color bar: a chart of its own, as tall as the heatmap.
    let mut bar = ChartBuilder::on(&right)
        .margin(MARGIN)
        .margin_left(0)
        .x_label_area_size(X_AREA)
        .set_label_area_size(LabelAreaPosition::Right, BAR_PANEL - 34)
        .build_cartesian_2d(0.0..1.0, Axis::linear(lo, hi, 5))?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style((FONT, TICK_PX))
        .set_all_tick_mark_size(4)
        .axis_style(BLACK.mix(0.6))
        .draw()?;
    let strip = |k: usize| lo + (hi - lo) * k as f64 / 256.0;
    bar.draw_series((0..256).map(|k| {
        let color = color((strip(k) + strip(k + 1)) / 2.0);
        Rectangle::new([(0.0, strip(k)), (1.0, strip(k + 1))], color.filled())
    }))?;
    bar.draw_series([Rectangle::new([(0.0, lo), (1.0, hi)], BLACK.mix(0.6))])?;

    let center = match range {
        _ if h.values.is_empty() => Some("no data"),
        None => Some("no finite values"),
        Some(_) => None,
    };
    let n_nan = h.values.iter().filter(|v| !v.is_finite()).count();
    let extremes = match range {
        Some((a, b)) => format!("min {}   max {}", fmt_sig(a), fmt_sig(b)),
        None => "min –   max –".to_string(),
    };
    let corner = [Some(extremes), count(n_nan, "gray: {n} non-finite cell{s}")];
    notes(root, &chart, center, &corner)
}
