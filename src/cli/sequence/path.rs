//! `convexformer path --model sequence`: a warm-started β path of the
//! sequence program (SPEC §4c), each solution certified by its duality gap.
//! As `path`: every point on disk when solved, the last coefficients in
//! checkpoint.safetensors, `--resume` from the last finished point.

use super::super::checkpoint::Checkpoint;
use super::super::common::{command_line, prepare_out_dir, progress, write_file, write_json};
use super::super::interrupt::Interrupted;
use super::super::path::{path_table, PathArgs, TableRow};
use super::super::resume::{self, RunState};
use super::super::shards::share_warm;
use anyhow::bail;
use convexformer::comm::{from_root, Communicator};
use convexformer::data::Dataset;
use convexformer::loss::Loss;
use convexformer::plot::{line_plot, LinePlot, Series};
use convexformer::report::CertifiedSolve;
use convexformer::sequence::{SequenceReport, SequenceShard};
use convexformer::solver::{beta_grid, SolverOptions, StopReason};
use std::fmt::Write as _;
use std::path::Path;

/// One β of the path: the fit report plus what only the coefficients show.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PathPoint {
    #[serde(flatten)]
    pub report: SequenceReport,
    /// Nonzero entries of C over all (q, l) matrices.
    pub nonzero_coefficients: usize,
}

/// The sequence path as one of `comm`'s ranks (one process:
/// `SingleProcess`): each rank solves on its shard, rank 0 writes.
pub fn run_on(a: PathArgs, comm: &dyn Communicator) -> anyhow::Result<()> {
    let root = comm.rank() == 0;
    let opts = a.problem.solver_options()?;
    let d = super::load_split_on(&a.problem, comm)?;
    let loss = d.loss;
    let shard = SequenceShard::new(&d.train, comm)?;
    let bmax = shard.beta_max(loss)?;
    let mut grid = beta_grid(bmax, a.ratio, a.betas)?;
    let arguments = resume::arguments(&a)?;
    let data = super::data_json(&a.problem.data, &d);
    let (start, first) = if a.resume {
        let Recorded {
            points: done,
            warm,
            grid: recorded,
        } = if root {
            let r = read_resumed(&a.out, &arguments, &data, &grid)?;
            eprintln!(
                "resuming in {}: {} of {} points already finished",
                a.out.display(),
                r.points.len(),
                grid.len()
            );
            r
        } else {
            Recorded {
                points: Vec::new(),
                warm: None,
                grid: Vec::new(),
            }
        };
        // Every rank goes on along the recorded grid after the finished
        // points, from rank 0's warm start.
        grid = from_root(comm, recorded);
        let count = from_root(comm, vec![done.len() as f64])[0] as usize;
        let warm = share_warm(comm, warm.map(|c| (c, Vec::new()))).map(|(c, _)| c);
        (Start { done, warm }, count)
    } else {
        if root {
            prepare_out_dir(&a.out, a.force)?;
        }
        (Start::default(), 0)
    };
    // Both files rewritten (atomically) after every point: a stopped run keeps them.
    let write = |points: &[PathPoint], state: RunState| -> anyhow::Result<()> {
        write_file(&a.out.join("path.csv"), csv(points))?;
        write_json(
            &a.out.join("path.json"),
            &serde_json::json!({
                "command": command_line(),
                "arguments": arguments,
                "state": state.name(),
                "data": data,
                "model": "sequence",
                "loss": loss.name(),
                "solver": opts,
                "betas": grid,
                "path": points,
            }),
        )
    };
    let (points, interrupted) = compute_path(
        &shard,
        d.val.as_ref(),
        loss,
        bmax,
        (&grid, first),
        &opts,
        start,
        |p, coef| {
            if !root {
                return Ok(());
            }
            write(p, RunState::Running)?;
            let last = &p[p.len() - 1];
            Checkpoint {
                point: p.len() - 1,
                beta: last.report.solve.beta,
                coef: coef.to_vec(),
                intercept: Vec::new(),
            }
            .save(&a.out)
        },
    )?;
    if root {
        let state = if interrupted {
            RunState::Interrupted
        } else {
            RunState::Finished
        };
        write(&points, state)?;
        if !points.is_empty() {
            plot_path(&a.out, &points)?;
        }
        print!("{}", table(&points, loss));
    }
    if interrupted {
        return Err(Interrupted::wrote_to(&a.out, true));
    }
    if root {
        println!("wrote {}/path.csv, path.json and plots", a.out.display());
    }
    Ok(())
}

