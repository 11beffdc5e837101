use super::*;

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Both files exist, the PNG is a PNG and the SVG an SVG with `title`.
fn check_pair(stem: &Path, title: &str) {
    let png = read(with_ext(stem, "png"));
    assert!(png.len() > 100, "PNG too small");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = String::from_utf8(read(with_ext(stem, "svg"))).expect("SVG is UTF-8");
    assert!(svg.contains("<svg"), "no <svg element");
    assert!(svg.contains(title), "SVG lacks the title {title:?}");
}

/// The number in the first `name="…"` attribute of `svg`.
fn attribute(svg: &str, name: &str) -> f64 {
    let key = format!(" {name}=\"");
    let s = &svg[svg.find(&key).expect("attribute") + key.len()..];
    s[..s.find('"').expect("quote")].parse().expect("number")
}

/// The x of the SVG text element whose text is `text`.
fn text_x(svg: &str, text: &str) -> f64 {
    let at = svg.find(&format!(">\n{text}\n</text>")).expect("text");
    attribute(&svg[svg[..at].rfind("<text").expect("<text")..], "x")
}

/// Only `stem.png` and `stem.svg` in `dir`.
fn only_pair(dir: &Path, stem: &str) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec![format!("{stem}.png"), format!("{stem}.svg")]);
}

fn series(name: &str, x: Vec<f64>, y: Vec<f64>) -> Series {
    Series {
        name: name.into(),
        x,
        y,
    }
}

fn line<'a>(title: &'a str, series: &'a [Series], log_x: bool, log_y: bool) -> LinePlot<'a> {
    let (x_label, y_label, points) = ("beta", "active tokens", true);
    LinePlot {
        title,
        x_label,
        y_label,
        log_x,
        log_y,
        series,
        points,
    }
}

fn heat<'a>(title: &'a str, rows: usize, cols: usize, values: &'a [f64]) -> Heatmap<'a> {
    let (x_label, y_label, row_names, col_names) = ("token", "head", None, None);
    Heatmap {
        title,
        x_label,
        y_label,
        rows,
        cols,
        values,
        row_names,
        col_names,
    }
}

#[test]
fn line_plot_writes_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let x: Vec<f64> = (0..30)
        .map(|i| 10f64.powf(-3.0 + i as f64 * 0.15))
        .collect();
    let s = vec![
        series(
            "head 0",
            x.clone(),
            x.iter().map(|b| 40.0 / (1.0 + b)).collect(),
        ),
        series(
            "head 1",
            x.clone(),
            x.iter().map(|b| 30.0 / (1.0 + 2.0 * b)).collect(),
        ),
    ];
    let stem = dir.path().join("active");
    line_plot(&stem, &line("Active tokens", &s, true, false)).expect("line plot");
    check_pair(&stem, "Active tokens");
    only_pair(dir.path(), "active");
    // The legend is beside the plot: right of every data point.
    let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
    let dots: Vec<f64> = svg
        .match_indices("<circle")
        .map(|(at, _)| attribute(&svg[at..], "cx"))
        .collect();
    let label_x = text_x(&svg, "head 0");
    assert_eq!(dots.len(), 60);
    assert!(
        dots.iter().all(|&x| x < label_x),
        "{label_x} within {dots:?}"
    );
}

#[test]
fn line_plot_log_y_and_many_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s: Vec<Series> = (0..40)
        .map(|k| {
            let x: Vec<f64> = (0..50).map(|i| i as f64 * 0.1).collect();
            let y = x.iter().map(|t| (-(k as f64 + 1.0) * t).exp()).collect();
            series(&format!("token {k}"), x, y)
        })
        .collect();
    let stem = dir.path().join("subopt");
    line_plot(&stem, &line("Suboptimality", &s, false, true)).expect("line plot");
    check_pair(&stem, "Suboptimality");
    let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
    assert!(
        svg.contains("(11 of 40 series shown)"),
        "legend lacks its summary line"
    );
}

