//! β_max and warm-started paths over a geometric β grid (SPEC §5).

use super::certificate::dual_scores;
use super::fista::Budget;
use super::{solve, Solution, SolverOptions, StopReason};
use crate::comm::Communicator;
use crate::error::{invalid, Error, Result};
use crate::loss::SampleLoss;
use crate::operator::LinearOperator;
use crate::problem::Problem;

/// The smallest β at which Z = 0 is optimal: the largest dual norm of the
/// correlation X_bᵀθ⁰, θ⁰ = −∇L at the predictions of Z = 0 (the best
/// constant when an intercept is fitted, then centred). One data pass.
pub fn beta_max<O: LinearOperator>(problem: &Problem<'_, O>) -> f64 {
    let nb = problem.op.n_blocks();
    let all: Vec<usize> = (0..nb).collect();
    let b = problem.intercept_at_zero();
    let mut buf = problem.op.buffers(nb);
    let loss = problem.loss;
    problem.op.fused_pass(
        &[],
        &[],
        &b,
        &all,
        |i, yh, g| loss.value_grad(yh, problem.target(i), g),
        &mut buf,
    );
    let mut scratch = vec![0.0; problem.block_len()];
    let mut norms = Vec::with_capacity(nb);
    dual_scores(problem, &all, &buf, &mut scratch, &mut norms)
}

/// `k` values from `hi` down to `hi·ratio`, geometrically spaced.
pub fn beta_grid(hi: f64, ratio: f64, k: usize) -> Result<Vec<f64>> {
    if !(hi > 0.0 && hi.is_finite()) {
        return invalid(format!(
            "the largest beta must be positive, got {hi} (is the data all zeros?)"
        ));
    }
    if !(ratio > 0.0 && ratio < 1.0) {
        return invalid(format!("the beta ratio must be in (0, 1), got {ratio}"));
    }
    if k == 0 {
        return invalid("a path needs at least one beta");
    }
    if k == 1 {
        return Ok(vec![hi]);
    }
    Ok((0..k)
        .map(|j| hi * ratio.powf(j as f64 / (k - 1) as f64))
        .collect())
}

/// Where a path starts: the index in its β grid of the first β to solve,
/// and the coefficients and intercepts that solve starts from (none: zero).
/// `Default` is the grid's first β, from zero.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathStart {
    pub from: usize,
    pub warm: Option<(Vec<f64>, Vec<f64>)>,
}

/// The one path loop every program and experiment uses: solves at each β
/// of `betas` (any order) from `start` on, each solve started from the one
/// before, handing the problem (at that β), the β's index in `betas` and
/// the solution to `on_solution`. Returns whether the path stopped before
/// its end: after a solve that ended interrupted, or before the next one
/// once the options' interrupt is raised on any of `comm`'s processes
/// (all of them take the same branch, so collectives stay in step).
///
/// `opts.max_seconds` is each β's share of the path's solving time: a
/// solve may also use what the solves before it left unused, so the solves
/// take at most `betas.len() × max_seconds`, as with a cap per solve, but
/// the small β at the path's end, the slow ones, get the time the large β
/// did not need. Time spent in `on_solution` (reports, files) is not
/// counted.
pub fn solve_path<O: LinearOperator, E: From<Error>>(
    problem: &mut Problem<'_, O>,
    betas: &[f64],
    opts: &SolverOptions,
    start: PathStart,
    comm: &dyn Communicator,
    mut on_solution: impl FnMut(&Problem<'_, O>, usize, Solution) -> std::result::Result<(), E>,
) -> std::result::Result<bool, E> {
    let PathStart { from, mut warm } = start;
    let mut solving = 0.0;
    // The options' interrupt, agreed across the shards as in a solve (no
    // collective without a flag); the path itself has no deadline.
    let stop = Budget {
        iterations_left: usize::MAX,
        deadline: None,
        interrupt: opts.interrupt.clone(),
        shards: Some(comm),
    };
    for (index, &beta) in betas.iter().enumerate().skip(from) {
        if stop.out_of_time().is_some() {
            return Ok(true);
        }
        crate::problem::check_beta(beta)?;
        problem.beta = beta;
        let opts = SolverOptions {
            max_seconds: seconds_left(opts.max_seconds, index - from, solving),
            ..opts.clone()
        };
        let sol = solve(problem, &opts, warm.as_ref().map(|(c, b)| (&c[..], &b[..])))?;
        solving += sol.seconds;
        let stopped = sol.stop == StopReason::Interrupted;
        warm = Some((sol.coef.clone(), sol.intercept.clone()));
        on_solution(problem, index, sol)?;
        if stopped {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The seconds the `j`-th solve of a path (from 0) may take when each
/// solve's share is `share` and the path's solves before it took `spent`:
/// its own share and what the earlier ones left, never less than a tenth
/// of a share (a solve may overrun its cap a little).
pub(super) fn seconds_left(share: f64, j: usize, spent: f64) -> f64 {
    if !share.is_finite() {
        return share;
    }
    ((j + 1) as f64 * share - spent).max(0.1 * share)
}
