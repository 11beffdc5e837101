//! Long runs keep what they computed: a `path` stopped by SIGINT in the
//! middle leaves every finished point on disk, says it was interrupted, exits
//! with 130, and `--resume` finishes it with the results of a run that was
//! never stopped.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
mod common;
use common::cli::{cf, json, stderr};

/// Correlated tokens, FISTA and a tight tolerance: each β takes a while.
const SLOW: &[&str] = &[
    "path",
    "--data",
    "synthetic:N=8000,n=16,d=16,active=3,noise=0.1,seed=1,rho=0.5",
    "--solver",
    "fista",
    "--tol",
    "1e-10",
    "--betas",
    "10",
];

fn args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = SLOW.to_vec();
    v.extend(["--out", out]);
    v.extend(extra);
    v
}

/// The command line started in `dir`, its stdout dropped and stderr piped.
fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_convexformer"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The points recorded in `dir/path.json` (0 while it is not there yet).
fn points(dir: &Path) -> usize {
    common::cli::recorded(dir, "path.json", "path")
}

/// path.csv parsed: header and rows, every row as long as the header.
fn csv(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir.join("path.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "a truncated row: {r:?}");
    }
    (header, rows)
}

#[test]
fn sigint_in_the_middle_keeps_finished_points_and_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stopped");

    // Stopped once two points are on disk, while a later one is being solved.
    let started = Instant::now();
    let mut child = spawn(dir.path(), &args("stopped", &[]));
    while points(&out) < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the path finished before it could be interrupted: make it slower"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no point in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Into the next solve (a point takes a few hundred ms here), so the
    // signal usually lands mid-solve; between two points is checked too.
    std::thread::sleep(Duration::from_millis(100));
    let signalled = started.elapsed();
    common::cli::signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    let stopped_after = started.elapsed() - signalled;
    let err = stderr(&o);
    eprintln!("SIGINT after {signalled:?}; the process exited {stopped_after:?} later");
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted: the results computed so far are in") && err.contains("--resume"),
        "{err}"
    );

    // What it left: a run marked interrupted, every finished point whole.
    let j = json(&out.join("path.json"));
    assert_eq!(j["state"], "interrupted");
    let path = j["path"].as_array().unwrap();
    let total = j["betas"].as_array().unwrap().len();
    assert_eq!(total, 10);
    assert!(
        path.len() >= 2 && path.len() < total,
        "{} points",
        path.len()
    );
    let (last, finished) = path.split_last().unwrap();
    for p in finished {
        assert_eq!(p["stop_reason"], "converged", "{p}");
        assert!(p["relative_gap"].as_f64().unwrap() <= 1e-10);
    }
    // The point in progress is reported with its (valid) certificate, or, if
    // the signal fell between two points, the last one is finished.
    let last_reason = last["stop_reason"].as_str().unwrap();
    eprintln!(
        "stopped with {} of {total} points, the last one {last_reason}",
        path.len()
    );
    assert!(
        ["converged", "interrupted"].contains(&last_reason),
        "{last}"
    );
    if last_reason == "interrupted" {
        let (p, d) = (
            last["objective"].as_f64().unwrap(),
            last["dual_objective"].as_f64().unwrap(),
        );
        assert!(
            d <= p + 1e-9 * p.abs().max(1.0),
            "dual {d} above primal {p}"
        );
    }
    let (header, rows) = csv(&out);
    assert_eq!(rows.len(), path.len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for (row, p) in rows.iter().zip(path) {
        let beta: f64 = row[col("beta")].parse().unwrap();
        assert_eq!(beta, p["beta"].as_f64().unwrap());
        let objective: f64 = row[col("objective")].parse().unwrap();
        assert_eq!(objective, p["objective"].as_f64().unwrap());
        assert_eq!(row[col("stop_reason")], p["stop_reason"].as_str().unwrap());
    }
    assert!(out.join("checkpoint.safetensors").exists());
    assert!(out.join("active_tokens.png").exists());
    let leftovers = common::cli::temporaries(&out);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A different command line is refused, naming the option; nothing changes.
    let before = std::fs::read(out.join("path.json")).unwrap();
    let mut other = args("stopped", &["--resume"]);
    let tol = other.iter().position(|a| *a == "1e-10").unwrap();
    other[tol] = "1e-8";
    let o = cf(&other, dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--tol: 1e-10 in the recorded run, 1e-8 now"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(out.join("path.json")).unwrap(), before);
    // Without --resume or --force the folder is not touched either.
    let o = cf(&args("stopped", &[]), dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(out.join("path.json")).unwrap(), before);

    // Resumed: finishes, keeping the finished points as they were.
    let started = Instant::now();
    let o = cf(&args("stopped", &["--resume"]), dir.path());
    eprintln!("--resume took {:?}", started.elapsed());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!(
        "{} of 10 points already finished",
        finished.len() + usize::from(last_reason == "converged")
    )));
    let resumed = json(&out.join("path.json"));
    assert_eq!(resumed["state"], "finished");
    let resumed = resumed["path"].as_array().unwrap();
    assert_eq!(resumed.len(), total);
    for (a, b) in finished.iter().zip(resumed) {
        assert_eq!(a, b, "a finished point changed on resume");
    }
    assert_eq!(csv(&out).1.len(), total);

    // The same results as a run never stopped, to the solver's tolerance.
    let o = cf(&args("whole", &[]), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = json(&dir.path().join("whole/path.json"));
    let whole = whole["path"].as_array().unwrap();
    for (r, w) in resumed.iter().zip(whole) {
        assert_eq!(r["beta"], w["beta"]);
        assert_eq!(r["stop_reason"], "converged");
        let (pr, pw) = (
            r["objective"].as_f64().unwrap(),
            w["objective"].as_f64().unwrap(),
        );
        // Both certified: each within 1e-10·max(1, |P|) of the optimum.
        assert!(
            (pr - pw).abs() <= 2e-10 * pw.abs().max(1.0) * 1.01,
            "objective {pr} resumed vs {pw} uninterrupted"
        );
        assert_eq!(r["active_tokens"], w["active_tokens"]);
    }
}

