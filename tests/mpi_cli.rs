//! `mpirun -np P convexformer fit ...` end to end (features `cli` and
//! `mpi`; needs `mpirun` on the PATH, as scripts/test-mpi.sh and .ci/run
//! provide): the report equals the one-process run's, from synthetic data
//! and from shard files; a rank that fails ends every rank with its error;
//! commands that do not run data-parallel refuse to run under mpirun.

use convexformer::data::npz::write_npz;
use convexformer::data::synthetic::{generate, SyntheticSpec, TargetKind};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
mod common;
use common::cli::{cf, json, stderr};

const DATA: &str = "synthetic:N=601,n=12,d=5,c=3,active=3,rho=0.7,decay=0.5,seed=4";

/// `mpirun -np ranks convexformer args` in `cwd`, killed (and failed) after
/// two minutes: a hang is a failure, not a stuck CI.
fn mpirun(ranks: usize, args: &[&str], cwd: &Path) -> Output {
    let mut child = Command::new("mpirun")
        .args(["--oversubscribe", "-np", &ranks.to_string()])
        .arg(env!("CARGO_BIN_EXE_convexformer"))
        .args(args)
        .current_dir(cwd)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Ranks waiting in a sum give up their core (more ranks than cores).
        .env("OMPI_MCA_mpi_yield_when_idle", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun on the PATH (apt-get install openmpi-bin)");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().ok();
            panic!("mpirun -np {ranks} {args:?} still running after 120 s: a hang");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn fit_args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "fit",
        "--data",
        data,
        "--model",
        "vector-l1",
        "--intercept",
        "--beta-frac",
        "0.1",
        "--tol",
        "1e-10",
        "--out",
        out,
    ]
}

/// The reports of two runs describe the same certified solution.
fn assert_same(one: &serde_json::Value, many: &serde_json::Value) {
    assert_same_by(one, many, "active_tokens", 1.0);
}

/// [`assert_same`] for a program whose report names its active blocks
/// `active` and whose train error averages `terms_per_sample` squared-error
/// terms per sample.
fn assert_same_by(
    one: &serde_json::Value,
    many: &serde_json::Value,
    active: &str,
    terms_per_sample: f64,
) {
    let (a, b) = (&one["result"], &many["result"]);
    let rel = |k: &str| {
        let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
        (x - y).abs() / x.abs().max(1e-300)
    };
    assert!(b["converged"].as_bool().unwrap(), "{b}");
    assert!(
        rel("objective") <= 1e-10,
        "{} vs {}",
        a["objective"],
        b["objective"]
    );
    assert!(rel("beta_max") <= 1e-12);
    assert!(rel("nonconvex_objective") <= 1e-10);
    assert_eq!(a[active], b[active]);
    // Squared errors: a point with duality gap g has predictions within
    // sqrt(2g) of the optimal ones (the loss ½‖r‖² is 1-strongly convex in
    // them, the penalty convex), so the two residual norms R differ by at most
    // d = sqrt(2g₁) + sqrt(2g₂) and the errors R²/terms by d(R₁ + R₂)/terms.
    // (Not a fixed tolerance: the error is first order in the predictions,
    // which the gap bounds only to its square root.)
    // (The sequence program's report gives its sample count in `result`.)
    let samples = one["data"]["n_samples"]
        .as_f64()
        .or(a["n_samples"].as_f64());
    let terms = samples.unwrap() * terms_per_sample;
    let gap = |r: &serde_json::Value| (2.0 * r["duality_gap"].as_f64().unwrap()).sqrt();
    let norm = |r: &serde_json::Value| (r["train_error"].as_f64().unwrap() * terms).sqrt();
    let bound = (gap(a) + gap(b)) * (norm(a) + norm(b)) / terms;
    let diff = (a["train_error"].as_f64().unwrap() - b["train_error"].as_f64().unwrap()).abs();
    assert!(
        diff <= bound,
        "{} vs {}: {diff:e} > {bound:e}",
        a["train_error"],
        b["train_error"]
    );
    assert_eq!(one["data"]["n_samples"], many["data"]["n_samples"]);
}

