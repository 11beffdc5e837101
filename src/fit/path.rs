//! The regularization path: one certified fit per β of a grid, each started
//! from the previous solution, in one process or on the shards of a
//! data-parallel run; a run stopped part way continues from where it was.

use super::shards::ShardData;
use super::{Fit, Fitted, Setup};
use crate::comm::{Communicator, SingleProcess};
use crate::data::Dataset;
use crate::error::{invalid, Error, Result};
use crate::operator::{LinearOperator, Sharded, TokenOperator};
use crate::problem::Problem;
use crate::solver::{beta_grid, beta_max, solve_path, PathStart};

/// Which β a path visits.
#[derive(Clone, Debug, PartialEq)]
pub enum PathBetas {
    /// `n` values from β_max down to `ratio`·β_max, geometrically spaced.
    Grid { n: usize, ratio: f64 },
    /// These values, in this order.
    Values(Vec<f64>),
}

impl PathBetas {
    /// The β values, given β_max.
    pub fn resolve(&self, beta_max: f64) -> Result<Vec<f64>> {
        match self {
            PathBetas::Grid { n, ratio } => beta_grid(beta_max, *ratio, *n),
            PathBetas::Values(v) => Ok(v.clone()),
        }
    }
}

/// Where a stopped run of the same path left off: its β grid, the number
/// of its points that were finished, and the coefficients and intercepts to
/// start the next point from (the last solve's, finished or interrupted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathResume {
    pub grid: Vec<f64>,
    pub done: usize,
    pub warm: Option<(Vec<f64>, Vec<f64>)>,
}

/// How a path ended.
#[derive(Clone, Debug, PartialEq)]
pub struct PathEnd {
    /// The β grid (all of it, also the points not reached).
    pub grid: Vec<f64>,
    pub beta_max: f64,
    /// Stopped by the solver options' interrupt before the grid's end.
    pub interrupted: bool,
}

/// Access to the token operator under a one-process or a sharded one.
trait Tokens {
    fn tokens(&self) -> &TokenOperator<'_>;
}

impl Tokens for TokenOperator<'_> {
    fn tokens(&self) -> &TokenOperator<'_> {
        self
    }
}

impl Tokens for Sharded<'_, TokenOperator<'_>> {
    fn tokens(&self) -> &TokenOperator<'_> {
        self.inner()
    }
}

impl Fit {
    /// The regularization path on `data`: one certified fit per β of
    /// `betas` (solved in the order given, each warm-started from the
    /// previous one), and β_max.
    pub fn path(&self, data: &Dataset, betas: &PathBetas) -> Result<(Vec<Fitted>, f64)> {
        let mut out = Vec::new();
        let end = self.path_on(data, None, betas, None, &SingleProcess, |_, _, f| {
            out.push(f);
            Ok::<(), Error>(())
        })?;
        Ok((out, end.beta_max))
    }

    /// The path on `shard`'s samples, summed across `comm`'s shards (one
    /// process: all samples, [`SingleProcess`]), handing each fitted point
    /// to `on_point` (with the grid and its index there) once it is solved.
    /// `resume` continues a stopped run: its grid (refused if β_max on
    /// this data differs from its first β), from its first unfinished point.
    /// Stops after a solve that ended interrupted, or before the next one
    /// once the options' interrupt is raised on any shard.
    pub fn path_on<E: From<Error>>(
        &self,
        shard: &Dataset,
        val: Option<&Dataset>,
        betas: &PathBetas,
        resume: Option<PathResume>,
        comm: &dyn Communicator,
        on_point: impl FnMut(&[f64], usize, Fitted) -> std::result::Result<(), E>,
    ) -> std::result::Result<PathEnd, E> {
        let walk = Walk {
            fit: self,
            val,
            betas,
            resume,
            comm,
        };
        if comm.size() == 1 {
            let setup = self.setup(shard)?;
            let mut problem = setup.problem(shard, self)?;
            walk.run(&setup, &mut problem, &|_| {}, on_point)
        } else {
            let shard = ShardData::new(self, shard, comm)?;
            let setup = self.setup(&shard.data)?;
            let mut problem = shard.problem(self, &setup)?;
            walk.run(&setup, &mut problem, &|v| comm.sum(v), on_point)
        }
    }
}

/// What a path walks through, whatever its operator.
struct Walk<'w> {
    fit: &'w Fit,
    val: Option<&'w Dataset<'w>>,
    betas: &'w PathBetas,
    resume: Option<PathResume>,
    comm: &'w dyn Communicator,
}

impl Walk<'_> {
    fn run<O: LinearOperator + Tokens, E: From<Error>>(
        self,
        setup: &Setup,
        problem: &mut Problem<'_, O>,
        sum: &dyn Fn(&mut [f64]),
        mut on_point: impl FnMut(&[f64], usize, Fitted) -> std::result::Result<(), E>,
    ) -> std::result::Result<PathEnd, E> {
        let fit = self.fit;
        let bmax = beta_max(problem);
        let (grid, done, warm) = match self.resume {
            Some(r) => {
                check_resumable(&r, bmax)?;
                (r.grid, r.done, r.warm)
            }
            None => (self.betas.resolve(bmax)?, 0, None),
        };
        let start = PathStart { from: done, warm };
        let interrupted = solve_path(
            problem,
            &grid,
            &fit.options,
            start,
            self.comm,
            |problem, index, solution| {
                let tokens = problem.op.tokens();
                let fitted = fit.fitted_on_shard(
                    setup,
                    tokens,
                    problem.beta,
                    solution,
                    bmax,
                    self.val,
                    sum,
                )?;
                on_point(&grid, index, fitted)
            },
        )?;
        Ok(PathEnd {
            grid,
            beta_max: bmax,
            interrupted,
        })
    }
}

/// A stopped run continues only on the data and options it was started
/// with: the same β_max (its grid's first β when the grid came from β_max).
fn check_resumable(r: &PathResume, bmax: f64) -> Result<()> {
    let Some(&first) = r.grid.first() else {
        return invalid("cannot resume a path with an empty β grid");
    };
    if r.done > r.grid.len() {
        return invalid(format!(
            "cannot resume: {} points finished of a grid of {}",
            r.done,
            r.grid.len()
        ));
    }
    let same = (first - bmax).abs() <= 1e-9 * bmax.abs(); // false for NaN: refused
    if !same {
        return invalid(format!(
            "cannot resume: beta_max is {bmax:e} on this data, {first:e} in the recorded run; \
             start a new run with --force"
        ));
    }
    Ok(())
}
