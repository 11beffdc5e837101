//! The demo (`convexformer` with no arguments): a path on planted synthetic
//! data showing that the certified solutions read the planted tokens.

use super::common::{prepare_out_dir, Loaded, MARKER};
use super::path::{table, PathFiles, RunState};
use anyhow::bail;
use clap::Args;
use convexformer::comm::SingleProcess;
use convexformer::data::synthetic;
use convexformer::fit::{Fit, PathBetas};
use convexformer::loss::Loss;
use convexformer::problem::Program;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder for the demo's table and plots (reused by later demos).
    #[arg(long, default_value = "convexformer-demo")]
    pub out: PathBuf,
    /// Synthetic data spec (see `fit --help`).
    #[arg(
        long,
        default_value = "synthetic:N=600,n=16,d=8,active=3,noise=0.1,seed=0"
    )]
    pub data: String,
    /// Number of β values on the path.
    #[arg(long, default_value_t = 12)]
    pub betas: usize,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            out: PathBuf::from("convexformer-demo"),
            data: "synthetic:N=600,n=16,d=8,active=3,noise=0.1,seed=0".into(),
            betas: 12,
        }
    }
}

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    if !a.data.starts_with("synthetic") {
        bail!("the demo runs on synthetic data: use `convexformer path --data FILE` for files");
    }
    // The demo may replace its own earlier output, nothing else.
    let ours = a.out.join(MARKER).exists();
    prepare_out_dir(&a.out, ours)?;
    let spec = synthetic::parse(&a.data)?;
    let (data, planted) = synthetic::generate(&spec)?;
    let (train, val) = data.split(0.25, 0)?;
    let loaded = Loaded {
        total_samples: train.n_samples,
        train,
        val: Some(val),
        source: a.data.clone(),
        planted: Some(planted.clone()),
        shards: None,
    };
    let (n, t, d, _) = loaded.train.shape();
    println!("convexformer demo: scalar convex attention (SPEC §4a), squared loss");
    println!(
        "data: {n} training + {} validation samples of {t} tokens × {d} features; the teacher reads tokens {planted:?}\n",
        loaded.val.as_ref().map_or(0, |v| v.n_samples)
    );
    let fit = Fit::scalar();
    let opts = fit.options.clone();
    let mut reports = Vec::new();
    let end = fit.path_on(
        &loaded.train,
        loaded.val.as_ref(),
        &PathBetas::Grid {
            n: a.betas,
            ratio: 0.01,
        },
        None,
        &SingleProcess,
        |_, _, f| {
            reports.push(f.report);
            Ok::<(), convexformer::Error>(())
        },
    )?;
    print!("{}", table(&reports, Loss::Squared));
    PathFiles {
        out: &a.out,
        loaded: &loaded,
        program: Program::Scalar,
        loss: Loss::Squared,
        opts: &opts,
        arguments: serde_json::json!({ "demo": true, "data": a.data, "betas": a.betas }),
    }
    .finish(&end.grid, &reports, RunState::Finished)?;

    let best = reports
        .iter()
        .min_by(|x, y| {
            x.validation_error
                .unwrap_or(f64::INFINITY)
                .total_cmp(&y.validation_error.unwrap_or(f64::INFINITY))
        })
        .expect("a non-empty path");
    let certified = reports.iter().filter(|r| r.solve.converged).count();
    let exact = reports
        .iter()
        .filter(|r| r.recovery_relative_difference <= 1e-9)
        .count();
    println!();
    println!(
        "certified: {certified}/{} solutions with relative duality gap <= {:.0e}; recovered heads reproduce the convex objective in {exact}/{}",
        reports.len(),
        opts.tol,
        reports.len()
    );
    let exact: Vec<f64> = reports
        .iter()
        .filter(|r| r.active_tokens == planted)
        .map(|r| r.solve.beta / r.solve.beta_max)
        .collect();
    match (exact.first(), exact.last()) {
        (Some(hi), Some(lo)) => println!(
            "planted tokens recovered exactly for beta/beta_max in [{lo:.4}, {hi:.4}] ({} of {} path points)",
            exact.len(),
            reports.len()
        ),
        _ => println!("the planted tokens were NOT recovered exactly at any beta of the path"),
    }
    println!(
        "best validation error at beta/beta_max = {:.4}: active tokens {:?} ({})",
        best.solve.beta / best.solve.beta_max,
        best.active_tokens,
        if best.active_tokens == planted {
            "the planted set"
        } else {
            "not the planted set"
        }
    );
    println!(
        "attention of the {} recovered heads is one-hot on tokens {:?}",
        best.n_heads,
        best.heads
            .iter()
            .filter_map(|h| h.attention.iter().position(|&a| a == 1.0))
            .collect::<Vec<_>>()
    );
    println!("wrote {}/path.csv, path.json and plots (active_tokens, group_norms, token_sparsity as .png and .svg)", a.out.display());
    Ok(())
}
