//! `convexformer fit|path|predict` for the sequence-output program (SPEC §4c).

pub(super) mod path;
pub(super) mod predict;

use super::common::{command_line, prepare_out_dir, write_json, ProblemArgs};
use super::fit::FitArgs;
use super::resume;
use anyhow::bail;
use convexformer::data::npz::read_npz_as;
use convexformer::data::{Dataset, Targets};
use convexformer::loss::Loss;
use convexformer::model::SavedModel;
use convexformer::sequence::{
    generate_sequence, parse_sequence_synthetic, plot_mixing_matrices, sequence_beta_max,
    solve_sequence_from, SequenceReport,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;

/// Loads sequence data: `synthetic[:...]` (planted mixing heads) or a .npz
/// whose `y` is N×n×c (or N×n labels).
fn load(spec: &str) -> anyhow::Result<Dataset> {
    if spec == "synthetic" || spec.starts_with("synthetic:") {
        let s = parse_sequence_synthetic(spec)?;
        return Ok(generate_sequence(&s)?.0);
    }
    let path = Path::new(spec);
    if path.extension().and_then(|e| e.to_str()) != Some("npz") {
        bail!("sequence data must be synthetic[:...] or a .npz with X (N×n×d) and y (N×n×c or N×n labels)");
    }
    Ok(read_npz_as(path, true, Some(Targets::PerPosition))?.0)
}

fn split(ds: Dataset, frac: Option<f64>, seed: u64) -> anyhow::Result<(Dataset, Option<Dataset>)> {
    let Some(f) = frac else { return Ok((ds, None)) };
    let n_val = ((ds.n_samples as f64) * f).round() as usize;
    if !(f > 0.0 && f < 1.0) || n_val == 0 || n_val >= ds.n_samples {
        bail!(
            "--val-frac {f} of {} samples leaves an empty train or validation set",
            ds.n_samples
        );
    }
    let mut idx: Vec<usize> = (0..ds.n_samples).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let (val, train) = idx.split_at(n_val);
    Ok((ds.select(train), Some(ds.select(val))))
}

/// What reports record of the data, and what `--resume` checks: the spec
/// and the training set's shape.
fn data_json(spec: &str, train: &Dataset) -> serde_json::Value {
    serde_json::json!({
        "spec": spec,
        "train_shape": [train.n_samples, train.n_tokens, train.n_features, train.n_outputs],
    })
}

/// Refuses the options the sequence program does not have; loads and splits.
fn load_split(p: &ProblemArgs) -> anyhow::Result<(Loss, Dataset, Option<Dataset>)> {
    let loss = Loss::parse(&p.loss)?;
    if p.val.is_some() {
        bail!("--val is not supported for the sequence model yet: use --val-frac");
    }
    if p.intercept {
        bail!("the sequence model fits no intercept: drop --intercept");
    }
    let (train, val) = split(load(&p.data)?, p.val_frac, p.split_seed)?;
    Ok((loss, train, val))
}

pub fn run(a: FitArgs) -> anyhow::Result<()> {
    let opts = a.problem.solver_options()?;
    let (loss, train, val) = load_split(&a.problem)?;
    let bmax = sequence_beta_max(&train, loss)?;
    let beta = a.beta.resolve(bmax, None)?;
    let arguments = resume::arguments(&a)?;
    let data = data_json(&a.problem.data, &train);
    let warm = if a.resume {
        let warm = read_resumed(&a.out, &arguments, &data)?;
        eprintln!("resuming the interrupted fit in {}", a.out.display());
        Some(warm)
    } else {
        prepare_out_dir(&a.out, a.force)?;
        None
    };
    let sol = solve_sequence_from(&train, loss, beta, &opts, warm.as_deref())?;
    let report = SequenceReport::new(&train, loss, &sol, bmax, val.as_ref())?;
    let plots = plot_mixing_matrices(&a.out, "mixing", &report.heads, train.n_tokens)?;
    sol.to_model(loss).save(&a.out.join("model.safetensors"))?;
    write_json(
        &a.out.join("report.json"),
        &serde_json::json!({
            "command": command_line(),
            "arguments": arguments,
            "resumed": a.resume,
            "data": data,
            "solver": opts,
            "result": report,
        }),
    )?;
    println!(
        "sequence program: beta {:.4e} ({:.3} of beta_max) objective {:.8e} gap {:.2e} (relative {:.2e}) {}",
        beta,
        beta / bmax,
        report.solve.objective,
        report.solve.duality_gap,
        report.solve.relative_gap,
        if report.solve.converged { "certified" } else { "NOT converged" }
    );
    println!(
        "{} iterations, {:.3} s; {} active (feature, output) matrices; {} heads; heads' nonconvex objective differs by {:.1e}",
        report.solve.iterations,
        report.solve.seconds,
        report.active_matrices.len(),
        report.n_heads,
        report.recovery_relative_difference
    );
    if report.solve.stop_reason == convexformer::solver::StopReason::Interrupted {
        return Err(super::interrupt::Interrupted::wrote_to(&a.out, true));
    }
    println!(
        "wrote {0}/report.json, {0}/model.safetensors and {1} mixing-matrix plots",
        a.out.display(),
        plots.len()
    );
    Ok(())
}

/// The coefficients an interrupted fit in `out` reached, once the command
/// line and the data are shown to be the recorded ones.
fn read_resumed(
    out: &Path,
    arguments: &serde_json::Value,
    data: &serde_json::Value,
) -> anyhow::Result<Vec<f64>> {
    let report = resume::read_summary(out, "report.json")?;
    resume::check_same_arguments(&report["arguments"], arguments, out)?;
    resume::check_same_data(&report["data"], data, out)?;
    let reason = &report["result"]["stop_reason"];
    if reason != "interrupted" {
        bail!(
            "nothing to resume in {}: its fit ended with stop reason {reason}; to solve again, run without --resume and with --force",
            out.display()
        );
    }
    match SavedModel::load(&out.join("model.safetensors"))? {
        SavedModel::Sequence(m) => Ok(m.coef),
        SavedModel::Token(_) => bail!(
            "cannot resume in {}: its model.safetensors is not a sequence model; start a new fit with --force",
            out.display()
        ),
    }
}
