//! `convexformer bench`: the solver on the benchmark instances.

use super::common::write_json;
use clap::Args;
use convexformer::bench::{instance, run as run_one, size};
use convexformer::solver::SolverOptions;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Comma-separated sizes: S (N=1000, n=16, d=32), M (N=5000, n=64, d=64).
    #[arg(long, default_value = "S,M")]
    pub sizes: String,
    /// Timed repeats per size (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Relative duality gap to reach.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Time the nonconvex baselines' training steps instead (steps per second).
    #[arg(long)]
    pub training: bool,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    if a.training {
        use convexformer::baselines::bench::{training_benchmark, training_table, TRAINING_SIZE};
        let r = training_benchmark(&TRAINING_SIZE, 2.0, 5)?;
        print!("{}", training_table(&TRAINING_SIZE, &r));
        if let Some(p) = a.json {
            write_json(
                &p,
                &serde_json::json!({ "size": TRAINING_SIZE, "results": r }),
            )?;
        }
        return Ok(());
    }
    let opts = SolverOptions {
        tol: a.tol,
        ..Default::default()
    };
    opts.validate()?;
    if a.repeats == 0 {
        anyhow::bail!("--repeats must be at least 1");
    }
    let threads = rayon::current_num_threads();
    println!("solver benchmark: squared loss, beta = 0.1 beta_max, relative gap {:.0e}, {threads} threads", a.tol);
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
            runs.push(run_one(&s, &data, &opts)?);
        }
        let mut secs: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
        secs.sort_by(f64::total_cmp);
        let r = &runs[0];
        println!(
            "{:>4} {:>6} {:>4} {:>4} {:>10.4} {:>10.4} {:>8.1} {:>9.1e} {:>7}",
            s.name,
            s.n_samples,
            s.n_tokens,
            s.n_features,
            secs[secs.len() / 2],
            secs[0],
            r.data_passes,
            r.relative_gap,
            r.active_tokens
        );
        all.push(serde_json::json!({ "size": s, "median_seconds": secs[secs.len() / 2], "min_seconds": secs[0], "runs": runs }));
    }
    if let Some(p) = a.json {
        write_json(
            &p,
            &serde_json::json!({ "threads": threads, "tol": a.tol, "results": all }),
        )?;
    }
    Ok(())
}
