//! A Newton step on the support, for coordinate descent that crawls.
//!
//! Near the optimum, with the support found, the group-ℓ₂ objective is
//! smooth on it: L(𝒜_S z + b) + β Σ_g ‖z_g‖ over the nonzero groups g.
//! Where blocks are strongly correlated (gates firing on nearly the same
//! samples), coordinate descent moves along such a valley a little per
//! epoch, and the dual point −∇L(ŷ) it certifies with does not settle. One
//! Newton step solves the valley's system by conjugate gradients, each
//! iteration a Hessian–vector product through the data (one pass over the
//! support, no Gram), stopped at the caller's pass budget (a truncated CG
//! still gives a descent direction), then a line search on the true
//! objective. Zero groups stay zero: coordinate descent, which resumes
//! after the step, moves them.
//! The system is damped (Levenberg–Marquardt, relative to the penalty's
//! curvature): the loss is flat along softmax shifts and along one-hot
//! tokens of one gate traded against each other, the penalty alone holds
//! those directions, and its quadratic model is poor far from the point.

use super::fista::Budget;
use super::prox_newton::objective_along;
use crate::operator::{LinearOperator, PassBuffers};
use crate::penalty::Penalty;
use crate::problem::Problem;

/// Conjugate-gradient iterations per Newton step, at most, and at least
/// (whatever the pass budget).
const MAX_CG: usize = 100;
const MIN_CG: usize = 3;
/// Groups below this fraction of the largest group's norm are held fixed.
const SMALL_GROUP: f64 = 1e-3;
/// CG stops when the residual is this fraction of the gradient's norm.
const CG_TOL: f64 = 1e-6;

