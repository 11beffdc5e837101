//! The sequence program's regularization path: certified solves along a β
//! grid, each started from the previous solution, in one process or on the
//! shards of a data-parallel run.

use super::{SequenceShard, SequenceSolution};
use crate::comm::SingleProcess;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::fit::PathBetas;
use crate::loss::Loss;
use crate::operator::LinearOperator;
use crate::problem::Problem;
use crate::solver::{solve_path, PathStart, SolverOptions};

impl SequenceShard<'_> {
    /// Solves at each β of `grid` in order, the first from `warm` (none:
    /// zero) and each next from the previous solution, handing each solution
    /// with its index in `grid` to `on_point`. Stops after a solve that ended
    /// interrupted, or before the next one once the options' interrupt is
    /// raised on any shard; returns whether it stopped so.
    pub fn path<E: From<Error>>(
        &self,
        loss: Loss,
        grid: &[f64],
        opts: &SolverOptions,
        warm: Option<Vec<f64>>,
        on_point: impl FnMut(usize, &SequenceSolution) -> std::result::Result<(), E>,
    ) -> std::result::Result<bool, E> {
        let Some(&first) = grid.first() else {
            return Ok(false);
        };
        opts.validate()?;
        // One problem for the whole grid, its β changed per solve: the
        // operator's Gram matrix (the step sizes' bound) is formed once.
        if self.comm().size() == 1 {
            let problem = super::sequence_problem(self.data(), loss, first)?;
            self.path_of(problem, grid, opts, warm, on_point, &|_| {})
        } else {
            let problem = self.problem(loss, first)?;
            self.path_of(problem, grid, opts, warm, on_point, &|v| self.comm().sum(v))
        }
    }

    fn path_of<O: LinearOperator, E: From<Error>>(
        &self,
        mut problem: Problem<'_, O>,
        grid: &[f64],
        opts: &SolverOptions,
        warm: Option<Vec<f64>>,
        mut on_point: impl FnMut(usize, &SequenceSolution) -> std::result::Result<(), E>,
        sum: &dyn Fn(&mut [f64]),
    ) -> std::result::Result<bool, E> {
        let warm = super::split_start(warm.as_deref(), self.data())?;
        let start = PathStart { from: 0, warm };
        let on_solution = |problem: &Problem<'_, O>, index, sol| {
            on_point(index, &super::finish(problem, self.data(), sol, sum)?)
        };
        solve_path(&mut problem, grid, opts, start, self.comm(), on_solution)
    }
}

/// The path of the sequence program on `data` in one process: one certified
/// solution per β of `betas` (in the order given, each warm-started from the
/// previous one; fewer when the options' interrupt stopped it), and β_max.
pub fn sequence_path(
    data: &Dataset,
    loss: Loss,
    betas: &PathBetas,
    opts: &SolverOptions,
) -> Result<(Vec<SequenceSolution>, f64)> {
    opts.validate()?;
    let shard = SequenceShard::new(data, &SingleProcess)?;
    let bmax = shard.beta_max(loss)?;
    let grid = betas.resolve(bmax)?;
    let mut out = Vec::with_capacity(grid.len());
    shard.path(loss, &grid, opts, None, |_, sol| {
        out.push(sol.clone());
        Ok::<(), Error>(())
    })?;
    Ok((out, bmax))
}
