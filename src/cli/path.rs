//! `convexformer path`: a warm-started β path with its table and plots.
//!
//! Every finished β is on disk at once: path.csv, path.json and the warm
//! start (checkpoint.safetensors) are rewritten atomically after each point,
//! so a run stopped at any moment keeps what it computed; `--resume`
//! continues it from the last finished point.

use super::checkpoint::Checkpoint;
use super::common::{
    command_line, data_json, prepare_out_dir, progress, write_file, write_json, Gating, Loaded,
    ProblemArgs,
};
use super::interrupt::{self, Interrupted};
use super::path_resume::{read_resumed, Resumed};
use super::resume;
pub use super::resume::RunState;
use anyhow::bail;
use clap::Args;
use convexformer::loss::Loss;
use convexformer::operator::TokenOperator;
use convexformer::plot::{heatmap, line_plot, Heatmap, LinePlot, Series};
use convexformer::problem::{Problem, Program};
use convexformer::report::{CertifiedSolve, SolveReport};
use convexformer::solver::{beta_grid, beta_max, solve, SolverOptions, StopReason};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, serde::Serialize)]
pub struct PathArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub problem: ProblemArgs,
    /// Number of β values, from β_max down.
    #[arg(long, default_value_t = 20)]
    pub betas: usize,
    /// The smallest β as a fraction of β_max.
    #[arg(long, default_value_t = 0.01)]
    pub ratio: f64,
    /// Output folder (path.csv, path.json, plots).
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
    /// Overwrite convexformer's files in an existing output folder.
    #[arg(long)]
    #[serde(skip)]
    pub force: bool,
    /// Continue an interrupted run in --out from its last finished β (the
    /// other options must be those of the recorded run).
    #[arg(long, conflicts_with = "force")]
    #[serde(skip)]
    pub resume: bool,
}

pub fn run(a: PathArgs) -> anyhow::Result<()> {
    if a.problem.model == "sequence" {
        return super::sequence::path::run(a);
    }
    interrupt::install()?;
    let program = a.problem.program()?;
    let loss = a.problem.loss()?;
    let opts = a.problem.solver_options()?;
    let loaded = a.problem.load()?;
    let gating = a.problem.gating(&loaded)?;
    convexformer::memory::check_token_program(
        &loaded.train,
        loaded.train.n_tokens * gating.as_ref().map_or(1, |g| g.train.n_gates),
        loss,
        opts.solver,
    )?;
    let arguments = resume::arguments(&a)?;
    let resumed = if a.resume {
        Some(read_resumed(&a.out, &arguments, &loaded)?)
    } else {
        prepare_out_dir(&a.out, a.force)?;
        None
    };
    if let Some(r) = &resumed {
        eprintln!(
            "resuming in {}: {} of {} points already finished",
            a.out.display(),
            r.reports.len(),
            r.grid.len()
        );
    }
    let files = PathFiles {
        out: &a.out,
        loaded: &loaded,
        program,
        loss,
        opts: &opts,
        arguments,
    };
    let (reports, end) = compute_path(
        &loaded,
        gating.as_ref(),
        program,
        loss,
        a.problem.intercept,
        (a.betas, a.ratio),
        &opts,
        resumed,
        |reports, grid, sol| {
            files.write(grid, reports, RunState::Running)?;
            Checkpoint {
                point: reports.len() - 1,
                beta: sol.beta,
                coef: sol.coef.clone(),
                intercept: sol.intercept.clone(),
            }
            .save(&a.out)
        },
    )?;
    files.finish(&end.grid, &reports, end.run)?;
    print!("{}", table(&reports, loss));
    if end.run == RunState::Interrupted {
        return Err(Interrupted::wrote_to(&a.out, true));
    }
    println!("wrote {}/path.csv, path.json and plots", a.out.display());
    Ok(())
}

/// How a path ended, and its grid.
pub struct PathEnd {
    pub run: RunState,
    pub grid: Vec<f64>,
}

