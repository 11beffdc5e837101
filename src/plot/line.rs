//! Line plots: one or more series, linear or log axes, a legend beside the
//! plot (so that it never hides data).

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

/// One series' plottable runs in plot units (log₁₀ on a log axis), split at
/// skipped points, with the number of points skipped as non-finite and as
/// ≤ 0 on a log axis.
pub(super) type Prepared = (Vec<Vec<(f64, f64)>>, usize, usize);

pub(super) fn prepare(s: &Series, log_x: bool, log_y: bool) -> Prepared {
    let unit = |log: bool, v: f64| if log { v.log10() } else { v };
    // Each point, or why it is skipped: non-finite (true) or ≤ 0 on a log axis.
    let points: Vec<_> = (s.x.iter().zip(&s.y))
        .map(|(&x, &y)| match () {
            _ if !(usable(x) && usable(y)) => Err(true),
            _ if (log_x && x <= 0.0) || (log_y && y <= 0.0) => Err(false),
            _ => Ok((unit(log_x, x), unit(log_y, y))),
        })
        .collect();
    let runs = points.split(|q| q.is_err()).filter(|run| !run.is_empty());
    let skipped = |why| points.iter().filter(|&&q| q == Err(why)).count();
    let runs = runs.map(|run| run.iter().flatten().copied().collect());
    (runs.collect(), skipped(true), skipped(false))
}

pub(super) fn line_figure(root: &Svg, p: &LinePlot) -> Drawn {
    let prepared: Vec<Prepared> = p
        .series
        .iter()
        .map(|s| prepare(s, p.log_x, p.log_y))
        .collect();
    let all = || prepared.iter().flat_map(|s| s.0.iter().flatten());
    let x = Axis::fit(min_max(all().map(|q| q.0)), p.log_x, X_LABELS);
    let y = Axis::fit(min_max(all().map(|q| q.1)), p.log_y, Y_LABELS);

    // The legend: the named series (of an even spread when there are many,
    // then a count), in a panel as wide as its longest name, up to two
    // thirds of the picture (the plot keeps the rest; a name of the widest
    // glyphs is then cut at the picture's edge).
    let n = p.series.len();
    let k = if n <= MAX_LEGEND { n } else { MAX_LEGEND - 1 };
    let mut legend: Vec<(String, Option<RGBColor>)> = (0..k)
        .map(|j| if k == n { j } else { j * (n - 1) / (k - 1) })
        .filter(|&i| !p.series[i].name.is_empty())
        .map(|i| (truncate(&p.series[i].name, 32), Some(series_color(i, n))))
        .collect();
    if n > MAX_LEGEND && !legend.is_empty() {
        legend.push((format!("({} of {n} series shown)", legend.len()), None));
    }
    let names = legend.iter().map(|l| &l.0);
    let panel = match legend.is_empty() {
        true => 0,
        false => (widest(root, LEGEND_PX, names) + 32).min(SIZE.0 * 2 / 3),
    };

    let area = titled(root, p.title)?;
    let (left, right) = area.split_horizontally(SIZE.0 - panel);
    let mut chart = chart_on(&left, |_| x, y, [p.x_label, p.y_label], [true, true])?;
    for (i, (runs, ..)) in prepared.iter().enumerate() {
        let color = series_color(i, n);
        for run in runs {
            let dots = if p.points || run.len() == 1 { 3 } else { 0 };
            let line = LineSeries::new(run.iter().copied(), color.stroke_width(2).filled());
            chart.draw_series(line.point_size(dots))?;
        }
    }
    let style = text_style(LEGEND_PX, HPos::Left, VPos::Center);
    for (j, (label, color)) in legend.iter().enumerate() {
        let y = (MARGIN + LEGEND_PX + j as u32 * (LEGEND_PX + 7)) as i32;
        if let Some(c) = *color {
            right.draw(&PathElement::new([(0, y), (18, y)], c.stroke_width(3)))?;
        }
        right.draw(&Text::new(label.as_str(), (24, y), style.clone()))?;
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
