//! β_max and warm-started paths over a geometric β grid (SPEC §5).

use super::certificate::dual_scores;
use super::{solve, Solution, SolverOptions};
use crate::error::{invalid, Result};
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

/// Solves along `betas` (any order; warm starts follow it), calling
/// `on_solution` with the problem (at that β) and the solution after each
/// solve. Stops after a solve that ended interrupted (its solution is the
/// last one returned).
///
/// `opts.max_seconds` is each β's share of the path's time: a solve may
/// also use what the solves before it left unused, so the path takes at
/// most `betas.len() × max_seconds`, as with a cap per solve, but the
/// small β at its end, the slow ones, get the time the large β did not
/// need.
pub fn solve_path<O: LinearOperator>(
    problem: &mut Problem<'_, O>,
    betas: &[f64],
    opts: &SolverOptions,
    mut on_solution: impl FnMut(&Problem<'_, O>, &Solution),
) -> Result<Vec<Solution>> {
    let mut out: Vec<Solution> = Vec::with_capacity(betas.len());
    let start = std::time::Instant::now();
    for (j, &beta) in betas.iter().enumerate() {
        crate::problem::check_beta(beta)?;
        problem.beta = beta;
        let warm = out
            .last()
            .map(|s| (s.coef.as_slice(), s.intercept.as_slice()));
        let spent = start.elapsed().as_secs_f64();
        let opts = SolverOptions {
            max_seconds: seconds_left(opts.max_seconds, j, spent),
            ..opts.clone()
        };
        let sol = solve(problem, &opts, warm)?;
        on_solution(problem, &sol);
        let stop = sol.stop;
        out.push(sol);
        if stop == super::StopReason::Interrupted {
            break;
        }
    }
    Ok(out)
}

/// The seconds the `j`-th solve of a path (from 0) may take when each
/// solve's share is `share` and the path has spent `spent`: its own share
/// and what the earlier ones left, never less than a tenth of a share (the
/// path's own bookkeeping between solves may overrun the total a little).
pub(super) fn seconds_left(share: f64, j: usize, spent: f64) -> f64 {
    if !share.is_finite() {
        return share;
    }
    ((j + 1) as f64 * share - spent).max(0.1 * share)
}