/// Solves the path and builds a report per β (heads recovered and checked),
/// calling `on_point` with the reports so far, the grid and the solution
/// after each solve. Stops after a solve that ended interrupted, and before
/// a new one once the interrupt is raised. `resumed` continues a recorded
/// run: its grid, its finished points, its warm start.
#[allow(clippy::too_many_arguments)]
pub fn compute_path(
    loaded: &Loaded,
    gating: Option<&Gating>,
    program: Program,
    loss: Loss,
    intercept: bool,
    (betas, ratio): (usize, f64),
    opts: &SolverOptions,
    resumed: Option<Resumed>,
    mut on_point: impl FnMut(
        &[SolveReport],
        &[f64],
        &convexformer::solver::Solution,
    ) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<SolveReport>, PathEnd)> {
    let op = TokenOperator::new(&loaded.train, gating.map(|g| &g.train));
    let mut problem = Problem::new(op, loss, program.penalty(), 1.0, intercept)?;
    let bmax = beta_max(&problem);
    let (grid, mut reports, checkpoint) = match resumed {
        Some(r) => {
            // Same data and options give the same β_max; anything else is a different run.
            let recorded = r.grid.first().copied().unwrap_or(f64::NAN);
            let same = (recorded - bmax).abs() <= 1e-9 * bmax.abs(); // false for NaN
            if !same {
                bail!(
                    "cannot resume: beta_max is {bmax:e} on this data, {recorded:e} in the recorded run; start a new run with --force"
                );
            }
            (r.grid, r.reports, r.warm)
        }
        None => (beta_grid(bmax, ratio, betas)?, Vec::new(), None),
    };
    let mut warm: Option<(Vec<f64>, Vec<f64>)> = checkpoint.map(|c| (c.coef, c.intercept));
    let interrupt = opts.interrupt.clone().unwrap_or_default();
    let pb = progress((grid.len() - reports.len()) as u64, "path");
    let mut run = RunState::Finished;
    for &beta in &grid[reports.len()..] {
        if interrupt.requested() {
            run = RunState::Interrupted;
            break;
        }
        problem.beta = beta;
        let s = solve(
            &problem,
            opts,
            warm.as_ref().map(|(c, b)| (c.as_slice(), b.as_slice())),
        )?;
        pb.inc(1);
        pb.set_message(format!(
            "beta {:.3e}, gap {:.1e}",
            s.beta, s.certificate.relative_gap
        ));
        reports.push(SolveReport::with_gated_val(
            &problem,
            &s,
            bmax,
            loaded.val.as_ref(),
            gating.and_then(|g| g.val.as_ref()),
        ));
        on_point(&reports, &grid, &s)?;
        if s.stop == StopReason::Interrupted {
            run = RunState::Interrupted;
            break;
        }
        warm = Some((s.coef, s.intercept));
    }
    pb.finish_and_clear();
    Ok((reports, PathEnd { run, grid }))
}

/// Where a path's files go and what path.json records besides the points:
/// the data, the program, the options (for `--resume`).
pub struct PathFiles<'a> {
    pub out: &'a Path,
    pub loaded: &'a Loaded,
    pub program: Program,
    pub loss: Loss,
    pub opts: &'a SolverOptions,
    pub arguments: serde_json::Value,
}

impl PathFiles<'_> {
    /// path.csv and path.json for the points so far, each written
    /// atomically; path.json also records the β grid and whether the run is
    /// still going, was interrupted or finished.
    pub fn write(
        &self,
        grid: &[f64],
        reports: &[SolveReport],
        state: RunState,
    ) -> anyhow::Result<()> {
        write_file(&self.out.join("path.csv"), csv(reports)?)?;
        write_json(
            &self.out.join("path.json"),
            &serde_json::json!({
                "command": command_line(),
                "arguments": self.arguments,
                "state": state.name(),
                "data": data_json(self.loaded),
                "program": self.program,
                "loss": self.loss.name(),
                "solver": self.opts,
                "betas": grid,
                "path": reports,
            }),
        )
    }

    /// The files of a path that ended in `state`, and its plots.
    pub fn finish(
        &self,
        grid: &[f64],
        reports: &[SolveReport],
        state: RunState,
    ) -> anyhow::Result<()> {
        self.write(grid, reports, state)?;
        if reports.is_empty() {
            return Ok(());
        }
        plot_path(self.out, self.loaded, self.program, reports)
    }
}

/// path.csv: a header and a row per point.
fn csv(reports: &[SolveReport]) -> anyhow::Result<String> {
    let mut csv = format!(
        "{},active_count,active_tokens,n_heads,nonconvex_objective,recovery_relative_difference,train_error,validation_error\n",
        CertifiedSolve::CSV_HEADER
    );
    for r in reports {
        let active: Vec<String> = r.active_tokens.iter().map(|k| k.to_string()).collect();
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{}",
            r.solve.csv_fields(),
            r.active_tokens.len(),
            active.join(";"),
            r.n_heads,
            r.nonconvex_objective,
            r.recovery_relative_difference,
            r.train_error,
            r.validation_error
                .map(|v| v.to_string())
                .unwrap_or_default()
        )?;
    }
    Ok(csv)
}

