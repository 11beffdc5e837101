//! Line plots: one or more series, linear or log axes, a legend.

use super::*;

/// Tableau 10, then evenly spaced hues for many series.
pub(super) fn series_color(i: usize, n: usize) -> RGBColor {
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
pub(super) type Prepared = (Vec<Vec<(f64, f64)>>, usize, usize);

pub(super) fn prepare(s: &Series, log_x: bool, log_y: bool) -> Prepared {
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
pub(super) fn axis_range(range: Option<(f64, f64)>, log: bool) -> (f64, f64) {
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
pub(super) fn log_axis(lo: f64, hi: f64, n: usize) -> WithKeyPoints<LogCoord<f64>> {
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
pub(super) fn legend_indices(n: usize) -> Vec<usize> {
    if n <= MAX_LEGEND {
        return (0..n).collect();
    }
    let k = MAX_LEGEND - 1;
    (0..k).map(|j| j * (n - 1) / (k - 1)).collect()
}

pub(super) fn line_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &LinePlot,
) -> DrawResult {
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

pub(super) fn line_chart<DB, X, Y>(
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
