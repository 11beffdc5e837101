//! `convexformer fit`: one certified solve. Ctrl-C writes the point reached
//! with its certificate; `--resume` continues from it (warm start).

use super::common::{command_line, data_json, prepare_out_dir, write_json, BetaArgs, ProblemArgs};
use super::interrupt::Interrupted;
use super::resume;
use super::shards::{parallel_json, share_warm};
use anyhow::bail;
use clap::Args;
use convexformer::comm::{Communicator, SingleProcess};
use convexformer::fit::Fit;
use convexformer::model::Model;
use convexformer::report::SolveReport;
use convexformer::solver::StopReason;
use std::path::PathBuf;

#[derive(Args, Debug, serde::Serialize)]
pub struct FitArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub problem: ProblemArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub beta: BetaArgs,
    /// Output folder (report.json, model.safetensors).
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
    /// Overwrite convexformer's files in an existing output folder.
    #[arg(long)]
    #[serde(skip)]
    pub force: bool,
    /// Continue an interrupted fit in --out from the point it reached (its
    /// model.safetensors is the warm start; the other options must be the
    /// recorded ones).
    #[arg(long, conflicts_with = "force")]
    #[serde(skip)]
    pub resume: bool,
}

impl FitArgs {
    /// The fit the options ask for.
    pub fn fit(&self) -> anyhow::Result<Fit> {
        self.problem.fit(self.beta.choice()?)
    }
}

pub fn run(a: FitArgs) -> anyhow::Result<()> {
    super::interrupt::install()?;
    run_on(a, &SingleProcess)
}

/// The fit as one of `comm`'s ranks (one process: [`SingleProcess`]): each
/// rank solves on its shard of the samples with the others, rank 0 writes.
pub fn run_on(a: FitArgs, comm: &dyn Communicator) -> anyhow::Result<()> {
    if a.problem.model == "sequence" {
        return super::sequence::run_on(a, comm);
    }
    let root = comm.rank() == 0;
    let arguments = resume::arguments(&a)?;
    let fit = a.fit()?;
    let loaded = a.problem.load_on(comm)?;
    fit.check_memory(&loaded.train)?;
    let warm = if a.resume {
        let warm = if root {
            let m = read_resumed(&a.out, &arguments, &loaded)?;
            eprintln!("resuming the interrupted fit in {}", a.out.display());
            Some((m.coef, m.intercept))
        } else {
            None
        };
        share_warm(comm, warm)
    } else {
        if root {
            prepare_out_dir(&a.out, a.force)?;
        }
        None
    };
    let fitted = fit.fit_sharded(
        &loaded.train,
        loaded.val.as_ref(),
        warm.as_ref().map(|(c, b)| (c.as_slice(), b.as_slice())),
        comm,
    )?;
    let report = &fitted.report;
    if root {
        fitted.model.save(&a.out.join("model.safetensors"))?;
        let mut json = report_json(arguments, a.resume, data_json(&loaded), &fit, report);
        if let Some(info) = &loaded.shards {
            json["parallel"] = parallel_json(comm, info, report.solve.iterations);
        }
        write_json(&a.out.join("report.json"), &json)?;
        print_summary(report);
        if let Some(info) = &loaded.shards {
            let stats = comm.stats();
            println!(
                "{} ranks: {} sums, {:.0} bytes reduced per iteration per rank",
                info.samples_per_rank.len(),
                stats.calls,
                stats.bytes as f64 / report.solve.iterations.max(1) as f64
            );
        }
        if report.recovery_relative_difference > 1e-9 {
            eprintln!(
                "warning: recovered heads differ from the convex objective by {:.3e} (relative): this is a bug, please report it",
                report.recovery_relative_difference
            );
        }
    }
    if report.solve.stop_reason == StopReason::Interrupted {
        return Err(Interrupted::wrote_to(&a.out, true));
    }
    if root {
        println!(
            "wrote {}/report.json and {}/model.safetensors",
            a.out.display(),
            a.out.display()
        );
    }
    Ok(())
}

/// `report.json` of a fit.
pub fn report_json(
    arguments: serde_json::Value,
    resumed: bool,
    data: serde_json::Value,
    fit: &Fit,
    report: &SolveReport,
) -> serde_json::Value {
    serde_json::json!({
        "command": command_line(),
        "arguments": arguments,
        "resumed": resumed,
        "data": data,
        "program": fit.program,
        "loss": fit.loss.name(),
        "intercept": fit.intercept,
        "solver": fit.options,
        "result": report,
    })
}

pub fn print_summary(r: &SolveReport) {
    println!(
        "beta {:.4e} ({:.3} of beta_max)  objective {:.8e}  gap {:.2e} (relative {:.2e})  {}",
        r.solve.beta,
        r.solve.beta / r.solve.beta_max,
        r.solve.objective,
        r.solve.duality_gap,
        r.solve.relative_gap,
        if r.solve.converged {
            "certified"
        } else {
            r.solve.stop_reason.name()
        }
    );
    println!(
        "{} iterations, {:.1} data passes, {:.3} s; active tokens {:?}; {} heads; heads' nonconvex objective differs by {:.1e}",
        r.solve.iterations, r.solve.data_passes, r.solve.seconds, r.active_tokens, r.n_heads, r.recovery_relative_difference
    );
}

/// The model an interrupted fit in `out` reached, once the command line and
/// the data are shown to be the recorded ones.
fn read_resumed(
    out: &std::path::Path,
    arguments: &serde_json::Value,
    loaded: &super::common::Loaded,
) -> anyhow::Result<Model> {
    let report = resume::read_summary(out, "report.json")?;
    resume::check_same_arguments(&report["arguments"], arguments, out)?;
    resume::check_same_data(&report["data"], &data_json(loaded), out)?;
    let reason = &report["result"]["stop_reason"];
    if reason != "interrupted" {
        bail!(
            "nothing to resume in {}: its fit ended with stop reason {reason}; to solve again, run without --resume and with --force",
            out.display()
        );
    }
    Ok(Model::load(&out.join("model.safetensors"))?)
}
