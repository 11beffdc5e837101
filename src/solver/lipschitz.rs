//! Step size for FISTA: γ·λ_max(X_Wᵀ X_W) on the working set W (with the
//! intercept column when fitted), estimated by power iteration with the
//! fused pass (the squared loss with zero targets makes the pass compute
//! X_Wᵀ X_W v).

use crate::operator::{LinearOperator, PassBuffers};
use crate::problem::Problem;

/// Returns an estimate of λ_max(X_Wᵀ X_W) (of [X_W, 1] with an intercept)
/// and the number of passes spent. The estimate is from below; callers add
/// a safety margin and FISTA's objective checks catch the rest.
pub fn max_eigenvalue<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws: &[usize],
    v: &mut [f64],
    vb: &mut [f64],
    buf: &mut PassBuffers,
    iters: usize,
) -> (f64, usize) {
    let c = problem.op.n_outputs();
    let intercept = problem.intercept;
    // Start from a fixed vector: results stay reproducible.
    v.iter_mut()
        .enumerate()
        .for_each(|(k, x)| *x = 1.0 + ((k * 7919) % 13) as f64 / 13.0);
    vb.iter_mut()
        .for_each(|x| *x = if intercept { 1.0 } else { 0.0 });
    let mut lambda = 0.0;
    let mut passes = 0;
    for _ in 0..iters {
        let nrm =
            (v.iter().map(|x| x * x).sum::<f64>() + vb.iter().map(|x| x * x).sum::<f64>()).sqrt();
        if nrm == 0.0 {
            return (0.0, passes);
        }
        v.iter_mut().for_each(|x| *x /= nrm);
        vb.iter_mut().for_each(|x| *x /= nrm);
        problem.op.fused_pass(
            ws,
            v,
            vb,
            ws,
            |_, yh, g| {
                g.copy_from_slice(yh);
                0.0
            },
            buf,
        );
        passes += 1;
        let width = v.len();
        v.copy_from_slice(&buf.block_grad[..width]);
        if intercept {
            vb.copy_from_slice(&buf.intercept_grad[..c]);
        }
        let new =
            (v.iter().map(|x| x * x).sum::<f64>() + vb.iter().map(|x| x * x).sum::<f64>()).sqrt();
        let done = (new - lambda).abs() <= 1e-3 * new;
        lambda = new;
        if done {
            break;
        }
    }
    (lambda, passes)
}
