//! `convexformer path --model sequence`: a warm-started β path of the
//! sequence program (SPEC §4c), each solution certified by its duality gap.

use super::super::common::{command_line, prepare_out_dir, progress, write_file, write_json};
use super::super::interrupt::{self, Interrupted};
use super::super::path::{path_table, PathArgs, TableRow};
use anyhow::bail;
use convexformer::data::Dataset;
use convexformer::loss::Loss;
use convexformer::plot::{line_plot, LinePlot, Series};
use convexformer::report::CertifiedSolve;
use convexformer::sequence::{sequence_beta_max, solve_sequence_from, SequenceReport};
use convexformer::solver::{beta_grid, SolverOptions, StopReason};
use std::fmt::Write as _;
use std::path::Path;

/// One β of the path: the fit report plus what only the coefficients show.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PathPoint {
    #[serde(flatten)]
    pub report: SequenceReport,
    /// Nonzero entries of C over all (q, l) matrices.
    pub nonzero_coefficients: usize,
}

pub fn run(a: PathArgs) -> anyhow::Result<()> {
    if a.resume {
        bail!("--resume is not supported for --model sequence yet: start a new run with --force");
    }
    interrupt::install()?;
    let opts = a.problem.solver_options()?;
    let (loss, train, val) = super::load_split(&a.problem)?;
    let bmax = sequence_beta_max(&train, loss)?;
    let grid = beta_grid(bmax, a.ratio, a.betas)?;
    prepare_out_dir(&a.out, a.force)?;
    // Both files rewritten (atomically) after every point: a stopped run keeps them.
    let write = |points: &[PathPoint], state: &str| -> anyhow::Result<()> {
        write_file(&a.out.join("path.csv"), csv(points))?;
        write_json(
            &a.out.join("path.json"),
            &serde_json::json!({
                "command": command_line(),
                "state": state,
                "data": a.problem.data,
                "model": "sequence",
                "loss": loss.name(),
                "solver": opts,
                "betas": grid,
                "path": points,
            }),
        )
    };
    let (points, interrupted) =
        compute_path(&train, val.as_ref(), loss, bmax, &grid, &opts, |p| {
            write(p, "running")
        })?;
    write(
        &points,
        if interrupted {
            "interrupted"
        } else {
            "finished"
        },
    )?;
    if !points.is_empty() {
        plot_path(&a.out, &points)?;
    }
    print!("{}", table(&points, loss));
    if interrupted {
        return Err(Interrupted::wrote_to(&a.out, false));
    }
    println!("wrote {}/path.csv, path.json and plots", a.out.display());
    Ok(())
}

/// Solves along `grid`, each solve started from the previous solution,
/// calling `on_point` with the points so far after each. Stops (returning
/// `true`) after a solve that ended interrupted, or before the next one once
/// the interrupt is raised.
pub fn compute_path(
    train: &Dataset,
    val: Option<&Dataset>,
    loss: Loss,
    bmax: f64,
    grid: &[f64],
    opts: &SolverOptions,
    mut on_point: impl FnMut(&[PathPoint]) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<PathPoint>, bool)> {
    let pb = progress(grid.len() as u64, "path");
    let mut points = Vec::with_capacity(grid.len());
    let mut prev: Option<Vec<f64>> = None;
    let interrupt = opts.interrupt.clone().unwrap_or_default();
    let mut interrupted = false;
    for &beta in grid {
        if interrupt.requested() {
            interrupted = true;
            break;
        }
        let sol = solve_sequence_from(train, loss, beta, opts, prev.as_deref())?;
        pb.inc(1);
        pb.set_message(format!(
            "beta {beta:.3e}, gap {:.1e}",
            sol.certificate.relative_gap
        ));
        points.push(PathPoint {
            report: SequenceReport::new(train, loss, &sol, bmax, val)?,
            nonzero_coefficients: sol.coef.iter().filter(|&&v| v != 0.0).count(),
        });
        on_point(&points)?;
        if sol.stop == StopReason::Interrupted {
            interrupted = true;
            break;
        }
        prev = Some(sol.coef);
    }
    pb.finish_and_clear();
    Ok((points, interrupted))
}

/// path.csv: a row per β; active matrices as `q:l` pairs joined by `;`.
pub fn csv(points: &[PathPoint]) -> String {
    let mut s = format!(
        "{},active_count,active_matrices,nonzero_coefficients,n_heads,nonconvex_objective,recovery_relative_difference,train_error,validation_error\n",
        CertifiedSolve::CSV_HEADER
    );
    for p in points {
        let r = &p.report;
        let active: Vec<String> = r
            .active_matrices
            .iter()
            .map(|(q, l)| format!("{q}:{l}"))
            .collect();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            r.solve.csv_fields(),
            r.active_matrices.len(),
            active.join(";"),
            p.nonzero_coefficients,
            r.n_heads,
            r.nonconvex_objective,
            r.recovery_relative_difference,
            r.train_error,
            r.validation_error
                .map(|v| v.to_string())
                .unwrap_or_default()
        );
    }
    s
}

/// objective.{png,svg} and active_matrices.{png,svg} against β/β_max.
fn plot_path(out: &Path, points: &[PathPoint]) -> anyhow::Result<()> {
    let x: Vec<f64> = points
        .iter()
        .map(|p| p.report.solve.beta / p.report.solve.beta_max)
        .collect();
    let curve = |name: &str, f: &dyn Fn(&PathPoint) -> f64| Series {
        name: name.into(),
        x: x.clone(),
        y: points.iter().map(f).collect(),
    };
    let plots = [
        (
            "objective",
            "Objective along the path",
            curve("objective", &|p| p.report.solve.objective),
        ),
        (
            "active_matrices",
            "Active (feature, output) matrices along the path",
            curve("active matrices", &|p| {
                p.report.active_matrices.len() as f64
            }),
        ),
    ];
    for (file, title, series) in plots {
        line_plot(
            &out.join(file),
            &LinePlot {
                title,
                x_label: "beta / beta_max",
                y_label: series.name.as_str(),
                log_x: true,
                log_y: false,
                series: std::slice::from_ref(&series),
                points: true,
            },
        )?;
    }
    Ok(())
}

/// The printed table.
fn table(points: &[PathPoint], loss: Loss) -> String {
    let rows: Vec<TableRow> = points
        .iter()
        .map(|p| TableRow {
            solve: &p.report.solve,
            recovery: p.report.recovery_relative_difference,
            train_error: p.report.train_error,
            validation_error: p.report.validation_error,
            active: p.report.active_matrices.len().to_string(),
        })
        .collect();
    path_table(&rows, loss, "active matrices")
}
