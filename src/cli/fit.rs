//! `convexformer fit`: one certified solve.

use super::common::{command_line, data_json, prepare_out_dir, write_json, BetaArgs, ProblemArgs};
use super::interrupt::Interrupted;
use clap::Args;
use convexformer::fit::Fit;
use convexformer::report::SolveReport;
use convexformer::solver::StopReason;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct FitArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    #[command(flatten)]
    pub beta: BetaArgs,
    /// Output folder (report.json, model.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite convexformer's files in an existing output folder.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: FitArgs) -> anyhow::Result<()> {
    super::interrupt::install()?;
    if a.problem.model == "sequence" {
        return super::sequence::run(a);
    }
    let fit = Fit {
        program: a.problem.program()?,
        loss: a.problem.loss()?,
        beta: a.beta.choice()?,
        intercept: a.problem.intercept,
        options: a.problem.solver_options()?,
        gates: a.problem.gate_spec()?,
    };
    let loaded = a.problem.load()?;
    fit.check_memory(&loaded.train)?;
    prepare_out_dir(&a.out, a.force)?;
    let fitted = fit.fit_with_validation(&loaded.train, loaded.val.as_ref())?;
    let report = &fitted.report;
    fitted.model.save(&a.out.join("model.safetensors"))?;
    write_json(
        &a.out.join("report.json"),
        &serde_json::json!({
            "command": command_line(),
            "data": data_json(&loaded),
            "program": fit.program,
            "loss": fit.loss.name(),
            "intercept": fit.intercept,
            "solver": fit.options,
            "result": report,
        }),
    )?;
    print_summary(report);
    if report.recovery_relative_difference > 1e-9 {
        eprintln!(
            "warning: recovered heads differ from the convex objective by {:.3e} (relative): this is a bug, please report it",
            report.recovery_relative_difference
        );
    }
    if report.solve.stop_reason == StopReason::Interrupted {
        return Err(Interrupted::wrote_to(&a.out, false));
    }
    println!(
        "wrote {}/report.json and {}/model.safetensors",
        a.out.display(),
        a.out.display()
    );
    Ok(())
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