#[test]
fn line_plot_degenerate_inputs_do_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    let one = |x: &[f64], y: &[f64]| vec![series("a", x.to_vec(), y.to_vec())];
    let cases = [
        ("no series", vec![], false, false, "no data"),
        ("empty series", one(&[], &[]), true, true, "no data"),
        (
            "nan only",
            one(&[nan, 1.0], &[2.0, inf]),
            false,
            false,
            "2 non-finite points skipped",
        ),
        (
            "nonpositive on log",
            one(&[0.0, -1.0, 2.0], &[1.0, 1.0, -3.0]),
            true,
            true,
            "3 points ≤ 0 skipped (log axis)",
        ),
        ("one point", one(&[1.0], &[1.0]), true, true, "<circle"),
        (
            "constant",
            one(&[0.0, 0.0], &[0.0, 0.0]),
            false,
            false,
            "<polyline",
        ),
        (
            "gaps",
            one(&[1.0, 2.0, 3.0, 4.0], &[1.0, nan, 3.0, 4.0]),
            false,
            false,
            "1 non-finite point skipped",
        ),
        (
            "huge",
            one(&[-1e308, 1e308], &[1e-300, 1e300]),
            false,
            true,
            "no plottable data points",
        ),
        (
            "tiny",
            one(&[1e-300, 2e-300], &[1e-300, 1e299]),
            true,
            true,
            "<polyline",
        ),
    ];
    for (i, (title, s, lx, ly, expect)) in cases.iter().enumerate() {
        let stem = dir.path().join(format!("case{i}"));
        line_plot(&stem, &line(title, s, *lx, *ly)).expect(title);
        check_pair(&stem, title);
        let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
        assert!(svg.contains(expect), "{title}: SVG lacks {expect:?}");
    }
}

#[test]
fn line_plot_rejects_mismatched_lengths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = vec![series("a", vec![1.0, 2.0], vec![1.0])];
    let err = line_plot(&dir.path().join("bad"), &line("bad", &s, false, false));
    assert!(matches!(err, Err(Error::Invalid(_))));
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[test]
fn missing_folder_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("no_such_dir").join("plot");
    let err = bar_plot(&stem, "t", "x", "y", &[], &[]);
    assert!(matches!(err, Err(Error::Io { .. })), "{err:?}");
}

#[test]
fn heatmap_writes_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rows, cols) = (4, 12);
    let values: Vec<f64> = (0..rows * cols)
        .map(|k| ((k % cols) as f64 / cols as f64) * (1.0 + (k / cols) as f64))
        .collect();
    let stem = dir.path().join("attn");
    heatmap(&stem, &heat("Attention map", rows, cols, &values)).expect("heatmap");
    check_pair(&stem, "Attention map");
    only_pair(dir.path(), "attn");
}

#[test]
fn heatmap_large_signed_and_degenerate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 200;
    let values: Vec<f64> = (0..n * n)
        .map(|k| ((k / n) as f64 - (k % n) as f64) / n as f64)
        .collect();
    let stem = dir.path().join("mix");
    heatmap(&stem, &heat("Mixing matrix", n, n, &values)).expect("heatmap");
    check_pair(&stem, "Mixing matrix");

    let nan = [f64::NAN; 6];
    let cases = [
        (0, 0, &[][..], "no data"),
        (2, 3, &nan[..], "no finite values"),
        (0, 5, &[][..], "no data"),
    ];
    for (i, (rows, cols, vals, note)) in cases.into_iter().enumerate() {
        let stem = dir.path().join(format!("degenerate{i}"));
        heatmap(&stem, &heat("Degenerate", rows, cols, vals)).expect("degenerate heatmap");
        check_pair(&stem, "Degenerate");
        assert!(String::from_utf8(read(with_ext(&stem, "svg")))
            .expect("UTF-8")
            .contains(note));
    }
    let svg = String::from_utf8(read(with_ext(&dir.path().join("degenerate1"), "svg")));
    assert!(svg.expect("UTF-8").contains("gray: 6 non-finite cells"));
    let bad = heat("bad", 2, 2, &[1.0; 3]);
    assert!(matches!(
        heatmap(&dir.path().join("bad"), &bad),
        Err(Error::Invalid(_))
    ));
    let names = vec!["a".to_string()];
    let bad = Heatmap {
        row_names: Some(&names),
        ..heat("bad", 2, 2, &[1.0; 4])
    };
    assert!(matches!(
        heatmap(&dir.path().join("bad"), &bad),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        std::fs::read_dir(dir.path())
            .expect("dir")
            .filter(|e| e
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("bad")))
            .count(),
        0
    );
}

