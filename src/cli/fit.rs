//! `convexformer fit`: one certified solve.

use super::common::{command_line, data_json, prepare_out_dir, write_json, BetaArgs, ProblemArgs};
use clap::Args;
use convexformer::model::{Model, ModelHeader};
use convexformer::operator::{LinearOperator, TokenOperator};
use convexformer::problem::Problem;
use convexformer::report::SolveReport;
use convexformer::solver::{beta_max, solve};
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
    if a.problem.model == "sequence" {
        return super::sequence::run(a);
    }
    let program = a.problem.program()?;
    let loss = a.problem.loss()?;
    let opts = a.problem.solver_options()?;
    a.beta.check(None)?;
    let loaded = a.problem.load()?;
    prepare_out_dir(&a.out, a.force)?;

    let gating = a.problem.gating(&loaded)?;
    let op = TokenOperator::new(&loaded.train, gating.as_ref().map(|g| &g.train));
    let mut problem = Problem::new(op, loss, program.penalty(), 1.0, a.problem.intercept)?;
    let bmax = beta_max(&problem);
    problem.beta = a.beta.resolve(bmax, None)?;
    let sol = solve(&problem, &opts, None)?;
    let report = SolveReport::with_gated_val(
        &problem,
        &sol,
        bmax,
        loaded.val.as_ref(),
        gating.as_ref().and_then(|g| g.val.as_ref()),
    );

    let d = &loaded.train;
    let model = Model {
        header: ModelHeader {
            format: 1,
            program,
            loss,
            beta: problem.beta,
            n_tokens: d.n_tokens,
            n_features: d.n_features,
            n_outputs: d.n_outputs,
            n_blocks: problem.op.n_blocks(),
            intercept: problem.intercept,
            heads: report.heads.clone(),
            gates: gating.as_ref().map(|g| g.gates.spec),
        },
        gates: gating.as_ref().map(|g| g.gates.vectors.clone()),
        coef: sol.coef.clone(),
        intercept: sol.intercept.clone(),
    };
    model.save(&a.out.join("model.safetensors"))?;
    write_json(
        &a.out.join("report.json"),
        &serde_json::json!({
            "command": command_line(),
            "data": data_json(&loaded),
            "program": program,
            "loss": loss.name(),
            "intercept": problem.intercept,
            "solver": opts,
            "result": report,
        }),
    )?;
    print_summary(&report);
    if report.recovery_relative_difference > 1e-9 {
        eprintln!(
            "warning: recovered heads differ from the convex objective by {:.3e} (relative): this is a bug, please report it",
            report.recovery_relative_difference
        );
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
        r.beta,
        r.beta / r.beta_max,
        r.objective,
        r.duality_gap,
        r.relative_gap,
        if r.converged {
            "certified"
        } else {
            "NOT converged"
        }
    );
    println!(
        "{} iterations, {:.1} data passes, {:.3} s; active tokens {:?}; {} heads; heads' nonconvex objective differs by {:.1e}",
        r.iterations, r.data_passes, r.seconds, r.active_tokens, r.n_heads, r.recovery_relative_difference
    );
}
