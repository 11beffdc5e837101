//! `convexformer path`: a warm-started β path with its table and plots.
//!
//! Every finished β is on disk at once: path.csv, path.json and the warm
//! start (checkpoint.safetensors) are rewritten atomically after each point,
//! so a run stopped at any moment keeps what it computed; `--resume`
//! continues it from the last finished point.

use super::checkpoint::Checkpoint;
use super::common::{
    command_line, data_json, prepare_out_dir, progress, write_file, write_json, Loaded, ProblemArgs,
};
use super::interrupt::{self, Interrupted};
use super::path_resume::read_resumed;
use super::resume;
pub use super::resume::RunState;
use super::shards::share_resume;
use clap::Args;
use convexformer::comm::{Communicator, SingleProcess};
use convexformer::fit::{Beta, PathBetas, PathResume};
use convexformer::loss::Loss;
use convexformer::plot::{heatmap, line_plot, Heatmap, LinePlot, Series};
use convexformer::problem::Program;
use convexformer::report::{CertifiedSolve, SolveReport};
use convexformer::solver::SolverOptions;
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
    interrupt::install()?;
    run_on(a, &SingleProcess)
}

/// The path as one of `comm`'s ranks (one process: [`SingleProcess`]):
/// each rank solves on its shard of the samples with the others, rank 0
/// writes every point as it is certified.
pub fn run_on(a: PathArgs, comm: &dyn Communicator) -> anyhow::Result<()> {
    if a.problem.model == "sequence" {
        return super::sequence::path::run_on(a, comm);
    }
    let root = comm.rank() == 0;
    let fit = a.problem.fit(Beta::FractionOfMax(1.0))?;
    let loaded = a.problem.load_on(comm)?;
    fit.check_memory(&loaded.train)?;
    let arguments = resume::arguments(&a)?;
    let (mut reports, resume) = if a.resume {
        let resumed = if root {
            let r = read_resumed(&a.out, &arguments, &loaded)?;
            eprintln!(
                "resuming in {}: {} of {} points already finished",
                a.out.display(),
                r.reports.len(),
                r.grid.len()
            );
            Some(r)
        } else {
            None
        };
        let (reports, resume) = match resumed {
            Some(r) => {
                let state = PathResume {
                    grid: r.grid,
                    done: r.reports.len(),
                    warm: r.warm.map(|c| (c.coef, c.intercept)),
                };
                (r.reports, Some(state))
            }
            None => (Vec::new(), None),
        };
        (reports, Some(share_resume(comm, resume)))
    } else {
        if root {
            prepare_out_dir(&a.out, a.force)?;
        }
        (Vec::new(), None)
    };
    let files = PathFiles {
        out: &a.out,
        loaded: &loaded,
        program: fit.program,
        loss: fit.loss,
        opts: &fit.options,
        arguments,
    };
    let pb = progress(a.betas as u64, "path");
    pb.set_position(resume.as_ref().map_or(0, |r| r.done) as u64);
    if !root {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let end = fit.path_on(
        &loaded.train,
        loaded.val.as_ref(),
        &PathBetas::Grid {
            n: a.betas,
            ratio: a.ratio,
        },
        resume,
        comm,
        |grid, index, f| -> anyhow::Result<()> {
            pb.set_length(grid.len() as u64);
            pb.inc(1);
            pb.set_message(format!(
                "beta {:.3e}, gap {:.1e}",
                f.report.solve.beta, f.report.solve.relative_gap
            ));
            if !root {
                return Ok(());
            }
            reports.push(f.report);
            files.write(grid, &reports, RunState::Running)?;
            Checkpoint {
                point: index,
                beta: f.solution.beta,
                coef: f.solution.coef,
                intercept: f.solution.intercept,
            }
            .save(&a.out)
        },
    )?;
    pb.finish_and_clear();
    let run = if end.interrupted {
        RunState::Interrupted
    } else {
        RunState::Finished
    };
    if root {
        files.finish(&end.grid, &reports, run)?;
        print!("{}", table(&reports, fit.loss));
    }
    if end.interrupted {
        return Err(Interrupted::wrote_to(&a.out, true));
    }
    if root {
        println!("wrote {}/path.csv, path.json and plots", a.out.display());
    }
    Ok(())
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