#[test]
fn bar_plot_writes_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
    let values: Vec<f64> = (0..16).map(|i| (i as f64 - 5.0) * 0.3).collect();
    let stem = dir.path().join("norms");
    bar_plot(&stem, "Norm per token", "token", "norm", &names, &values).expect("bar");
    check_pair(&stem, "Norm per token");
    only_pair(dir.path(), "norms");

    let stem = dir.path().join("empty");
    bar_plot(&stem, "Empty bars", "token", "norm", &[], &[]).expect("empty bar");
    check_pair(&stem, "Empty bars");
    let stem = dir.path().join("nan");
    let nan_names = vec!["a".to_string(), "b".to_string()];
    bar_plot(
        &stem,
        "NaN bars",
        "token",
        "norm",
        &nan_names,
        &[f64::NAN; 2],
    )
    .expect("nan bar");
    check_pair(&stem, "NaN bars");
    let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
    assert!(svg.contains("2 non-finite values not drawn"));
    let bad = bar_plot(&dir.path().join("bad"), "t", "x", "y", &nan_names, &[1.0]);
    assert!(matches!(bad, Err(Error::Invalid(_))));
}

#[test]
fn tick_labels_read_well() {
    assert_eq!(fmt_sig(0.0), "0");
    assert_eq!(fmt_sig(1234.6), "1235");
    assert_eq!(fmt_sig(0.012345), "0.0123");
    assert_eq!(fmt_sig(2.5e-7), "2.5e-7");
    assert_eq!(superscript(-12), "⁻¹²");
    let labels =
        |axis: Axis| -> Vec<String> { axis.ticks.iter().map(|&t| (axis.label)(t)).collect() };
    assert_eq!(
        labels(Axis::linear(-0.05, 1.05, Y_LABELS)),
        ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    );
    assert_eq!(
        labels(Axis::log(10f64.powf(-3.2), 10f64.powf(2.1), X_LABELS)),
        ["0.001", "0.01", "0.1", "1", "10", "100"]
    );
    let far = labels(Axis::log(1e-9, 1e-1, X_LABELS));
    assert!(
        far.len() >= 3 && far.iter().all(|s| s.starts_with("10⁻")),
        "{far:?}"
    );
    // Less than a decade: 1-2-5 ticks, or every digit.
    assert!(labels(Axis::log(10f64.powf(0.1), 10f64.powf(0.6), X_LABELS)).len() >= 3);
    // 95 decades: powers of ten at a 1-2-5 stride of decades, not one tick.
    assert_eq!(
        labels(Axis::log(1e-90, 1e5, Y_LABELS)),
        ["10⁻⁸⁰", "10⁻⁶⁰", "10⁻⁴⁰", "10⁻²⁰", "10⁰"]
    );
}

#[test]
fn long_legend_names_stay_on_the_picture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "W".repeat(60);
    let s = vec![series(&name, vec![1.0, 2.0], vec![3.0, 4.0])];
    let stem = dir.path().join("long");
    line_plot(&stem, &line("Long", &s, false, false)).expect("line plot");
    let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
    let shown = format!("{}…", "W".repeat(31));
    let mut area = String::new();
    let area = SVGBackend::with_string(&mut area, SIZE).into_drawing_area();
    let width = widest(&area, LEGEND_PX, [&shown]);
    let end = text_x(&svg, &shown) + f64::from(width);
    assert!(end <= f64::from(SIZE.0), "the name ends at {end}");
    // Names of the widest glyphs ('‱', 1.5 em) take at most two thirds of
    // the picture: the plot keeps the rest (its two dots 0.9 of its width
    // apart).
    let s = vec![series(&"‱".repeat(60), vec![1.0, 2.0], vec![3.0, 4.0])];
    line_plot(&stem, &line("Wider", &s, false, false)).expect("line plot");
    let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
    let dots: Vec<f64> = svg
        .match_indices("<circle")
        .map(|(at, _)| attribute(&svg[at..], "cx"))
        .collect();
    assert!(dots.len() == 2 && dots[1] - dots[0] > 150.0, "{dots:?}");
}