#[test]
fn resume_refuses_a_folder_without_a_run_and_goes_with_force_only_apart() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(&["path", "--out", "none", "--resume"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nothing to resume in none"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("none").exists());
    let o = cf(&["path", "--out", "x", "--resume", "--force"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn sigint_during_fit_writes_the_point_reached_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f");
    // Strongly correlated tokens: FISTA needs seconds to reach 1e-12.
    let fit_args = [
        "fit",
        "--data",
        "synthetic:N=8000,n=16,d=16,active=3,noise=0.1,seed=1,rho=0.9",
        "--solver",
        "fista",
        "--tol",
        "1e-12",
        "--beta-frac",
        "0.01",
        "--out",
        "f",
    ];
    let mut child = spawn(dir.path(), &fit_args);
    // The folder's marker is written just before the solve starts.
    let started = Instant::now();
    while !out.join(".convexformer-output").exists() {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the fit finished before it could be interrupted: make it slower"
    );
    common::cli::signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let r = json(&out.join("report.json"));
    let res = &r["result"];
    assert_eq!(res["stop_reason"], "interrupted");
    assert_eq!(res["converged"], false);
    let (p, d) = (
        res["objective"].as_f64().unwrap(),
        res["dual_objective"].as_f64().unwrap(),
    );
    assert!(
        d <= p && res["relative_gap"].as_f64().unwrap() > 1e-12,
        "{res}"
    );
    assert!(out.join("model.safetensors").exists());
    // The saved point predicts like any model.
    let o = cf(
        &[
            "predict",
            "--model",
            "f",
            "--data",
            "synthetic:N=50,n=16,d=16,active=3,noise=0.1,seed=2,rho=0.9",
            "--out",
            "p.npy",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // --resume continues from the saved point to the certified optimum.
    let reached = p;
    let o = cf(&[&fit_args[..], &["--resume"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming the interrupted fit"));
    let r = json(&out.join("report.json"));
    let res = &r["result"];
    assert_eq!(res["stop_reason"], "converged");
    assert_eq!(r["resumed"], true);
    assert!(res["relative_gap"].as_f64().unwrap() <= 1e-12);
    assert!(res["objective"].as_f64().unwrap() <= reached);
    // A finished fit has nothing to resume; another β is another fit.
    let o = cf(&[&fit_args[..], &["--resume"]].concat(), dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing to resume"), "{}", stderr(&o));
}

#[test]
fn sigterm_stops_cleanly_and_a_second_signal_exits_at_once_leaving_whole_files() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("twice");
    let mut child = spawn(dir.path(), &args("twice", &[]));
    common::cli::wait_until(&mut child, "two points", || points(&out) >= 2);
    common::cli::signal(&child, "-TERM");
    // The second signal only after the first was seen (two pending signals
    // of one kind may be delivered as one).
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let seen = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("SIGTERM: finishing the current iteration"));
    assert!(seen.is_some(), "no message for the first signal");
    common::cli::signal(&child, "-INT");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(131), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("Ctrl-C again: stopping now")),
        "{rest:?}"
    );
    // Whatever was on disk is whole: the CSV rows match the JSON points,
    // and no temporary of a write in progress is left.
    assert!(common::cli::temporaries(&out).is_empty());
    let j = json(&out.join("path.json"));
    let n = j["path"].as_array().unwrap().len();
    assert!(n >= 2);
    assert_eq!(csv(&out).1.len(), n);
}

/// The runs recorded in `dir/summary.json` (0 while it is not there yet).
fn compare_runs(dir: &Path) -> usize {
    common::cli::recorded(dir, "summary.json", "runs")
}

#[test]
fn sigint_during_compare_keeps_finished_runs_and_resume_trains_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmp");
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "compare",
            "--data",
            "synthetic:N=400,n=6,d=4,active=2,seed=3",
            // Softmax attention trains for its whole budget (simplex
            // attention stops at the certified optimum, here in milliseconds).
            "--methods",
            "softmax",
            "--seeds",
            "4",
            "--budget-seconds",
            "1",
            "--out",
            "cmp",
        ];
        v.extend(extra);
        v
    };
    let mut child = spawn(dir.path(), &args(&[]));
    common::cli::wait_until(&mut child, "a finished run", || compare_runs(&out) >= 1);
    std::thread::sleep(Duration::from_millis(200));
    common::cli::signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let j = json(&out.join("summary.json"));
    assert_eq!(j["state"], "interrupted");
    let kept = j["runs"].as_array().unwrap().clone();
    assert!((1..4).contains(&kept.len()), "{} runs", kept.len());
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    let seeds: std::collections::BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        seeds.len(),
        kept.len(),
        "compare.csv holds the finished runs only"
    );

    let o = cf(&args(&["--resume", "--seeds", "5"]), dir.path());
    assert_eq!(o.status.code(), Some(2), "--seeds twice is a usage error");
    let mut other = args(&["--resume"]);
    other[6] = "5";
    let o = cf(&other, dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--seeds: 4 in the recorded run, 5 now"),
        "{}",
        stderr(&o)
    );

    let o = cf(&args(&["--resume"]), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{} of 4 runs already finished", kept.len())),
        "{}",
        stderr(&o)
    );
    let j = json(&out.join("summary.json"));
    assert_eq!(j["state"], "finished");
    let runs = j["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(
        &runs[..kept.len()],
        &kept[..],
        "finished runs are kept as they were"
    );
    assert!(out.join("suboptimality_time.png").exists());
}

#[test]
fn a_write_failing_mid_run_is_a_clear_error_and_leaves_only_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("broken");
    let mut child = spawn(dir.path(), &args("broken", &[]));
    common::cli::wait_until(&mut child, "two points", || points(&out) >= 2);
    // An I/O error on the next write, whoever runs the test (root ignores
    // read-only folders): path.csv's name now belongs to a folder, so
    // renaming the next version into place fails.
    loop {
        let csv = out.join("path.csv");
        let _ = std::fs::remove_file(&csv);
        if std::fs::create_dir(&csv).is_ok() {
            break;
        }
    }
    let before = points(&out);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write") && err.contains("path.csv"),
        "{err}"
    );
    // Every file left is whole: path.json parses and holds the points
    // written before the failure; no temporary file is left behind.
    assert!(points(&out) >= before);
    let j = json(&out.join("path.json"));
    assert_eq!(j["state"], "running");
    let leftovers = common::cli::temporaries(&out);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert!(checkpoint_is_whole(&out));
}

/// checkpoint.safetensors, if there, parses.
fn checkpoint_is_whole(out: &Path) -> bool {
    match std::fs::read(out.join("checkpoint.safetensors")) {
        Err(_) => true,
        Ok(b) => safetensors::SafeTensors::deserialize(&b).is_ok(),
    }
}
