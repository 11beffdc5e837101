//! The sequence program's regularization path: certified solves along a β
//! grid, each started from the previous solution, in one process or on the
//! shards of a data-parallel run.

use super::{solve_problem, SequenceShard, SequenceSolution};
use crate::comm::SingleProcess;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::fit::PathBetas;
use crate::loss::Loss;
use crate::operator::LinearOperator;
use crate::problem::{check_beta, Problem};
use crate::solver::{SolverOptions, StopReason};

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
        mut warm: Option<Vec<f64>>,
        mut on_point: impl FnMut(usize, &SequenceSolution) -> std::result::Result<(), E>,
        sum: &dyn Fn(&mut [f64]),
    ) -> std::result::Result<bool, E> {
        let interrupt = opts.interrupt.clone().unwrap_or_default();
        for (index, &beta) in grid.iter().enumerate() {
            if self.comm().any(interrupt.requested()) {
                return Ok(true);
            }
            check_beta(beta)?;
            problem.beta = beta;
            let sol = solve_problem(&problem, self.data(), opts, warm.as_deref(), sum)?;
            on_point(index, &sol)?;
            if sol.stop == StopReason::Interrupted {
                return Ok(true);
            }
            warm = Some(sol.coef);
        }
        Ok(false)
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
