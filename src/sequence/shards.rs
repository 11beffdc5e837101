//! The sequence program on one shard of a data-parallel run: every sum over
//! (sample, position) rows is taken across the shards, so each shard gets
//! the certified solution and report of the program on all samples.

use super::operator::SequenceOperator;
use super::{check_inputs, solve_problem, SequenceReport, SequenceSolution};
use crate::comm::Communicator;
use crate::data::Dataset;
use crate::error::Result;
use crate::fit::{check_same_shape, with_all_classes};
use crate::loss::Loss;
use crate::operator::Sharded;
use crate::penalty::Penalty;
use crate::problem::Problem;
use crate::solver::{beta_max, SolverOptions};
use std::borrow::Cow;

/// This shard's samples of a sequence data set, checked against the other
/// shards' (one shape; label targets widened to the classes of all). With
/// one shard, the plain one-process program.
pub struct SequenceShard<'a> {
    data: Cow<'a, Dataset<'a>>,
    comm: &'a dyn Communicator,
}

impl<'a> SequenceShard<'a> {
    /// Collective: every shard calls it at once; all get the same error.
    pub fn new(data: &'a Dataset<'a>, comm: &'a dyn Communicator) -> Result<Self> {
        let data = match with_all_classes(data, comm)? {
            Some(widened) => Cow::Owned(widened),
            None => Cow::Borrowed(data),
        };
        check_same_shape(&data, comm)?;
        Ok(SequenceShard { data, comm })
    }

    /// The samples this shard holds (widened where needed).
    pub fn data(&self) -> &Dataset<'_> {
        &self.data
    }

    /// The shards this one sums with.
    pub fn comm(&self) -> &dyn Communicator {
        self.comm
    }

    pub(super) fn problem(
        &self,
        loss: Loss,
        beta: f64,
    ) -> Result<Problem<'_, Sharded<'_, SequenceOperator<'_>>>> {
        check_inputs(&self.data, loss, beta)?;
        Problem::with_operator(
            Sharded::new(SequenceOperator::new(&self.data), self.comm),
            &self.data.y,
            loss,
            Penalty::RowSumCone {
                n: self.data.n_tokens,
            },
            beta,
            false,
        )
    }

    /// β_max of the program on all shards' samples.
    pub fn beta_max(&self, loss: Loss) -> Result<f64> {
        if self.comm.size() == 1 {
            return super::sequence_beta_max(&self.data, loss);
        }
        Ok(beta_max(&self.problem(loss, 1.0)?))
    }

    /// [`super::solve_sequence_from`] on all shards' samples.
    pub fn solve(
        &self,
        loss: Loss,
        beta: f64,
        opts: &SolverOptions,
        init: Option<&[f64]>,
    ) -> Result<SequenceSolution> {
        if self.comm.size() == 1 {
            return super::solve_sequence_from(&self.data, loss, beta, opts, init);
        }
        opts.validate()?;
        let problem = self.problem(loss, beta)?;
        solve_problem(&problem, &self.data, opts, init, &|v| self.comm.sum(v))
    }

    /// [`SequenceReport::new`] of all shards' samples.
    pub fn report(
        &self,
        loss: Loss,
        sol: &SequenceSolution,
        beta_max: f64,
        val: Option<&Dataset>,
    ) -> Result<SequenceReport> {
        SequenceReport::of_shard(&self.data, loss, sol, beta_max, val, self.comm)
    }
}