/// Active tokens vs β, group norms vs β, and the token-sparsity map.
fn plot_path(
    out: &Path,
    loaded: &Loaded,
    program: Program,
    reports: &[SolveReport],
) -> anyhow::Result<()> {
    let t = loaded.train.n_tokens;
    let x: Vec<f64> = reports
        .iter()
        .map(|r| r.solve.beta / r.solve.beta_max)
        .collect();
    let count = Series {
        name: "active tokens".into(),
        x: x.clone(),
        y: reports
            .iter()
            .map(|r| r.active_tokens.len() as f64)
            .collect(),
    };
    line_plot(
        &out.join("active_tokens"),
        &LinePlot {
            title: "Active tokens along the path",
            x_label: "beta / beta_max",
            y_label: "active tokens",
            log_x: true,
            log_y: false,
            series: &[count],
            points: true,
        },
    )?;
    // Norm of each token's head weights (Σ over heads on that token of ‖v‖·‖o‖ = its penalty share).
    let norms: Vec<Vec<f64>> = reports.iter().map(|r| token_norms(r, t, program)).collect();
    let series: Vec<Series> = (0..t)
        .filter(|&k| norms.iter().any(|n| n[k] > 0.0))
        .map(|k| Series {
            name: format!("token {k}"),
            x: x.clone(),
            y: norms.iter().map(|n| n[k]).collect(),
        })
        .collect();
    line_plot(
        &out.join("group_norms"),
        &LinePlot {
            title: "Token group norms along the path",
            x_label: "beta / beta_max",
            y_label: "group norm",
            log_x: true,
            log_y: false,
            series: &series,
            points: false,
        },
    )?;
    let values: Vec<f64> = norms.iter().flatten().copied().collect();
    let row_names: Vec<String> = x.iter().map(|v| format!("{v:.3}")).collect();
    let col_names: Vec<String> = (0..t).map(|k| k.to_string()).collect();
    heatmap(
        &out.join("token_sparsity"),
        &Heatmap {
            title: "Token usage (group norm) per beta",
            x_label: "token",
            y_label: "beta / beta_max",
            rows: reports.len(),
            cols: t,
            values: &values,
            row_names: Some(&row_names),
            col_names: Some(&col_names),
        },
    )?;
    Ok(())
}

/// The penalty carried by each token: Σ over its heads of ½(‖v‖² + ‖o‖²),
/// which equals its group norm (ℓ₁ outputs) or nuclear norm (ℓ₂).
pub fn token_norms(r: &SolveReport, t: usize, program: Program) -> Vec<f64> {
    let norm = program.penalty().into();
    let mut out = vec![0.0; t];
    for h in &r.heads {
        if let Some(k) = h.attention.iter().position(|&a| a == 1.0) {
            out[k] += convexformer::recovery::head_penalty(h, norm);
        }
    }
    out
}

/// The printed table.
pub fn table(reports: &[SolveReport], loss: Loss) -> String {
    let rows: Vec<TableRow> = reports
        .iter()
        .map(|r| TableRow {
            solve: &r.solve,
            recovery: r.recovery_relative_difference,
            train_error: r.train_error,
            validation_error: r.validation_error,
            active: format!("{:?}", r.active_tokens),
        })
        .collect();
    path_table(&rows, loss, "active tokens")
}

/// One row of a printed path table, whatever the program.
pub struct TableRow<'a> {
    pub solve: &'a CertifiedSolve,
    pub recovery: f64,
    pub train_error: f64,
    pub validation_error: Option<f64>,
    pub active: String,
}

/// The printed path table of any program; `active_label` names its last column.
pub fn path_table(rows: &[TableRow], loss: Loss, active_label: &str) -> String {
    let err = if loss.is_classification() {
        "err rate"
    } else {
        "mse"
    };
    let mut s = format!(
        "{:>10} {:>9} {:>14} {:>9} {:>6} {:>7} {:>9} {:>10} {:>10}  {active_label}\n",
        "beta",
        "b/bmax",
        "objective",
        "rel gap",
        "iters",
        "passes",
        "heads=cvx",
        format!("train {err}"),
        format!("val {err}")
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>10.3e} {:>9.4} {:>14.8e} {:>9.1e} {:>6} {:>7.1} {:>9} {:>10.4} {:>10}  {}",
            r.solve.beta,
            r.solve.beta / r.solve.beta_max,
            r.solve.objective,
            r.solve.relative_gap,
            r.solve.iterations,
            r.solve.data_passes,
            if r.recovery <= 1e-9 { "yes" } else { "NO" },
            r.train_error,
            r.validation_error
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "-".into()),
            r.active
        );
    }
    s
}
