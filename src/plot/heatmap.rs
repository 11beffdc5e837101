//! Heatmaps: a diverging color scale, labels, a color bar.

use super::*;

pub(super) const NAN_COLOR: RGBColor = RGBColor(190, 190, 190);

/// Values to colors: white at 0, ColorBrewer Reds up to `hi`, Blues down to
/// `lo` (`lo ≤ 0 ≤ hi`, symmetric when the data have both signs).
pub(super) struct Scale {
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

pub(super) fn heat_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    h: &Heatmap,
) -> DrawResult {
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