#[test]
fn axes_pad_the_data() {
    let range = |r: (f64, f64), log: bool| Axis::fit(Some(r), log, X_LABELS).range;
    let close = |a: Range<f64>, b: Range<f64>| {
        assert!(
            (a.start - b.start).abs() < 1e-12 && (a.end - b.end).abs() < 1e-12,
            "{a:?} ≠ {b:?}"
        );
    };
    close(range((0.0, 10.0), false), -0.5..10.5);
    close(range((2.0, 2.0), false), 1.8..2.2);
    close(range((0.0, 0.0), false), -1.0..1.0);
    // Log axes in decades: a single value (to 1e-9 decades) gets one each side.
    close(range((-3.0, -3.0), true), -4.0..-2.0);
    close(range((-3.0, -3.0 + 1e-11), true), -4.0..-2.0 + 1e-11);
    close(range((-2.0, 2.0), true), -2.2..2.2);
    // At most 300 decades, ending where 10^end is finite.
    close(range((-400.0, 400.0), true), 5.0..305.0);
}

#[test]
fn title_text_is_laid_out_without_gaps() {
    // In the PNG, glyphs inside a word are at most a couple of pixels apart:
    // the one wide gap in the title's band is its space. (plotters' bitmap
    // text gave "To ken".)
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("title");
    bar_plot(&stem, "Token sparsity", "token", "norm", &[], &[]).expect("bar");
    let png = tiny_skia::Pixmap::decode_png(&read(with_ext(&stem, "png"))).expect("PNG");
    let width = png.width() as usize;
    let band = &png.pixels()[..40 * width];
    let inked = |x: usize| (0..40).any(|y| band[y * width + x].red() < 128);
    let cols: Vec<usize> = (0..width).filter(|&x| inked(x)).collect();
    let gaps: Vec<usize> = cols.windows(2).map(|w| w[1] - w[0] - 1).collect();
    assert_eq!(gaps.iter().filter(|&&g| g > 3).count(), 1, "gaps {gaps:?}");
    // The title is centered, as wide as plotters' layout says: that scales
    // the font's height (1.164 em) to the size, the SVG's em is size / 1.24.
    let mut svg = String::new();
    let area = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
    let laid = widest(&area, TITLE_PX, ["Token sparsity"]) as f64;
    let (lo, hi) = (cols[0] as f64, cols[cols.len() - 1] as f64 + 1.0);
    let expect = laid * 1.164 / 1.24;
    assert!(
        (hi - lo - expect).abs() <= 3.0,
        "ink {lo}..{hi}, layout {expect} px"
    );
    assert!(
        ((lo + hi) / 2.0 - SIZE.0 as f64 / 2.0).abs() <= 3.0,
        "ink {lo}..{hi}"
    );
}

#[test]
fn names_with_characters_xml_lacks_are_drawn() {
    // XML has no control characters: they are drawn as U+FFFD, not an error.
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("ctl");
    let names = ["t\u{0}".to_string(), "<&>\u{FFFF}".to_string()];
    bar_plot(&stem, "a\u{1}b", "x", "y", &names, &[1.0, 2.0]).expect("bar");
    check_pair(&stem, "a\u{FFFD}b");
    let svg = String::from_utf8(read(with_ext(&stem, "svg"))).expect("UTF-8");
    assert!(svg.contains("t\u{FFFD}") && svg.contains("&lt;&amp;&gt;\u{FFFD}"));
}