/// Where a path starts: the points a stopped run finished, and the
/// coefficients to warm-start the next one from.
#[derive(Default)]
pub struct Start {
    pub done: Vec<PathPoint>,
    pub warm: Option<Vec<f64>>,
}

/// What a stopped run left: its finished points, the coefficients to start
/// the next from, and its β grid.
struct Recorded {
    points: Vec<PathPoint>,
    warm: Option<Vec<f64>>,
    grid: Vec<f64>,
}

/// The run recorded in `out`, once it is shown to be the same computation
/// on the same data.
fn read_resumed(
    out: &Path,
    arguments: &serde_json::Value,
    data: &serde_json::Value,
    grid: &[f64],
) -> anyhow::Result<Recorded> {
    let summary = resume::read_summary(out, "path.json")?;
    resume::check_same_arguments(&summary["arguments"], arguments, out)?;
    resume::check_same_data(&summary["data"], data, out)?;
    let unreadable = |what: &str, e: serde_json::Error| {
        anyhow::anyhow!(
            "cannot resume: {what} in {}/path.json is unreadable ({e}); start a new run with --force",
            out.display()
        )
    };
    let recorded: Vec<f64> = serde_json::from_value(summary["betas"].clone())
        .map_err(|e| unreadable("the β grid", e))?;
    // The same β_max up to the order of its sums (a run may be resumed on
    // another number of ranks): the recorded grid goes on.
    let same = recorded.len() == grid.len()
        && recorded
            .iter()
            .zip(grid)
            .all(|(r, g)| (r - g).abs() <= 1e-9 * g.abs());
    if !same {
        bail!(
            "cannot resume in {}: the β grid differs from the recorded run's (β_max changed: other data?); start a new run with --force",
            out.display()
        );
    }
    let mut points: Vec<PathPoint> =
        serde_json::from_value(summary["path"].clone()).map_err(|e| unreadable("the path", e))?;
    if points
        .last()
        .is_some_and(|p| p.report.solve.stop_reason == StopReason::Interrupted)
    {
        points.pop();
    }
    points.truncate(grid.len());
    // The interrupted point's coefficients or the last finished one's.
    let warm = Checkpoint::load(out)?
        .filter(|c| c.point + 1 == points.len() || c.point == points.len())
        .map(|c| c.coef);
    Ok(Recorded {
        points,
        warm,
        grid: recorded,
    })
}

/// Solves along `grid` from its point `first` on, `start` holding the
/// points already finished (rank 0's; the other ranks hold none), each solve
/// started from the previous solution, calling `on_point` with the points
/// so far and the last coefficients after each. Stops (returning `true`)
/// after a solve that ended interrupted, or before the next one once the
/// interrupt is raised on any rank.
#[allow(clippy::too_many_arguments)]
fn compute_path(
    shard: &SequenceShard<'_>,
    val: Option<&Dataset>,
    loss: Loss,
    bmax: f64,
    (grid, first): (&[f64], usize),
    opts: &SolverOptions,
    start: Start,
    mut on_point: impl FnMut(&[PathPoint], &[f64]) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<PathPoint>, bool)> {
    let pb = progress(grid.len() as u64, "path");
    let Start {
        done: mut points,
        warm: prev,
    } = start;
    pb.set_position(first as u64);
    let interrupted = shard.path(
        loss,
        &grid[first.min(grid.len())..],
        opts,
        prev,
        |_, sol| -> anyhow::Result<()> {
            pb.inc(1);
            pb.set_message(format!(
                "beta {:.3e}, gap {:.1e}",
                sol.beta, sol.certificate.relative_gap
            ));
            points.push(PathPoint {
                report: shard.report(loss, sol, bmax, val)?,
                nonzero_coefficients: sol.coef.iter().filter(|&&v| v != 0.0).count(),
            });
            on_point(&points, &sol.coef)
        },
    )?;
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
