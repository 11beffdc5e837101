//! `convexformer bench`: the solver on the benchmark instances.

use super::common::{check_out_file, write_json};
use anyhow::Context;
use clap::Args;
use convexformer::bench::{
    hard_case, hard_instance, instance, run as run_one, run_hard, run_hard_seeds, size, CaseResult,
    HARD_CASES,
};
use convexformer::data::npz::write_npz;
use convexformer::solver::{SolverKind, SolverOptions};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The suite: planted (i.i.d. tokens, squared loss, see --sizes) or hard
    /// (data shaped like real hidden states, several programs and losses, see --cases).
    #[arg(long, default_value = "planted")]
    pub suite: String,
    /// Planted suite: comma-separated sizes: S (N=1000, n=16, d=32), M (N=5000, n=64, d=64).
    #[arg(long, default_value = "S,M")]
    pub sizes: String,
    /// Hard suite: comma-separated cases (default all): sq-0.1, sq-0.02,
    /// logit-0.1, vl1-sq-0.1, gated-ce.
    #[arg(long)]
    pub cases: Option<String>,
    /// Inner solver: auto, fista, prox-newton or cd.
    #[arg(long, default_value = "auto")]
    pub solver: String,
    /// Cap on seconds per solve.
    #[arg(long, default_value_t = 300.0)]
    pub max_seconds: f64,
    /// Timed repeats per size or case (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Relative duality gap to reach.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Hard suite: write each case's data as DIR/<case>.npz and its result
    /// (objective, β, gap, …) as DIR/<case>.json, for other solvers to compare.
    #[arg(long)]
    pub save_data: Option<PathBuf>,
    /// Overwrite existing files of --save-data.
    #[arg(long)]
    pub force: bool,
    /// Hard suite: also solve each case once on the data of each of seeds
    /// 1..K-1 and report the passes' spread over seeds 0..K-1 (seed 0 is the
    /// suite's instance, whose first timed solve counts for it).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Hard suite: divide every case's N by this (quick smoke tests).
    #[arg(long, default_value_t = 1, hide = true)]
    pub scale: usize,
    /// Time the nonconvex baselines' training steps instead (steps per second).
    #[arg(long)]
    pub training: bool,
    /// --training: steps timed per grokking model (compare with
    /// `scripts/grok_pytorch.py --steps N`).
    #[arg(long, default_value_t = 300)]
    pub training_steps: usize,
    /// --training: which tables, of baselines, grok, teacher.
    #[arg(long, value_delimiter = ',', default_value = "baselines,grok,teacher")]
    pub training_parts: Vec<String>,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    if a.training {
        use convexformer::baselines::bench::{training_benchmark, training_table, TRAINING_SIZE};
        use convexformer::grok::bench::{grok_training_benchmark, grok_training_table};
        use convexformer::teacher::bench::{student_training_benchmark, student_training_table};
        let parts = &a.training_parts;
        if let Some(p) = parts
            .iter()
            .find(|p| !["baselines", "grok", "teacher"].contains(&p.as_str()))
        {
            anyhow::bail!("--training-parts takes baselines, grok, teacher; got {p:?}");
        }
        let wants = |p: &str| parts.iter().any(|q| q == p);
        let r = match wants("baselines") {
            true => Some(training_benchmark(&TRAINING_SIZE, 2.0, 5)?),
            false => None,
        };
        if let Some(r) = &r {
            print!("{}", training_table(&TRAINING_SIZE, r));
        }
        let g = match wants("grok") {
            true => Some(grok_training_benchmark(a.training_steps)?),
            false => None,
        };
        if let Some(g) = &g {
            print!("{}", grok_training_table(g));
        }
        let t = match wants("teacher") {
            true => Some(student_training_benchmark(a.training_steps)?),
            false => None,
        };
        if let Some(t) = &t {
            print!("{}", student_training_table(t));
        }
        if let Some(p) = a.json {
            write_json(
                &p,
                &serde_json::json!({ "size": TRAINING_SIZE, "results": r, "grok": g, "teacher_student": t }),
            )?;
        }
        return Ok(());
    }
    let opts = SolverOptions {
        tol: a.tol,
        max_seconds: a.max_seconds,
        solver: SolverKind::parse(&a.solver)?,
        ..Default::default()
    };
    opts.validate()?;
    if a.repeats == 0 {
        anyhow::bail!("--repeats must be at least 1");
    }
    if a.seeds == 0 {
        anyhow::bail!("--seeds must be at least 1 (seed 0 is the suite's instance)");
    }
    match a.suite.as_str() {
        "planted" => {
            if a.save_data.is_some() || a.cases.is_some() || a.seeds > 1 {
                anyhow::bail!("--save-data, --cases and --seeds apply to --suite hard only");
            }
            planted(&a, &opts)
        }
        "hard" => hard(&a, &opts),
        s => anyhow::bail!("unknown suite '{s}': use planted or hard"),
    }
}

/// The median and the minimum of the runs' seconds.
fn median_min(secs: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut secs: Vec<f64> = secs.collect();
    secs.sort_by(f64::total_cmp);
    (secs[secs.len() / 2], secs[0])
}