#[test]
fn a_fit_on_2_and_4_ranks_reports_the_one_process_solution() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(&fit_args(DATA, "one"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let one = json(&dir.path().join("one/report.json"));
    for ranks in [2, 4] {
        let out = format!("ranks{ranks}");
        let o = mpirun(ranks, &fit_args(DATA, &out), dir.path());
        assert!(o.status.success(), "{}", stderr(&o));
        let many = json(&dir.path().join(&out).join("report.json"));
        assert_same(&one, &many);
        let p = &many["parallel"];
        assert_eq!(p["ranks"], ranks);
        let per_rank: Vec<u64> = serde_json::from_value(p["samples_per_rank"].clone()).unwrap();
        assert_eq!(per_rank.iter().sum::<u64>(), 601);
        assert!(p["bytes_reduced_per_iteration"].as_f64().unwrap() > 0.0);
        // One set of outputs, written once.
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(stdout.matches("wrote ").count(), 1, "{stdout}");
    }
}

#[test]
fn shard_files_by_pattern_give_the_fit_on_their_union_and_a_failing_rank_ends_all() {
    let dir = tempfile::tempdir().unwrap();
    let (all, _) = generate(&SyntheticSpec {
        n_samples: 300,
        n_tokens: 6,
        n_features: 4,
        n_outputs: 3,
        kind: TargetKind::Real,
        seed: 9,
        ..Default::default()
    })
    .unwrap();
    write_npz(&dir.path().join("all.npz"), &all).unwrap();
    std::fs::create_dir(dir.path().join("parts")).unwrap();
    for k in 0..3 {
        let rows: Vec<usize> = (k * 100..(k + 1) * 100).collect();
        let f = dir.path().join(format!("parts/part-{k}.npz"));
        write_npz(&f, &all.select(&rows)).unwrap();
    }
    let o = cf(&fit_args("all.npz", "one"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let one = json(&dir.path().join("one/report.json"));
    let o = mpirun(2, &fit_args("parts/part-*.npz", "parts-out"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same(&one, &json(&dir.path().join("parts-out/report.json")));
    // One file read by every rank, each keeping its block of samples.
    let o = mpirun(3, &fit_args("all.npz", "one-file"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same(&one, &json(&dir.path().join("one-file/report.json")));

    // Rank 1's file is missing: rank 0 would wait in its first sum; the
    // error ends both, with the reason and the rank.
    let o = mpirun(
        2,
        &fit_args("parts/part-0.npz,parts/missing.npz", "broken"),
        dir.path(),
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("missing.npz") && err.contains("rank 1"),
        "{err}"
    );
    // More ranks than files.
    let o = mpirun(4, &fit_args("parts/part-*.npz", "few"), dir.path());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("at least one file per process"),
        "{}",
        stderr(&o)
    );
    // An existing output folder is refused (rank 0), and all ranks end.
    let o = mpirun(2, &fit_args("parts/part-*.npz", "parts-out"), dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
}

#[test]
fn commands_that_run_in_one_process_refuse_to_run_under_mpirun() {
    let dir = tempfile::tempdir().unwrap();
    let o = mpirun(2, &["bench"], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("runs in one process"), "{}", stderr(&o));
}

fn path_args<'a>(data: &'a str, model: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "path", "--data", data, "--model", model, "--betas", "5", "--ratio", "0.05", "--tol",
        "1e-10", "--out", out,
    ]
}

/// Two path.json files hold the same certified points.
fn assert_same_path(one: &serde_json::Value, many: &serde_json::Value, active: &str) {
    // β_max, and so the grid, sums over samples in another order.
    let grid =
        |j: &serde_json::Value| -> Vec<f64> { serde_json::from_value(j["betas"].clone()).unwrap() };
    for (x, y) in grid(one).iter().zip(grid(many)) {
        assert!((x - y).abs() <= 1e-12 * x, "{x} vs {y}");
    }
    let (a, b) = (
        one["path"].as_array().unwrap(),
        many["path"].as_array().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for (p, q) in a.iter().zip(b) {
        let (x, y) = (
            p["objective"].as_f64().unwrap(),
            q["objective"].as_f64().unwrap(),
        );
        assert!((x - y).abs() <= 1e-10 * x.abs().max(1e-300), "{x} vs {y}");
        assert!(q["relative_gap"].as_f64().unwrap() <= 1e-10, "{q}");
        assert_eq!(p[active], q[active]);
    }
    assert_eq!(many["state"], "finished");
}

#[test]
fn a_path_on_2_ranks_is_the_one_process_path_and_resumes_from_what_rank_0_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = "synthetic:N=400,n=8,d=4,c=2,active=3,rho=0.6,seed=2";
    let o = cf(&path_args(data, "vector-l1", "one"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let one = json(&dir.path().join("one/path.json"));
    let o = mpirun(2, &path_args(data, "vector-l1", "two"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("wrote ").count(), 1, "{stdout}");
    assert_same_path(
        &one,
        &json(&dir.path().join("two/path.json")),
        "active_tokens",
    );

    // A run stopped before its last point (what an interrupt leaves: four
    // points, and the last solve's coefficients in checkpoint.safetensors),
    // resumed on 2 ranks: only rank 0 reads the folder; every rank gets the
    // grid, the count of finished points and the warm start.
    let stopped = dir.path().join("stopped");
    std::fs::create_dir(&stopped).unwrap();
    for f in std::fs::read_dir(dir.path().join("one")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, stopped.join(f.file_name().unwrap())).unwrap();
    }
    let mut j = one.clone();
    j["path"].as_array_mut().unwrap().pop();
    j["state"] = "interrupted".into();
    std::fs::write(stopped.join("path.json"), j.to_string()).unwrap();
    let mut args = path_args(data, "vector-l1", "stopped");
    args.push("--resume");
    let o = mpirun(2, &args, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4 of 5 points already finished"),
        "{}",
        stderr(&o)
    );
    let resumed = json(&stopped.join("path.json"));
    assert_same_path(&one, &resumed, "active_tokens");
    // Started from the last point's own solution: certified at once.
    let last = &resumed["path"][4];
    assert!(last["iterations"].as_u64().unwrap() <= 1, "{last}");
}

#[test]
fn a_resumed_fit_on_2_ranks_starts_from_the_model_rank_0_reads() {
    let dir = tempfile::tempdir().unwrap();
    let o = cf(&fit_args(DATA, "one"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let report = dir.path().join("one/report.json");
    let one = json(&report);
    // As an interrupt leaves it (here at the optimum itself).
    let mut j = one.clone();
    j["result"]["stop_reason"] = "interrupted".into();
    std::fs::write(&report, j.to_string()).unwrap();
    let mut args = fit_args(DATA, "one");
    args.push("--resume");
    let o = mpirun(2, &args, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed = json(&report);
    assert_same(&one, &resumed);
    assert_eq!(resumed["resumed"], true);
    assert!(resumed["result"]["iterations"].as_u64().unwrap() <= 1);
}

#[test]
fn the_sequence_program_fits_and_walks_its_path_on_ranks_as_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = "synthetic:N=120,n=5,d=3,c=2,heads=2,support=2,seed=3";
    fn fit(out: &str) -> Vec<&str> {
        vec![
            "fit",
            "--data",
            "synthetic:N=120,n=5,d=3,c=2,heads=2,support=2,seed=3",
            "--model",
            "sequence",
            "--beta-frac",
            "0.2",
            "--tol",
            "1e-10",
            "--out",
            out,
        ]
    }
    let o = cf(&fit("one"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let one = json(&dir.path().join("one/report.json"));
    for ranks in [2, 3] {
        let out = format!("ranks{ranks}");
        let o = mpirun(ranks, &fit(&out), dir.path());
        assert!(o.status.success(), "{}", stderr(&o));
        let many = json(&dir.path().join(&out).join("report.json"));
        // Its train error is per position: n = 5 tokens per sample.
        assert_same_by(&one, &many, "active_matrices", 5.0);
        assert_eq!(one["result"]["n_samples"], many["result"]["n_samples"]);
        assert_eq!(many["parallel"]["ranks"], ranks);
    }
    let o = cf(&path_args(data, "sequence", "path-one"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mpirun(2, &path_args(data, "sequence", "path-two"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let one_path = json(&dir.path().join("path-one/path.json"));
    assert_same_path(
        &one_path,
        &json(&dir.path().join("path-two/path.json")),
        "active_matrices",
    );
    // Stopped in one process before its last point, resumed on 2 ranks
    // (whose β_max differs from the recorded one in its last bits).
    let stopped = dir.path().join("path-one");
    let mut j = one_path.clone();
    j["path"].as_array_mut().unwrap().pop();
    j["state"] = "interrupted".into();
    std::fs::write(stopped.join("path.json"), j.to_string()).unwrap();
    let mut args = path_args(data, "sequence", "path-one");
    args.push("--resume");
    let o = mpirun(2, &args, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed = json(&stopped.join("path.json"));
    assert_same_path(&one_path, &resumed, "active_matrices");
    assert!(resumed["path"][4]["iterations"].as_u64().unwrap() <= 1);
    // Held-out samples cut from each shard would differ from one process's.
    let mut args = fit("valfrac");
    args.extend(["--val-frac", "0.2"]);
    let o = mpirun(2, &args, dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--val-frac"), "{}", stderr(&o));
}

/// Ctrl-C in a terminal reaches mpirun (the ranks run in process groups of
/// their own); Open MPI's mpirun passes it on to every rank as SIGTERM,
/// about 2 s later (measured here), then ends the job. The ranks agree to
/// stop, rank 0 writes what they computed, and `--resume` on ranks
/// finishes the path as a run never stopped.
#[test]
fn ctrl_c_to_mpirun_stops_every_rank_after_writing_and_resume_on_ranks_finishes() {
    // Correlated tokens, FISTA and a tight tolerance: each β takes a while.
    let slow = |out: &'static str| {
        vec![
            "path",
            "--data",
            "synthetic:N=16000,n=16,d=16,active=3,noise=0.1,seed=1,rho=0.5",
            "--solver",
            "fista",
            "--tol",
            "1e-10",
            "--betas",
            "30",
            "--out",
            out,
        ]
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stopped");
    let mut child = Command::new("mpirun")
        .args(["--oversubscribe", "-np", "2"])
        .arg(env!("CARGO_BIN_EXE_convexformer"))
        .args(slow("stopped"))
        .current_dir(dir.path())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_mpi_yield_when_idle", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while common::cli::recorded(&out, "path.json", "path") < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the path finished before it could be interrupted: make it slower"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no point in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    common::cli::signal(&child, "-INT");
    let signalled = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            signalled.elapsed() < Duration::from_secs(60),
            "mpirun still running 60 s after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    eprintln!("mpirun exited {:?} after the signal", signalled.elapsed());
    assert!(
        err.contains("SIGTERM: finishing the current iteration"),
        "{err}"
    );
    let j = json(&out.join("path.json"));
    assert_eq!(j["state"], "interrupted", "{err}");
    let stopped = j["path"].as_array().unwrap().len();
    eprintln!("stopped with {stopped} of 30 points");
    assert!((2..30).contains(&stopped), "{stopped} points");

    let mut args = slow("stopped");
    args.push("--resume");
    let o = mpirun(2, &args, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cf(&slow("one"), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same_path(
        &json(&dir.path().join("one/path.json")),
        &json(&out.join("path.json")),
        "active_tokens",
    );
}
