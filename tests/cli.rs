//! The command line, end to end: outputs, certificates, and bad input.

use convexformer::data::npz::write_npz;
use std::path::Path;
mod common;
use common::cli::{cf, json, stderr};

const DATA: &str = "synthetic:N=300,n=10,d=4,active=2,noise=0.05,seed=3";

#[test]
fn fit_writes_a_certified_report_and_a_model_that_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(
        &[
            "fit",
            "--data",
            DATA,
            "--beta-frac",
            "0.2",
            "--val-frac",
            "0.2",
            "--out",
            "fit",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&dir.path().join("fit/report.json"));
    let res = &r["result"];
    for key in [
        "objective",
        "dual_objective",
        "duality_gap",
        "relative_gap",
        "iterations",
        "data_passes",
        "seconds",
        "beta",
        "active_tokens",
        "converged",
        "nonconvex_objective",
        "heads",
    ] {
        assert!(!res[key].is_null(), "report lacks {key}");
    }
    assert_eq!(res["converged"], true);
    assert!(res["relative_gap"].as_f64().unwrap() <= 1e-6);
    assert!(res["recovery_relative_difference"].as_f64().unwrap() <= 1e-9);
    // The planted tokens are what the model reads.
    assert_eq!(res["active_tokens"], r["data"]["planted_tokens"]);
    assert!(r["command"].as_str().unwrap().contains("--beta-frac 0.2"));

    // Predict on data written to .npz, with metrics.
    let (ds, _) = convexformer::data::synthetic::generate(
        &convexformer::data::synthetic::parse(DATA).unwrap(),
    )
    .unwrap();
    write_npz(&dir.path().join("d.npz"), &ds).unwrap();
    let o = cf(
        &[
            "predict", "--model", "fit", "--data", "d.npz", "--out", "p.npy",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("p.npy").exists());
    let m = json(&dir.path().join("p.metrics.json"));
    assert!(m["error"].as_f64().unwrap() < 0.5, "{m}");
    // Inputs without targets: predictions, no metrics.
    let x =
        ndarray::Array3::from_shape_vec((ds.n_samples, ds.n_tokens, ds.n_features), ds.x.to_vec())
            .unwrap();
    let mut npz =
        ndarray_npy::NpzWriter::new(std::fs::File::create(dir.path().join("xonly.npz")).unwrap());
    npz.add_array("X", &x).unwrap();
    npz.finish().unwrap();
    let o = cf(
        &[
            "predict",
            "--model",
            "fit",
            "--data",
            "xonly.npz",
            "--out",
            "q.npy",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("q.npy").exists() && !dir.path().join("q.metrics.json").exists());
    // Refuses to overwrite the predictions without --force.
    let o = cf(
        &[
            "predict", "--model", "fit", "--data", "d.npz", "--out", "p.npy",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"));
}

#[test]
fn path_writes_csv_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(
        &[
            "path",
            "--data",
            DATA,
            "--betas",
            "6",
            "--model",
            "vector-l1",
            "--out",
            "p",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(dir.path().join("p/path.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.starts_with("beta,beta_over_max,objective"));
    assert!(csv.lines().skip(1).all(|l| l.contains(",converged,")));
    let j = json(&dir.path().join("p/path.json"));
    assert_eq!(j["state"], "finished");
    assert_eq!(j["betas"].as_array().unwrap().len(), 6);
    for f in ["active_tokens", "group_norms", "token_sparsity"] {
        for ext in ["png", "svg"] {
            let p = dir.path().join(format!("p/{f}.{ext}"));
            assert!(
                std::fs::metadata(&p)
                    .map(|m| m.len() > 100)
                    .unwrap_or(false),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn classification_programs_run() {
    let dir = tempfile::tempdir().unwrap();
    for (model, loss, data) in [
        (
            "scalar",
            "logistic",
            "synthetic:N=200,n=6,d=3,kind=binary,active=2",
        ),
        (
            "vector-l1",
            "cross-entropy",
            "synthetic:N=200,n=6,d=3,c=3,kind=classes,active=2",
        ),
        (
            "vector-l2",
            "cross-entropy",
            "synthetic:N=200,n=6,d=3,c=3,kind=classes,active=2",
        ),
    ] {
        let out = format!("o-{model}-{loss}");
        let o = cf(
            &[
                "fit",
                "--data",
                data,
                "--model",
                model,
                "--loss",
                loss,
                "--beta-frac",
                "0.3",
                "--intercept",
                "--out",
                &out,
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{model} {loss}: {}", stderr(&o));
        let r = json(&dir.path().join(out).join("report.json"));
        assert_eq!(r["result"]["converged"], true);
        assert!(
            r["result"]["recovery_relative_difference"]
                .as_f64()
                .unwrap()
                <= 1e-9
        );
    }
}

#[test]
fn bad_input_fails_cleanly_and_overwrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let cases: &[(&[&str], &str)] = &[
        (
            &["fit", "--data", DATA, "--beta", "0", "--out", "a"],
            "beta",
        ),
        (
            &["fit", "--data", DATA, "--beta", "-1", "--out", "a"],
            "beta",
        ),
        (&["fit", "--data", DATA, "--out", "a"], "--beta"),
        (
            &[
                "fit", "--data", DATA, "--beta", "1", "--tol", "0", "--out", "a",
            ],
            "tol",
        ),
        (
            &[
                "fit", "--data", DATA, "--beta", "1", "--model", "mlp", "--out", "a",
            ],
            "unknown model",
        ),
        (
            &[
                "fit", "--data", DATA, "--beta", "1", "--loss", "hinge", "--out", "a",
            ],
            "unknown loss",
        ),
        (
            &[
                "fit", "--data", DATA, "--beta", "1", "--loss", "logistic", "--out", "a",
            ],
            "logistic",
        ),
        (
            &[
                "fit",
                "--data",
                "synthetic:N=0",
                "--beta",
                "1",
                "--out",
                "a",
            ],
            "N",
        ),
        (
            &[
                "fit",
                "--data",
                "synthetic:foo=1",
                "--beta",
                "1",
                "--out",
                "a",
            ],
            "foo",
        ),
        (
            &["fit", "--data", "missing.npz", "--beta", "1", "--out", "a"],
            "missing.npz",
        ),
        (
            &["fit", "--data", "bad.npz", "--beta", "1", "--out", "a"],
            "bad.npz",
        ),
        (
            &["fit", "--data", "nan.npz", "--beta", "1", "--out", "a"],
            "non-finite",
        ),
        (
            &["fit", "--data", "data.txt", "--beta", "1", "--out", "a"],
            ".npz",
        ),
        (
            &[
                "fit",
                "--data",
                DATA,
                "--beta",
                "1",
                "--model",
                "scalar",
                "--out",
                "a",
                "--unknown",
            ],
            "unexpected argument",
        ),
        (
            &[
                "fit",
                "--data",
                "synthetic:c=2",
                "--beta",
                "1",
                "--model",
                "scalar",
                "--out",
                "a",
            ],
            "one output",
        ),
        (
            &[
                "predict", "--model", "nowhere", "--data", DATA, "--out", "x.npy",
            ],
            "nowhere",
        ),
    ];
    std::fs::write(p.join("bad.npz"), b"PK\x03\x04 definitely not a zip").unwrap();
    std::fs::write(p.join("data.txt"), b"1 2 3").unwrap();
    // write_npz refuses NaN, so write this one with ndarray-npy directly.
    let mut x = ndarray::Array3::<f64>::from_elem((4, 2, 3), 0.5);
    x[[1, 0, 1]] = f64::NAN;
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(p.join("nan.npz")).unwrap());
    npz.add_array("X", &x).unwrap();
    npz.add_array("y", &ndarray::Array1::<f64>::ones(4))
        .unwrap();
    npz.finish().unwrap();
    for (args, needle) in cases {
        let o = cf(args, p);
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = stderr(&o);
        assert!(e.contains(needle), "{args:?}: '{e}' lacks '{needle}'");
        assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
    }
    // An output folder with the user's file in it is refused, the file untouched.
    std::fs::create_dir(p.join("mine")).unwrap();
    std::fs::write(p.join("mine/notes.txt"), "keep me").unwrap();
    let o = cf(
        &["fit", "--data", DATA, "--beta-frac", "0.5", "--out", "mine"],
        p,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(p.join("mine/notes.txt")).unwrap(),
        "keep me"
    );
    assert!(!p.join("mine/report.json").exists());
    let o = cf(
        &[
            "fit",
            "--data",
            DATA,
            "--beta-frac",
            "0.5",
            "--out",
            "mine",
            "--force",
        ],
        p,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(p.join("mine/notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn the_demo_recovers_the_planted_tokens_with_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(&[], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("certified: 12/12"), "{out}");
    assert!(
        out.contains("reproduce the convex objective in 12/12"),
        "{out}"
    );
    assert!(out.contains("planted tokens recovered"), "{out}");
    assert!(dir
        .path()
        .join("convexformer-demo/token_sparsity.png")
        .exists());
    // A second demo run replaces its own output.
    let o = cf(&[], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn gated_model_fits_saves_its_gates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(
        &[
            "fit",
            "--data",
            DATA,
            "--model",
            "gated",
            "--gates",
            "4",
            "--gate-kind",
            "samples",
            "--beta-frac",
            "0.1",
            "--out",
            "g",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&dir.path().join("g/report.json"));
    assert_eq!(r["result"]["converged"], true);
    assert!(
        r["result"]["recovery_relative_difference"]
            .as_f64()
            .unwrap()
            <= 1e-9
    );
    assert!(r["result"]["active_gate_tokens"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    let train_err = r["result"]["train_error"].as_f64().unwrap();
    // Predicting on the training data through the saved gates gives the training error.
    let (ds, _) = convexformer::data::synthetic::generate(
        &convexformer::data::synthetic::parse(DATA).unwrap(),
    )
    .unwrap();
    write_npz(&dir.path().join("d.npz"), &ds).unwrap();
    let o = cf(
        &[
            "predict", "--model", "g", "--data", "d.npz", "--out", "p.npy",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = json(&dir.path().join("p.metrics.json"));
    assert!(
        (m["error"].as_f64().unwrap() - train_err).abs() < 1e-9 * train_err.max(1.0),
        "{m} vs {train_err}"
    );
    let o = cf(
        &[
            "fit", "--data", DATA, "--model", "gated", "--gates", "0", "--beta", "1", "--out", "h",
        ],
        dir.path(),
    );
    assert!(!o.status.success() && stderr(&o).contains("gate"));
}

#[test]
fn sequence_model_is_certified_and_plots_its_mixing_matrices() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(
        &[
            "fit",
            "--model",
            "sequence",
            "--data",
            "synthetic:N=200,n=5,d=3,c=2",
            "--beta-frac",
            "0.1",
            "--out",
            "s",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&dir.path().join("s/report.json"));
    assert_eq!(r["result"]["converged"], true);
    assert!(
        r["result"]["recovery_relative_difference"]
            .as_f64()
            .unwrap()
            <= 1e-9
    );
    assert!(dir.path().join("s/mixing_0.png").exists());
    // Too large for memory: refused with the size and the alternative.
    let o = cf(
        &[
            "fit",
            "--model",
            "sequence",
            "--data",
            "synthetic:N=2,n=4000,d=64,c=8",
            "--beta",
            "1",
            "--out",
            "big",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("bytes") && e.contains("vector-l1"), "{e}");
}

/// Small planted sequence data written to `d.npz` (and the data set).
fn sequence_npz(dir: &Path, spec: &str, name: &str) -> convexformer::data::Dataset<'static> {
    use convexformer::data::npz::write_npz;
    use convexformer::sequence::{generate_sequence, parse_sequence_synthetic};
    let ds = generate_sequence(&parse_sequence_synthetic(spec).unwrap())
        .unwrap()
        .0;
    write_npz(&dir.join(name), &ds).unwrap();
    ds
}

#[test]
fn sequence_model_saves_and_predicts_its_training_error() {
    let dir = tempfile::tempdir().unwrap();
    let ds = sequence_npz(
        dir.path(),
        "synthetic:N=60,n=4,d=3,c=2,noise=0.1,seed=5",
        "d.npz",
    );
    let fit = |out: &str| {
        cf(
            &[
                "fit",
                "--model",
                "sequence",
                "--data",
                "d.npz",
                "--beta-frac",
                "0.1",
                "--out",
                out,
            ],
            dir.path(),
        )
    };
    let o = fit("s");
    assert!(o.status.success(), "{}", stderr(&o));
    let train_error = json(&dir.path().join("s/report.json"))["result"]["train_error"]
        .as_f64()
        .unwrap();
    let predict = |data: &str, out: &str| {
        cf(
            &[
                "predict",
                "--model-file",
                "s/model.safetensors",
                "--data",
                data,
                "--out",
                out,
            ],
            dir.path(),
        )
    };
    let o = predict("d.npz", "p.npy");
    assert!(o.status.success(), "{}", stderr(&o));
    let p: ndarray::Array3<f64> = ndarray_npy::read_npy(dir.path().join("p.npy")).unwrap();
    assert_eq!(p.shape(), &[60, 4, 2]);
    // The training error, recomputed from the written predictions and in metrics.
    let sse: f64 = p.iter().zip(&ds.y).map(|(a, b)| (a - b) * (a - b)).sum();
    let mse = sse / (60 * 4) as f64;
    assert!(
        (mse - train_error).abs() <= 1e-9 * train_error.max(1.0),
        "{mse} vs {train_error}"
    );
    let m = json(&dir.path().join("p.metrics.json"));
    assert!((m["error"].as_f64().unwrap() - train_error).abs() <= 1e-9 * train_error.max(1.0));

    // Wrong n: a clear error, no file.
    sequence_npz(
        dir.path(),
        "synthetic:N=10,n=5,d=3,c=2,seed=6",
        "wrong_n.npz",
    );
    let o = predict("wrong_n.npz", "q.npy");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("4×3") && e.contains("5×3"), "{e}");
    assert!(!dir.path().join("q.npy").exists());
    // fit refuses to overwrite its output folder.
    let o = fit("s");
    assert!(!o.status.success() && stderr(&o).contains("--force"));

    // --resume: nothing to resume after a finished fit; a fit recorded as
    // interrupted continues from its model to the certified optimum.
    let resume = |out: &str| {
        cf(
            &[
                "fit",
                "--model",
                "sequence",
                "--data",
                "d.npz",
                "--beta-frac",
                "0.1",
                "--out",
                out,
                "--resume",
            ],
            dir.path(),
        )
    };
    let o = resume("s");
    assert!(
        !o.status.success() && stderr(&o).contains("nothing to resume"),
        "{}",
        stderr(&o)
    );
    let report = dir.path().join("s/report.json");
    let mut r = json(&report);
    let objective = r["result"]["objective"].as_f64().unwrap();
    r["result"]["stop_reason"] = "interrupted".into();
    std::fs::write(&report, serde_json::to_string(&r).unwrap()).unwrap();
    let o = resume("s");
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&report);
    assert_eq!(r["resumed"], true);
    assert_eq!(r["result"]["stop_reason"], "converged");
    let again = r["result"]["objective"].as_f64().unwrap();
    assert!((again - objective).abs() <= 2e-6 * objective.abs().max(1.0));
}

#[test]
fn sequence_path_is_warm_started_certified_and_plotted() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "path",
        "--model",
        "sequence",
        "--data",
        "synthetic:N=60,n=4,d=2,c=2,seed=7",
        "--betas",
        "5",
        "--ratio",
        "0.05",
        "--val-frac",
        "0.25",
        "--out",
        "p",
    ];
    let o = cf(&args, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(dir.path().join("p/path.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6);
    let col = |name: &str| rows[0].iter().position(|h| *h == name).unwrap();
    assert_eq!(rows[1][col("beta_over_max")].parse::<f64>().unwrap(), 1.0);
    assert_eq!(rows[1][col("active_count")], "0");
    for r in &rows[1..] {
        assert_eq!(r[col("converged")], "true");
        assert!(r[col("relative_gap")].parse::<f64>().unwrap() <= 1e-6);
        assert!(
            r[col("recovery_relative_difference")]
                .parse::<f64>()
                .unwrap()
                <= 1e-9
        );
        assert!(!r[col("validation_error")].is_empty());
    }
    // Objectives fall as β falls.
    let obj: Vec<f64> = rows[1..]
        .iter()
        .map(|r| r[col("objective")].parse().unwrap())
        .collect();
    assert!(
        obj.windows(2)
            .all(|w| w[1] <= w[0] + 1e-5 * w[0].abs().max(1.0)),
        "{obj:?}"
    );
    let j = json(&dir.path().join("p/path.json"));
    assert_eq!(j["path"].as_array().unwrap().len(), 5);
    for f in ["objective", "active_matrices"] {
        for ext in ["png", "svg"] {
            let p = dir.path().join(format!("p/{f}.{ext}"));
            assert!(
                std::fs::metadata(&p)
                    .map(|m| m.len() > 100)
                    .unwrap_or(false),
                "{}",
                p.display()
            );
        }
    }
    // No overwrite without --force; with it, the run succeeds.
    let o = cf(&args, dir.path());
    assert!(!o.status.success() && stderr(&o).contains("--force"));
    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(cf(&forced, dir.path()).status.success());

    // A run stopped after two points (path.json as a stop leaves it) resumes
    // with the other three, to the same certified objectives.
    let whole = json(&dir.path().join("p/path.json"));
    let mut stopped = whole.clone();
    stopped["state"] = "interrupted".into();
    stopped["path"] = whole["path"].as_array().unwrap()[..2].to_vec().into();
    std::fs::write(
        dir.path().join("p/path.json"),
        serde_json::to_string(&stopped).unwrap(),
    )
    .unwrap();
    let mut other = args.to_vec();
    other[6] = "6";
    other.push("--resume");
    let o = cf(&other, dir.path());
    assert!(
        !o.status.success() && stderr(&o).contains("--betas: 5 in the recorded run, 6 now"),
        "{}",
        stderr(&o)
    );
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let o = cf(&resumed, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 of 5 points already finished"),
        "{}",
        stderr(&o)
    );
    let j = json(&dir.path().join("p/path.json"));
    assert_eq!(j["state"], "finished");
    let (a, b) = (
        j["path"].as_array().unwrap(),
        whole["path"].as_array().unwrap(),
    );
    assert_eq!(a.len(), 5);
    assert_eq!(a[..2], b[..2], "finished points are kept as they were");
    for (r, w) in a.iter().zip(b) {
        let (pr, pw) = (
            r["objective"].as_f64().unwrap(),
            w["objective"].as_f64().unwrap(),
        );
        assert!((pr - pw).abs() <= 2e-6 * pw.abs().max(1.0), "{pr} vs {pw}");
    }
}

/// The hard suite on one case, scaled down: the table, the JSON, the saved
/// data and its result file, and no overwriting without --force.
#[test]
fn bench_hard_suite_runs_one_case_and_saves_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--suite",
        "hard",
        "--cases",
        "sq-0.1",
        "--scale",
        "25",
        "--repeats",
        "1",
        "--solver",
        "fista",
        "--json",
        "bench.json",
        "--save-data",
        "data",
    ];
    let o = cf(&args, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("hard suite") && out.contains("median s"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("sq-0.1"))
        .unwrap_or_else(|| panic!("no sq-0.1 row: {out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "fista", "{row}");
    assert_eq!(cols[2..5], ["200", "64", "64"], "{row}");
    assert!(cols[5..9].iter().all(|v| v.parse::<f64>().is_ok()), "{row}");
    assert!(["yes", "no"].contains(&cols[9]), "{row}");
    assert!(cols[10].parse::<usize>().is_ok(), "{row}");

    let r = json(&dir.path().join("bench.json"));
    assert_eq!(r["suite"], "hard");
    assert_eq!(r["solver"], "fista");
    let run = &r["results"][0]["runs"][0];
    assert_eq!(run["case"], "sq-0.1");
    assert!(run["objective"].as_f64().unwrap() > 0.0);

    let data = convexformer::data::npz::read_npz(&dir.path().join("data/sq-0.1.npz")).unwrap();
    assert_eq!(data.shape(), (200, 64, 64, 1));
    let saved = json(&dir.path().join("data/sq-0.1.json"));
    for key in [
        "case",
        "program",
        "loss",
        "beta",
        "beta_max",
        "n_outputs",
        "objective",
        "relative_gap",
        "seconds",
        "data_passes",
    ] {
        assert!(!saved[key].is_null(), "{key} missing: {saved}");
    }
    assert_eq!(saved["program"], "scalar");
    assert_eq!(saved["loss"], "squared");
    let (b, bmax) = (
        saved["beta"].as_f64().unwrap(),
        saved["beta_max"].as_f64().unwrap(),
    );
    assert!((b - 0.1 * bmax).abs() <= 1e-12 * bmax, "{saved}");
    assert_eq!(saved["objective"], run["objective"]);

    // The saved files are not overwritten without --force.
    let o = cf(&args, dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let mut forced = args.to_vec();
    forced.push("--force");
    let o = cf(&forced, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));

    // An unknown case or suite is refused with the choices.
    let o = cf(&["bench", "--suite", "hard", "--cases", "sq-9"], dir.path());
    assert!(
        !o.status.success() && stderr(&o).contains("sq-0.1"),
        "{}",
        stderr(&o)
    );
    let o = cf(&["bench", "--suite", "easy"], dir.path());
    assert!(!o.status.success() && stderr(&o).contains("planted or hard"));

    // --seeds K: the case on the data of each seed 0..K-1, and the spread
    // of its passes; seed 0 is the instance of the table's row.
    let seeds = [&args[..9], &["--seeds", "3", "--json", "seeds.json"]].concat();
    let o = cf(&seeds, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("sq-0.1 over data seeds 0..2: passes min"),
        "{out}"
    );
    let r = json(&dir.path().join("seeds.json"));
    let spread = &r["results"][0]["seeds"];
    assert_eq!(spread["seeds"], serde_json::json!([0, 1, 2]));
    let objective = |run: &serde_json::Value| run["objective"].as_f64().unwrap();
    let runs = spread["runs"].as_array().unwrap();
    // Seed 0's is the table's first solve, not solved again: same timing.
    let first = &r["results"][0]["runs"][0];
    assert_eq!(objective(&runs[0]), objective(first));
    assert_eq!(runs[0]["seconds"], first["seconds"]);
    assert!(
        objective(&runs[1]) != objective(&runs[0]) && objective(&runs[2]) != objective(&runs[1])
    );
    let passes: Vec<f64> = runs
        .iter()
        .map(|r| r["data_passes"].as_f64().unwrap())
        .collect();
    let mean = passes.iter().sum::<f64>() / 3.0;
    assert!(
        (spread["mean_passes"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{spread}"
    );
    let o = cf(&["bench", "--suite", "hard", "--seeds", "0"], dir.path());
    assert!(!o.status.success() && stderr(&o).contains("--seeds must be at least 1"));
    let o = cf(&["bench", "--seeds", "3"], dir.path());
    assert!(!o.status.success() && stderr(&o).contains("--suite hard only"));
}

#[test]
fn a_solve_that_would_not_fit_in_memory_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["fit", "path"] {
        let mut args = vec![
            cmd,
            "--data",
            "synthetic:N=2000,n=16,d=16,active=3,seed=1",
            "--out",
            "small",
        ];
        if cmd == "fit" {
            args.extend(["--beta-frac", "0.1"]);
        }
        // A machine (or a scheduler's allocation) with 1 MB left.
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_convexformer"))
            .args(&args)
            .current_dir(dir.path())
            .env("CONVEXFORMER_MEMORY_BYTES", "1000000")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains("needs about") && err.contains("only 1000000 bytes"),
            "{cmd}: {err}"
        );
        assert!(err.contains("fewer samples"), "{cmd}: {err}");
        assert!(!dir.path().join("small").exists(), "{cmd} wrote its folder");
        // With the memory it needs, the same command runs.
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_convexformer"))
            .args(&args)
            .current_dir(dir.path())
            .env("CONVEXFORMER_MEMORY_BYTES", "100000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        std::fs::remove_dir_all(dir.path().join("small")).unwrap();
    }
}