/// One Newton step from (x, bx) on the nonzero groups of `ws`; `buf` holds
/// the pass at (x, bx) with its adjoint on `ws`, and `f0` is the objective
/// there. CG stops where its products and the line search's pass would
/// read more than `max_passes` (after `MIN_CG` products at least).
/// Returns the passes it read and whether it moved the point (then `buf`
/// no longer holds its pass).
#[allow(clippy::too_many_arguments)]
pub fn support_newton_step<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws: &[usize],
    x: &mut [f64],
    bx: &mut [f64],
    buf: &PassBuffers,
    f0: f64,
    max_passes: f64,
    budget: &Budget,
    damping: &mut f64,
) -> (f64, bool) {
    if problem.penalty != Penalty::GroupL2 {
        return (0.0, false);
    }
    let (_, d) = problem.op.penalty_shape();
    let cd = problem.block_len();
    let loss = problem.loss;
    let beta = problem.beta;
    let ones = problem.intercept;
    // The blocks with a nonzero group, and the mask of the nonzero groups'
    // coefficients (positions in the packed support).
    let support: Vec<usize> = (0..ws.len())
        .filter(|&j| x[j * cd..(j + 1) * cd].iter().any(|&v| v != 0.0))
        .collect();
    if support.is_empty() {
        return (0.0, false);
    }
    let blocks: Vec<usize> = support.iter().map(|&j| ws[j]).collect();
    let n = support.len() * cd;
    let z: Vec<f64> = support
        .iter()
        .flat_map(|&j| x[j * cd..(j + 1) * cd].iter().copied())
        .collect();
    let norms: Vec<f64> = z
        .chunks_exact(d)
        .map(|g| g.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    // Groups far smaller than the largest stay as they are: their curvature
    // β/‖z_g‖ is the penalty's kink near, not a quadratic's.
    let top = norms.iter().copied().fold(0.0f64, f64::max);
    let norms: Vec<f64> = norms
        .into_iter()
        .map(|v| if v > SMALL_GROUP * top { v } else { 0.0 })
        .collect();
    let mask: Vec<f64> = (0..n)
        .map(|k| if norms[k / d] > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let frac = problem.op.pass_fraction(&blocks);

    // Gradient of the smooth objective on the support.
    let mut grad = vec![0.0; n + bx.len()];
    for (k, &j) in support.iter().enumerate() {
        for q in 0..cd {
            let i = k * cd + q;
            let g = k * cd / d + q / d;
            grad[i] = mask[i]
                * (buf.block_grad[j * cd + q]
                    + if norms[g] > 0.0 {
                        beta * z[i] / norms[g]
                    } else {
                        0.0
                    });
        }
    }
    if ones {
        grad[n..].copy_from_slice(&buf.intercept_grad);
    }
    // The point's predictions and rows' gradients: `buf` is only read here.
    let (yhat0, g0) = (&buf.yhat, &buf.sample_grad);
    let mut hbuf = problem.op.buffers(blocks.len());
    let mut passes = 0.0;
    // Levenberg–Marquardt: μ relative to the penalty's curvature β/‖z_g‖,
    // which alone holds the directions the loss does not see (softmax
    // shifts, one-hot tokens of one gate traded against each other).
    let scale = norms
        .iter()
        .filter(|&&v| v > 0.0)
        .map(|v| beta / v)
        .sum::<f64>()
        / norms.iter().filter(|&&v| v > 0.0).count().max(1) as f64;
    let mu = *damping * scale;
    // H v: the loss's Hessian through the data (one pass), plus the
    // penalty's β(I − uuᵀ)/‖z_g‖ per nonzero group.
    // A direction's intercept part (zeros without an intercept).
    let intercept_of = |v: &[f64]| -> Vec<f64> {
        match ones {
            true => v[n..].to_vec(),
            false => vec![0.0; bx.len()],
        }
    };
    let mut hv = |v: &[f64], out: &mut [f64], passes: &mut f64| {
        let vb = intercept_of(v);
        problem.op.fused_pass(
            &blocks,
            &v[..n],
            &vb,
            &blocks,
            |i, av, o| {
                let r = i * av.len()..(i + 1) * av.len();
                loss.hessian_times(&yhat0[r.clone()], problem.target(i), &g0[r], av, o);
                0.0
            },
            &mut hbuf,
        );
        *passes += frac;
        for i in 0..n {
            out[i] = mask[i] * hbuf.block_grad[i];
        }
        for (g, (zg, vg)) in z.chunks_exact(d).zip(v[..n].chunks_exact(d)).enumerate() {
            if norms[g] == 0.0 {
                continue;
            }
            let uv: f64 = zg.iter().zip(vg).map(|(a, b)| a * b).sum::<f64>() / norms[g];
            for q in 0..d {
                let u = zg[q] / norms[g];
                out[g * d + q] += beta * (vg[q] - u * uv) / norms[g];
            }
        }
        if ones {
            out[n..].copy_from_slice(&hbuf.intercept_grad);
        }
        for i in 0..n {
            out[i] += mask[i] * mu * v[i];
        }
        // (The intercept too: softmax shifts leave the loss flat.)
        for i in n..v.len() {
            out[i] += mu * v[i];
        }
    };

    // Conjugate gradients on H Δ = −∇.
    let m = grad.len();
    let mut dx = vec![0.0; m];
    let mut r: Vec<f64> = grad.iter().map(|g| -g).collect();
    let mut p = r.clone();
    let mut hp = vec![0.0; m];
    let g_norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut rr = g_norm * g_norm;
    // Room for the line search's pass; a truncated CG still descends.
    let max_cg = (((max_passes - frac) / frac).floor() as usize).clamp(MIN_CG, MAX_CG);
    for _ in 0..max_cg {
        if rr.sqrt() <= CG_TOL * g_norm || budget.exhausted().is_some() {
            break;
        }
        hv(&p, &mut hp, &mut passes);
        let php: f64 = p.iter().zip(&hp).map(|(a, b)| a * b).sum();
        if php <= 0.0 {
            break;
        }
        let a = rr / php;
        for k in 0..m {
            dx[k] += a * p[k];
            r[k] -= a * hp[k];
        }
        let rr_new: f64 = r.iter().map(|v| v * v).sum();
        let b = rr_new / rr;
        rr = rr_new;
        for k in 0..m {
            p[k] = r[k] + b * p[k];
        }
    }
    if dx.iter().all(|&v| v == 0.0) {
        return (passes, false);
    }

    // Line search on the true objective along Δ (one forward pass).
    let db = intercept_of(&dx);
    problem.op.fused_pass(
        &blocks,
        &dx[..n],
        &db,
        &[],
        |_, _, g| {
            g.iter_mut().for_each(|v| *v = 0.0);
            0.0
        },
        &mut hbuf,
    );
    passes += frac;
    let dyhat = &hbuf.yhat;
    let slope: f64 = grad.iter().zip(&dx).map(|(a, b)| a * b).sum();
    if slope >= 0.0 {
        return (passes, false);
    }
    let c_out = problem.op.n_outputs();
    let mut trial = x.to_vec();
    let mut row = vec![0.0; c_out];
    let mut t = 1.0;
    for _ in 0..30 {
        trial.copy_from_slice(x);
        for (k, &j) in support.iter().enumerate() {
            for q in 0..cd {
                trial[j * cd + q] += t * dx[k * cd + q];
            }
        }
        let f = objective_along(problem, yhat0, dyhat, t, &trial, &mut row);
        if f <= f0 + 1e-4 * t * slope {
            x.copy_from_slice(&trial);
            for (b, v) in bx.iter_mut().zip(&db) {
                *b += t * v;
            }
            *damping = if t == 1.0 {
                (*damping * 0.3).max(1e-6)
            } else {
                *damping * 10.0
            };
            return (passes, true);
        }
        t *= 0.5;
    }
    *damping *= 10.0;
    (passes, false)
}
