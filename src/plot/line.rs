//! Line plots: one or more series, linear or log axes, a legend.

use super::*;

/// Tableau 10, then evenly spaced hues for many series.
pub(super) fn series_color(i: usize, n: usize) -> RGBColor {
    const TAB10: [u32; 10] = [
        0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22,
        0x17becf,
    ];
    if n <= TAB10.len() {
        return hex(TAB10[i % TAB10.len()]);
    }
    let (r, g, b) = HSLColor(0.8 * i as f64 / (n - 1) as f64, 0.8, 0.42).rgb();
    RGBColor(r, g, b)
}

/// One series' plottable runs (split at skipped points), with the number of
/// points skipped as non-finite and as ≤ 0 on a log axis.
pub(super) type Prepared = (Vec<Vec<(f64, f64)>>, usize, usize);

pub(super) fn prepare(s: &Series, log_x: bool, log_y: bool) -> Prepared {
    // Each point, or why it is skipped: non-finite (true) or ≤ 0 on a log axis.
    let points: Vec<_> = (s.x.iter().zip(&s.y))
        .map(|(&x, &y)| match () {
            _ if !(usable(x) && usable(y)) => Err(true),
            _ if (log_x && x <= 0.0) || (log_y && y <= 0.0) => Err(false),
            _ => Ok((x, y)),
        })
        .collect();
    let runs = points.split(|q| q.is_err()).filter(|run| !run.is_empty());
    let skipped = |why| points.iter().filter(|&&q| q == Err(why)).count();
    let runs = runs.map(|run| run.iter().flatten().copied().collect());
    (runs.collect(), skipped(true), skipped(false))
}

/// Padded axis limits for data in `[lo, hi]`.
pub(super) fn axis_range(range: Option<(f64, f64)>, log: bool) -> (f64, f64) {
    let Some((lo, hi)) = range else {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    };
    if log {
        let (a, b) = (lo.log10(), hi.log10());
        let pad = if b - a > 1e-9 { 0.05 * (b - a) } else { 1.0 };
        // At most 300 decades, so that hi / lo stays finite.
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

pub(super) fn line_figure(root: &Svg, p: &LinePlot) -> Drawn {
    let prepared: Vec<Prepared> = p
        .series
        .iter()
        .map(|s| prepare(s, p.log_x, p.log_y))
        .collect();
    let all = || prepared.iter().flat_map(|s| s.0.iter().flatten());
    let axis = |v: Option<(f64, f64)>, log, n| match axis_range(v, log) {
        (lo, hi) if log => Axis::log(lo, hi, n),
        (lo, hi) => Axis::linear(lo, hi, n),
    };
    let x = axis(min_max(all().map(|q| q.0)), p.log_x, X_LABELS);
    let y = axis(min_max(all().map(|q| q.1)), p.log_y, Y_LABELS);
    let area = titled(root, p.title)?;
    let desc = [p.x_label, p.y_label];
    let mut chart = chart_on(&area, |_| x, y, desc, [true, true])?;
    // Points in plot units: log₁₀ on a log axis.
    let unit = |log: bool, v: f64| if log { v.log10() } else { v };
    let at = |&(x, y): &(f64, f64)| (unit(p.log_x, x), unit(p.log_y, y));

    // Pixels along the lines, to keep the legend off the data.
    let (n, mut samples) = (p.series.len(), vec![]);
    for (i, (runs, ..)) in prepared.iter().enumerate() {
        let color = series_color(i, n);
        for run in runs {
            let dots = if p.points || run.len() == 1 { 3 } else { 0 };
            let line = LineSeries::new(run.iter().map(at), color.stroke_width(2).filled());
            chart.draw_series(line.point_size(dots))?;
            let px: Vec<(i32, i32)> = run.iter().map(|q| chart.backend_coord(&at(q))).collect();
            samples.extend(px.windows(2).flat_map(|w| {
                let (a, b) = (w[0], w[1]);
                let k = (((b.0 - a.0).abs() + (b.1 - a.1).abs()) / 6).clamp(1, 300);
                (0..k).map(move |j| (a.0 + (b.0 - a.0) * j / k, a.1 + (b.1 - a.1) * j / k))
            }));
            samples.extend(px.last());
        }
    }

    // The legend: the named series (of an even spread when there are many,
    // then a count).
    let k = if n <= MAX_LEGEND { n } else { MAX_LEGEND - 1 };
    let mut legend: Vec<(String, Option<RGBColor>)> = (0..k)
        .map(|j| if k == n { j } else { j * (n - 1) / (k - 1) })
        .filter(|&i| !p.series[i].name.is_empty())
        .map(|i| (truncate(&p.series[i].name, 40), Some(series_color(i, n))))
        .collect();
    if n > MAX_LEGEND && !legend.is_empty() {
        legend.push((format!("({} of {n} series shown)", legend.len()), None));
    }
    for (label, color) in &legend {
        let entry = chart.draw_series(LineSeries::new(std::iter::empty(), WHITE))?;
        let entry = entry.label(label);
        if let Some(c) = *color {
            entry.legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(3)));
        }
    }
    if !legend.is_empty() {
        // The corner where the legend covers the fewest data pixels.
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let w = widest(root, LEGEND_PX, legend.iter().map(|l| l.0.clone())) as i32 + 28 + 16;
        let h = legend.len() as i32 * LEGEND_PX as i32 + 16;
        let (left, top) = (xr.start + 5, yr.start + 5);
        let (right, bottom) = (xr.end - 5 - w, yr.end - 5 - h);
        let covered = |&(_, x, y): &(_, i32, i32)| {
            let inside = |&&(sx, sy): &&(i32, i32)| {
                (x - 4..x + w + 4).contains(&sx) && (y - 4..y + h + 4).contains(&sy)
            };
            samples.iter().filter(inside).count()
        };
        use SeriesLabelPosition::*;
        let corners = [
            (UpperRight, right, top),
            (UpperLeft, left, top),
            (LowerRight, right, bottom),
            (LowerLeft, left, bottom),
        ];
        let best = corners
            .into_iter()
            .min_by_key(covered)
            .map_or(UpperRight, |c| c.0);
        chart
            .configure_series_labels()
            .position(best)
            .label_font((FONT, LEGEND_PX))
            .legend_area_size(28)
            .margin(8)
            .background_style(WHITE.mix(0.88))
            .border_style(BLACK.mix(0.35))
            .draw()?;
    }

    let empty = p.series.iter().all(|s| s.x.is_empty());
    let center = match prepared.iter().all(|s| s.0.is_empty()) {
        true if empty => Some("no data"),
        true => Some("no plottable data points"),
        false => None,
    };
    let (bad, non_pos) = prepared.iter().fold((0, 0), |(a, b), s| (a + s.1, b + s.2));
    let skipped = [
        count(bad, "{n} non-finite point{s} skipped"),
        count(non_pos, "{n} point{s} ≤ 0 skipped (log axis)"),
    ];
    notes(root, &chart, center, &skipped)
}
