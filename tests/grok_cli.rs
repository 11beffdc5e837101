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
