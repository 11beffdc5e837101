//! `convexformer teacher` end to end on a tiny random BERT and the shipped
//! text sample: no download, every output written, the certificates and the
//! error definitions hold, bad input refused.

use convexformer::teacher::tiny::{write_tiny_bert, TinySize};
mod common;
use common::cli::cf;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny_corpus.txt");

fn args<'a>(model: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "teacher",
        "--model-dir",
        model,
        "--corpus",
        CORPUS,
        "--out",
        out,
        "--positions",
        "0,1",
        "--max-tokens",
        "10",
        "--proj-dim",
        "8",
        "--betas",
        "3",
        "--softmax-heads",
        "2",
        "--softmax-head-dim",
        "4",
        "--softmax-steps",
        "20",
        "--eval-every",
        "10",
        "--batch",
        "8",
    ]
}

#[test]
fn teacher_writes_curves_summary_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bert");
    let text = std::fs::read_to_string(CORPUS).unwrap();
    write_tiny_bert(&model, &text, TinySize::default(), 1).unwrap();
    let (m, out) = (model.to_str().unwrap(), dir.path().join("out"));
    let o = cf(&args(m, out.to_str().unwrap()), dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["curves.csv", "positions.csv", "summary.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    for p in [
        "error_vs_time",
        "attention_teacher",
        "attention_softmax",
        "attention_convex",
        "example_teacher",
        "example_softmax",
        "token_sparsity",
    ] {
        assert!(
            out.join(format!("{p}.png")).is_file() && out.join(format!("{p}.svg")).is_file(),
            "{p}"
        );
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["convex"]["all_points_certified"], true);
    for model in ["convex", "softmax"] {
        let e = s[model]["test_error"].as_f64().unwrap();
        assert!(e.is_finite() && e > 0.0, "{model} test error {e}");
    }
    assert_eq!(s["softmax"]["step"], 20);
    let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.starts_with("convex,")).count(), 3);
    assert_eq!(csv.lines().filter(|l| l.starts_with("softmax,")).count(), 3);
    // The same command again needs --force.
    let again = cf(&args(m, out.to_str().unwrap()), dir.path());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn teacher_refuses_bad_input_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = cf(
        &args(dir.path().to_str().unwrap(), out.to_str().unwrap()),
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("setup_teacher.sh"));
    let mut a = args(dir.path().to_str().unwrap(), out.to_str().unwrap());
    a.extend(["--positions", "0,x"]);
    let o = cf(&a, dir.path());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--positions"));
    assert!(!out.exists(), "nothing is written on bad input");
}

#[test]
fn sigint_keeps_the_solved_positions_and_the_students_state_and_resume_continues_both() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bert");
    let text = std::fs::read_to_string(CORPUS).unwrap();
    write_tiny_bert(&model, &text, TinySize::default(), 1).unwrap();
    let m = model.to_str().unwrap();
    // The softmax student trains for its 2 s budget: the signal lands there.
    let mut a = args(m, "out");
    let steps = a.iter().position(|s| *s == "--softmax-steps").unwrap();
    a[steps + 1] = "100000000";
    a.extend(["--softmax-seconds", "2"]);
    let out = dir.path().join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_convexformer"))
        .args(&a)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let solved = || {
        std::fs::read_to_string(out.join("positions.csv"))
            .map_or(0, |s| s.lines().count().saturating_sub(1))
    };
    common::cli::wait_until(&mut child, "two solved positions", || solved() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    common::cli::signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(130), "{err}");
    let s = common::cli::json(&out.join("summary.json"));
    assert_eq!(s["state"], "interrupted");
    let kept = s["convex"]["positions"].clone();
    assert_eq!(kept.as_array().unwrap().len(), 2);
    assert!(out.join("checkpoints/softmax.safetensors").is_file());

    let mut r = a.clone();
    r.push("--resume");
    let o = cf(&r, dir.path());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("2 of 2 positions already solved; the softmax student continues from step"),
        "{err}"
    );
    assert!(
        !err.contains("convex r="),
        "a kept position was solved again: {err}"
    );
    let s = common::cli::json(&out.join("summary.json"));
    assert_eq!(s["state"], "finished");
    assert_eq!(s["convex"]["positions"], kept);
    assert!(s["softmax"]["test_error"].as_f64().unwrap().is_finite());
    // Its 2 s budget counts the training before and after the stop.
    let secs = s["softmax"]["seconds"].as_f64().unwrap();
    assert!((2.0..3.0).contains(&secs), "{secs}");
    assert!(!out.join("checkpoints").exists());
}
