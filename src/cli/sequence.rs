//! `convexformer fit|path|predict` for the sequence-output program (SPEC §4c).

pub(super) mod path;
pub(super) mod predict;

use super::common::{command_line, prepare_out_dir, write_json, ProblemArgs};
use super::fit::FitArgs;
use super::resume;
use super::shards::{load_shard, parallel_json, share_warm, ShardInfo};
use anyhow::bail;
use convexformer::comm::Communicator;
use convexformer::data::npz::read_npz_as;
use convexformer::data::{Dataset, Targets};
use convexformer::loss::Loss;
use convexformer::model::SavedModel;
use convexformer::sequence::{
    generate_sequence, parse_sequence_synthetic, plot_mixing_matrices, SequenceShard,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;

/// Loads sequence data: `synthetic[:...]` (planted mixing heads) or a .npz
/// whose `y` is N×n×c (or N×n labels).
fn load(spec: &str) -> anyhow::Result<Dataset<'static>> {
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

fn split(
    ds: Dataset<'static>,
    frac: Option<f64>,
    seed: u64,
) -> anyhow::Result<(Dataset<'static>, Option<Dataset<'static>>)> {
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
/// and the training set's shape (all ranks' samples).
fn data_json(spec: &str, d: &SequenceData) -> serde_json::Value {
    let t = &d.train;
    serde_json::json!({
        "spec": spec,
        "train_shape": [d.total_samples, t.n_tokens, t.n_features, t.n_outputs],
    })
}

/// Sequence data as one rank sees it.
struct SequenceData {
    loss: Loss,
    /// This rank's training samples (all of them in one process).
    train: Dataset<'static>,
    val: Option<Dataset<'static>>,
    total_samples: usize,
    shards: Option<ShardInfo>,
}

/// Refuses the options the sequence program does not have; loads and
/// splits (one process), or loads this rank's shard.
fn load_split_on(p: &ProblemArgs, comm: &dyn Communicator) -> anyhow::Result<SequenceData> {
    let loss = Loss::parse(&p.loss)?;
    if p.val.is_some() {
        bail!("--val is not supported for the sequence model yet: use --val-frac");
    }
    if p.intercept {
        bail!("the sequence model fits no intercept: drop --intercept");
    }
    if comm.size() == 1 {
        let (train, val) = split(load(&p.data)?, p.val_frac, p.split_seed)?;
        return Ok(SequenceData {
            loss,
            total_samples: train.n_samples,
            train,
            val,
            shards: None,
        });
    }
    if p.val_frac.is_some() {
        bail!(
            "--val-frac would hold out a different part of each rank's shard: run the \
             sequence program without validation data across ranks"
        );
    }
    let (train, info) = load_shard(&p.data, Targets::PerPosition, comm, || load(&p.data))?;
    Ok(SequenceData {
        loss,
        total_samples: info.samples_per_rank.iter().sum(),
        train,
        val: None,
        shards: Some(info),
    })
}

pub fn run_on(a: FitArgs, comm: &dyn Communicator) -> anyhow::Result<()> {
    let root = comm.rank() == 0;
    let opts = a.problem.solver_options()?;
    let d = load_split_on(&a.problem, comm)?;
    let loss = d.loss;
    let shard = SequenceShard::new(&d.train, comm)?;
    let bmax = shard.beta_max(loss)?;
    let beta = a.beta.resolve(bmax, None)?;
    let arguments = resume::arguments(&a)?;
    let data = data_json(&a.problem.data, &d);
    let warm = if a.resume {
        let warm = if root {
            let warm = read_resumed(&a.out, &arguments, &data)?;
            eprintln!("resuming the interrupted fit in {}", a.out.display());
            Some((warm, Vec::new()))
        } else {
            None
        };
        share_warm(comm, warm).map(|(coef, _)| coef)
    } else {
        if root {
            prepare_out_dir(&a.out, a.force)?;
        }
        None
    };
    let sol = shard.solve(loss, beta, &opts, warm.as_deref())?;
    let report = shard.report(loss, &sol, bmax, d.val.as_ref())?;
    let interrupted = report.solve.stop_reason == convexformer::solver::StopReason::Interrupted;
    if !root {
        return match interrupted {
            true => Err(super::interrupt::Interrupted::wrote_to(&a.out, true)),
            false => Ok(()),
        };
    }
    let plots = plot_mixing_matrices(&a.out, "mixing", &report.heads, d.train.n_tokens)?;
    sol.to_model(loss).save(&a.out.join("model.safetensors"))?;
    let mut json = serde_json::json!({
        "command": command_line(),
        "arguments": arguments,
        "resumed": a.resume,
        "data": data,
        "solver": opts,
        "result": report,
    });
    if let Some(info) = &d.shards {
        json["parallel"] = parallel_json(comm, info, report.solve.iterations);
    }
    write_json(&a.out.join("report.json"), &json)?;
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
    if interrupted {
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
