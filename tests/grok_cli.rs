//! `convexformer grok` end to end on a tiny task: every model writes its
//! curve, the summary has the milestones and the certificate, the plots exist.

mod common;
use common::cli::{cf, stderr};

#[test]
fn grok_writes_curves_summary_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(
        &[
            "grok",
            "--op",
            "sub",
            "--p",
            "7",
            "--frac",
            "0.6",
            "--steps",
            "40",
            "--eval-every",
            "20",
            "--width",
            "16",
            "--heads",
            "2",
            "--batch",
            "16",
            "--layers",
            "1,2",
            "--global-gates",
            "4",
            "--global-betas",
            "2",
            "--out",
            "g",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("g");
    let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "model,layers,seed,step,seconds,train_loss,train_acc,val_loss,val_acc,beta,relative_gap"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for (model, layers) in [
        ("standard", "1"),
        ("standard", "2"),
        ("convex", "1"),
        ("convex", "2"),
        ("global", "1"),
    ] {
        let n = rows
            .iter()
            .filter(|r| r[0] == model && r[1] == layers)
            .count();
        assert!(n >= 3, "{model} L{layers}: {n} rows");
    }
    assert!(rows.iter().any(|r| r[0] == "standard" && r[3] == "40"));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    for r in runs {
        assert!(r["milestones"].is_object());
        assert!(r["final_train_acc"].as_f64().unwrap() >= 0.0);
        assert!(r["final_val_acc"].as_f64().unwrap() >= 0.0);
    }
    let g = runs.iter().find(|r| r["model"] == "global").unwrap();
    assert!(g["final_certificate"]["relative_gap"].is_f64());
    assert!(runs
        .iter()
        .filter(|r| r["model"] != "global")
        .all(|r| r["steps_per_second"].as_f64().unwrap() > 0.0));
    assert_eq!(s["task"]["train_pairs"], 29);
    for f in ["grok.png", "grok.svg", "grok_loss.png", "grok_loss.svg"] {
        assert!(out.join(f).metadata().unwrap().len() > 0, "{f}");
    }
}

#[test]
fn grok_rejects_bad_input_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expect) in [
        (vec!["grok", "--op", "pow"], "unknown operation"),
        (vec!["grok", "--p", "91"], "prime"),
        (vec!["grok", "--model", "lstm"], "unknown model"),
        (vec!["grok", "--layers", "0"], "at least 1 layer"),
        (
            vec![
                "grok", "--width", "30", "--heads", "4", "--p", "7", "--model", "standard",
            ],
            "multiple",
        ),
    ] {
        let o = cf(&args, dir.path());
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains(expect), "{args:?}: {e}");
    }
}

/// A small grokking comparison that takes a few seconds per model.
fn long_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "grok",
        "--op",
        "sub",
        "--p",
        "23",
        "--frac",
        "0.6",
        "--steps",
        "8000",
        "--eval-every",
        "100",
        "--width",
        "32",
        "--heads",
        "2",
        "--batch",
        "64",
        "--model",
        "standard,convex",
        "--checkpoint-every",
        "500",
        "--out",
        out,
    ];
    v.extend(extra);
    v
}

/// curves.csv without its seconds column (timings differ between runs).
fn untimed_curves(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("curves.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(4);
            f.join(",")
        })
        .collect()
}

/// The last step of the standard transformer in curves.csv (0 while absent).
fn standard_step(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("curves.csv"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("standard,"))
        .filter_map(|l| l.split(',').nth(3)?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn sigint_stops_training_with_a_checkpoint_and_resume_gives_the_uninterrupted_curves() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stopped");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_convexformer"))
        .args(long_args("stopped", &[]))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Into the first model's training, past its first checkpoint.
    common::cli::wait_until(&mut child, "step 600", || standard_step(&out) >= 600);
    common::cli::signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("run the same command with --resume"), "{err}");

    let s = common::cli::json(&out.join("summary.json"));
    assert_eq!(s["state"], "interrupted");
    assert_eq!(s["in_progress"]["run"], "standard L1 s0");
    let stopped_at = s["in_progress"]["step"].as_u64().unwrap() as usize;
    assert!((600..8000).contains(&stopped_at), "{stopped_at}");
    assert_eq!(s["runs"].as_array().unwrap().len(), 0);
    // The curve so far, up to the step it stopped at, and the state to go on from.
    assert_eq!(standard_step(&out), stopped_at);
    assert!(out.join("checkpoints/standard-L1-s0.safetensors").exists());
    assert!(out.join("grok.png").exists());

    // Another command line is refused, naming the option.
    let mut other = long_args("stopped", &["--resume"]);
    other[8] = "9000";
    let o = cf(&other, dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--steps: 8000 in the recorded run, 9000 now"),
        "{}",
        stderr(&o)
    );

    // While it goes on, curves.csv keeps the steps before the stop.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_convexformer"))
        .args(long_args("stopped", &["--resume"]))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first_step = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join("curves.csv"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("standard,"))
            .filter_map(|l| l.split(',').nth(3)?.parse::<usize>().ok())
            .min()
    };
    common::cli::wait_until(&mut child, "progress after the stop", || {
        standard_step(&out) > stopped_at
    });
    assert_eq!(
        first_step(&out),
        Some(0),
        "the curve before the stop is kept"
    );
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "standard L1 s0: continuing from step {stopped_at}"
        )),
        "{err}"
    );
    let s = common::cli::json(&out.join("summary.json"));
    assert_eq!(s["state"], "finished");
    assert_eq!(s["runs"].as_array().unwrap().len(), 2);
    assert!(
        !out.join("checkpoints").exists(),
        "checkpoints of finished runs are removed"
    );

    // Seeded training continues exactly: the curves of a run never stopped.
    let o = cf(&long_args("whole", &[]), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        untimed_curves(&out),
        untimed_curves(&dir.path().join("whole"))
    );
}