fn planted(a: &BenchArgs, opts: &SolverOptions) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    println!(
        "solver benchmark: squared loss, beta = 0.1 beta_max, relative gap {:.0e}, solver {}, {threads} threads",
        a.tol,
        opts.solver.name()
    );
    println!(
        "{:>4} {:>6} {:>4} {:>4} {:>10} {:>10} {:>8} {:>9} {:>7}",
        "size", "N", "n", "d", "median s", "min s", "passes", "rel gap", "active"
    );
    let mut all = Vec::new();
    for name in a.sizes.split(',') {
        let s = size(name.trim())?;
        let data = instance(&s)?;
        let mut runs = Vec::new();
        for _ in 0..a.repeats {
            runs.push(run_one(&s, &data, opts)?);
        }
        let (median, min) = median_min(runs.iter().map(|r| r.seconds));
        let r = &runs[0];
        println!(
            "{:>4} {:>6} {:>4} {:>4} {:>10.4} {:>10.4} {:>8.1} {:>9.1e} {:>7}",
            s.name,
            s.n_samples,
            s.n_tokens,
            s.n_features,
            median,
            min,
            r.data_passes,
            r.relative_gap,
            r.active_tokens
        );
        all.push(serde_json::json!({ "size": s, "median_seconds": median, "min_seconds": min, "runs": runs }));
    }
    if let Some(p) = &a.json {
        write_json(
            p,
            &serde_json::json!({ "suite": "planted", "threads": threads, "tol": a.tol,
                "solver": opts.solver.name(), "results": all }),
        )?;
    }
    Ok(())
}

fn hard(a: &BenchArgs, opts: &SolverOptions) -> anyhow::Result<()> {
    let names: Vec<String> = match &a.cases {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => HARD_CASES.iter().map(|s| s.to_string()).collect(),
    };
    let cases = names
        .iter()
        .map(|n| hard_case(n, a.scale))
        .collect::<convexformer::Result<Vec<_>>>()?;
    if let Some(dir) = &a.save_data {
        for c in &cases {
            for ext in ["npz", "json"] {
                check_out_file(&dir.join(format!("{}.{ext}", c.name)), a.force)?;
            }
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    let threads = rayon::current_num_threads();
    println!(
        "hard suite: rho 0.8, decay 0.5, no intercept, relative gap {:.0e}, max {} s per solve, {threads} threads",
        a.tol, a.max_seconds
    );
    println!(
        "{:<11} {:<11} {:>5} {:>3} {:>3} {:>10} {:>10} {:>8} {:>9} {:>5} {:>6}",
        "case", "solver", "N", "n", "d", "median s", "min s", "passes", "rel gap", "conv", "active"
    );
    let mut all = Vec::new();
    for c in &cases {
        let (data, masks) = hard_instance(c)?;
        if let Some(dir) = &a.save_data {
            write_npz(&dir.join(format!("{}.npz", c.name)), &data)?;
        }
        let mut runs: Vec<CaseResult> = Vec::new();
        for _ in 0..a.repeats {
            runs.push(run_hard(c, &data, masks.as_ref(), opts)?);
        }
        let (median, min) = median_min(runs.iter().map(|r| r.seconds));
        let r = &runs[0];
        println!(
            "{:<11} {:<11} {:>5} {:>3} {:>3} {:>10.4} {:>10.4} {:>8.1} {:>9.1e} {:>5} {:>6}",
            c.name,
            r.solver,
            c.spec.n_samples,
            c.spec.n_tokens,
            c.spec.n_features,
            median,
            min,
            r.data_passes,
            r.relative_gap,
            if r.converged { "yes" } else { "no" },
            r.active_blocks
        );
        if let Some(dir) = &a.save_data {
            write_json(
                &dir.join(format!("{}.json", c.name)),
                &serde_json::json!({
                    "case": c.name,
                    "program": r.program,
                    "loss": r.loss,
                    "beta": r.beta,
                    "beta_max": r.beta_max,
                    "beta_frac": c.beta_frac,
                    "n_samples": c.spec.n_samples,
                    "n_tokens": c.spec.n_tokens,
                    "n_features": c.spec.n_features,
                    "n_outputs": r.n_outputs,
                    "intercept": false,
                    "gates": c.gates,
                    "spec": c.spec,
                    "solver": r.solver,
                    "tol": a.tol,
                    "objective": r.objective,
                    "relative_gap": r.relative_gap,
                    "converged": r.converged,
                    "seconds": r.seconds,
                    "median_seconds": median,
                    "data_passes": r.data_passes,
                }),
            )?;
        }
        let mut entry = serde_json::json!({ "case": c, "median_seconds": median, "min_seconds": min, "runs": runs });
        if a.seeds > 1 {
            let seeds: Vec<u64> = (0..a.seeds).collect();
            let spread = run_hard_seeds(c, &seeds, opts, Some(r))?;
            println!(
                "  {} over data seeds 0..{}: passes min {:.1}, mean {:.1}, max {:.1}; {} of {} certified",
                c.name,
                a.seeds - 1,
                spread.min_passes,
                spread.mean_passes,
                spread.max_passes,
                spread.converged,
                a.seeds
            );
            entry["seeds"] = serde_json::to_value(&spread)?;
        }
        all.push(entry);
    }
    if let Some(p) = &a.json {
        write_json(
            p,
            &serde_json::json!({ "suite": "hard", "threads": threads, "tol": a.tol,
                "solver": opts.solver.name(), "max_seconds": a.max_seconds, "results": all }),
        )?;
    }
    Ok(())
}
