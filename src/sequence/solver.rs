//! FISTA with adaptive restart on the pair (C⁺, C⁻) ∈ K^{d·c} × K^{d·c}, and
//! the duality gap of the sequence program.
//!
//! Objective: f(𝒜(C⁺ − C⁻)) + (β/n) Σ 1ᵀ(C⁺ + C⁻)1 + ι_K. The gradient of the
//! smooth part is (G, −G) with G = 𝒜ᵀ∇L, so the prox step is, per matrix,
//! C± ← Π_K(Y± − step·(±G + β/n)) ([`super::projection`]).
//!
//! Step size 1/L with L = γ·2·λ_max(X̄ᵀX̄) (γ the loss's smoothness, the 2 from
//! stacking ±𝒜), λ_max by power iteration (from below) times 1.02, and a
//! safeguard that needs no extra pass: the descent lemma holds whenever
//! γ‖𝒜(x − y)‖² ≤ L‖x − y‖² (‖𝒜(x − y)‖ is the difference of predictions,
//! which every iteration has), so when an iteration breaks it, L grows and
//! the step is redone from the same point.
//!
//! Dual point: θ = −α∇L(𝒜C) with α = min(1, β / max_{ql} max(Σ_r max_k
//! (−G_{ql}), Σ_r max_k G_{ql})), feasible for the dual of the module
//! documentation, so D(θ) ≤ C_m ≤ P(C).

use rayon::prelude::*;
use std::time::{Duration, Instant};

use super::operator::SequenceOperator;
use super::projection::{project_onto_k, sum_row_max, sum_row_max_neg, ProjectionScratch};
use super::recovery::{sequence_penalty, split_matrix};
use super::SequenceDataset;
use crate::error::Result;
use crate::loss::{Loss, SampleLoss};
use crate::solver::{Certificate, SolverOptions, StopReason};

/// What a run of the solver returns.
pub(super) struct Outcome {
    /// C = C⁺ − C⁻, matrix-major, rows equalised (see [`equalize_rows`]).
    pub coef: Vec<f64>,
    pub certificate: Certificate,
    pub iterations: usize,
    pub passes: f64,
    pub stop: StopReason,
}

/// Gradient of Σ L at predictions `pred` (N·n rows of c) into `grad`;
/// returns the loss.
fn loss_grad(loss: Loss, data: &SequenceDataset, pred: &[f64], grad: &mut [f64]) -> f64 {
    let c = data.n_outputs;
    pred.chunks_exact(c)
        .zip(data.y.chunks_exact(c))
        .zip(grad.chunks_exact_mut(c))
        .map(|((p, y), g)| loss.value_grad(p, y, g))
        .sum()
}

/// The largest dual-constraint value max_{ql} max(Σ_r max_k (−G), Σ_r max_k G)
/// of the matrix-major gradient G = 𝒜ᵀ∇L (so 𝒜ᵀθ = −G for θ = −∇L).
pub(super) fn max_constraint(gmat: &[f64], n: usize) -> f64 {
    gmat.chunks_exact(n * n)
        .map(|g| sum_row_max_neg(g, n).max(sum_row_max(g, n)))
        .fold(0.0, f64::max)
}

/// Σ_{rows} −L*(α·(−∇L_row)) for the gradient `grad` (N·n rows of c).
fn dual_value(loss: Loss, data: &SequenceDataset, grad: &[f64], alpha: f64) -> f64 {
    let c = data.n_outputs;
    let mut theta = vec![0.0; c];
    grad.chunks_exact(c)
        .zip(data.y.chunks_exact(c))
        .map(|(g, y)| {
            for (t, gv) in theta.iter_mut().zip(g) {
                *t = -alpha * gv;
            }
            loss.dual_value(&theta, y)
        })
        .sum()
}

/// The certificate at a point with loss `fit`, penalty sum `pen` and
/// matrix-major gradient `gmat` (from the loss gradient `grad`).
fn certify(
    loss: Loss,
    data: &SequenceDataset,
    beta: f64,
    fit: f64,
    pen: f64,
    grad: &[f64],
    gmat: &[f64],
) -> Certificate {
    let maxv = max_constraint(gmat, data.n_tokens);
    let alpha = if maxv > beta { beta / maxv } else { 1.0 };
    Certificate::new(fit + beta * pen, dual_value(loss, data, grad, alpha))
}

/// Replaces each n×n matrix by its orthogonal projection onto the
/// equal-row-sum subspace (row r shifted by (s̄ − s_r)/n): a no-op in exact
/// arithmetic on C⁺ − C⁻, it removes the rounding of the row sums.
pub(super) fn equalize_rows(coef: &mut [f64], n: usize) {
    for m in coef.chunks_exact_mut(n * n) {
        let sums: Vec<f64> = m.chunks_exact(n).map(|r| r.iter().sum()).collect();
        let mean = sums.iter().sum::<f64>() / n as f64;
        for (row, s) in m.chunks_exact_mut(n).zip(&sums) {
            let shift = (mean - s) / n as f64;
            if shift != 0.0 {
                row.iter_mut().for_each(|v| *v += shift);
            }
        }
    }
}

/// One matrix of each of (C⁺, C⁻, Y⁺, Y⁻), as the prox step zips them.
type Block<'a> = (((&'a mut [f64], &'a mut [f64]), &'a [f64]), &'a [f64]);

/// C±_b ← Π_K(Y±_b − step·(±G_b + β/n)) for every matrix b.
#[allow(clippy::too_many_arguments)]
fn prox_step(
    xp: &mut [f64],
    xm: &mut [f64],
    yp: &[f64],
    ym: &[f64],
    gmat: &[f64],
    step: f64,
    shrink: f64,
    n: usize,
) {
    let nn = n * n;
    let one = |s: &mut ProjectionScratch, (((xp, xm), yp), ym): Block, g: &[f64]| {
        for (((p, m), (a, b)), gv) in xp
            .iter_mut()
            .zip(xm.iter_mut())
            .zip(yp.iter().zip(ym))
            .zip(g)
        {
            *p = a - step * (gv + shrink);
            *m = b - step * (shrink - gv);
        }
        project_onto_k(xp, n, s);
        project_onto_k(xm, n, s);
    };
    if xp.len() >= 1 << 14 {
        xp.par_chunks_mut(nn)
            .zip(xm.par_chunks_mut(nn))
            .zip(yp.par_chunks(nn))
            .zip(ym.par_chunks(nn))
            .zip(gmat.par_chunks(nn))
            .for_each_init(|| ProjectionScratch::new(n), |s, (blk, g)| one(s, blk, g));
    } else {
        let mut s = ProjectionScratch::new(n);
        for (blk, g) in xp
            .chunks_mut(nn)
            .zip(xm.chunks_mut(nn))
            .zip(yp.chunks(nn))
            .zip(ym.chunks(nn))
            .zip(gmat.chunks(nn))
        {
            one(&mut s, blk, g);
        }
    }
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn norm(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The split (C⁺, C⁻) ∈ K × K of matrix-major coefficients with equal row
/// sums, matrix by matrix (SPEC §4c (ii)): a feasible start whose split-form
/// objective equals the convex objective at C.
pub(super) fn split_start(coef: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut xp = Vec::with_capacity(coef.len());
    let mut xm = Vec::with_capacity(coef.len());
    for m in coef.chunks_exact(n * n) {
        let (cp, _, cm, _) = split_matrix(m, n)?;
        xp.extend(cp);
        xm.extend(cm);
    }
    Ok((xp, xm))
}

/// Runs FISTA from `init` (a split from [`split_start`]) or from zero until
/// the relative gap is at most `opts.tol` or the budget is spent; certifies
/// the returned point.
pub(super) fn run(
    data: &SequenceDataset,
    loss: Loss,
    beta: f64,
    opts: &SolverOptions,
    start: Instant,
    init: Option<(Vec<f64>, Vec<f64>)>,
) -> Outcome {
    let (n_s, n, _, c) = data.shape();
    let op = SequenceOperator::new(data);
    let p = op.n_coef();
    let m = n_s * n * c;
    let shrink = beta / n as f64;
    let deadline = opts
        .max_seconds
        .is_finite()
        .then(|| start + Duration::from_secs_f64(opts.max_seconds));

    let (lam, lip_passes) = op.max_eigenvalue(300);
    let mut passes = lip_passes as f64;
    let mut lipschitz = (1.02 * 2.0 * loss.smoothness() * lam).max(1e-30);

    let (mut xp, mut xm) = init.unwrap_or_else(|| (vec![0.0; p], vec![0.0; p]));
    let mut xp_old = vec![0.0; p];
    let mut xm_old = vec![0.0; p];
    let mut yp = xp.clone();
    let mut ym = xm.clone();
    let mut bprod = vec![0.0; p];
    let mut gprod = vec![0.0; p];
    let mut gmat = vec![0.0; p];
    let mut ax = vec![0.0; m];
    let mut ax_old = vec![0.0; m];
    let mut ay = vec![0.0; m];
    let mut grad = vec![0.0; m];

    // Iteration 0: x = y = the start; the gradient there is also the check at x.
    let mut pen0 = 0.0;
    if xp.iter().chain(&xm).any(|&v| v != 0.0) {
        let c0: Vec<f64> = xp.iter().zip(&xm).map(|(a, b)| a - b).collect();
        op.to_product(&c0, &mut bprod);
        op.forward(&bprod, &mut ay);
        ax.copy_from_slice(&ay);
        passes += 1.0;
        pen0 = sequence_penalty(&c0, n);
    }
    let fit0 = loss_grad(loss, data, &ay, &mut grad);
    op.adjoint(&grad, &mut gprod);
    op.from_product(&gprod, &mut gmat);
    passes += 1.0;
    let mut cert = certify(loss, data, beta, fit0, pen0, &grad, &gmat);
    let mut iterations = 0usize;
    let mut t = 1.0f64;
    let stop = loop {
        if cert.relative_gap <= opts.tol {
            break StopReason::Converged;
        }
        if iterations >= opts.max_iter {
            break StopReason::MaxIter;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break StopReason::MaxSeconds;
        }
        // Prox-gradient step from y, safeguarded.
        std::mem::swap(&mut xp, &mut xp_old);
        std::mem::swap(&mut xm, &mut xm_old);
        std::mem::swap(&mut ax, &mut ax_old);
        loop {
            prox_step(
                &mut xp,
                &mut xm,
                &yp,
                &ym,
                &gmat,
                1.0 / lipschitz,
                shrink,
                n,
            );
            op.to_product_with(|j| xp[j] - xm[j], &mut bprod);
            op.forward(&bprod, &mut ax);
            passes += 1.0;
            let dx2 = sq_dist(&xp, &yp) + sq_dist(&xm, &ym);
            let da = sq_dist(&ax, &ay).sqrt();
            let allowed =
                (lipschitz / loss.smoothness() * dx2).sqrt() + 1e-13 * (norm(&ax) + norm(&ay));
            if da <= allowed || dx2 == 0.0 {
                break;
            }
            lipschitz = (1.5 * lipschitz).max(1.1 * loss.smoothness() * da * da / dx2);
        }
        iterations += 1;

        // Gradient-based restart: the momentum points uphill.
        let mut uphill = 0.0;
        for ((yv, xv), ov) in yp.iter().zip(&xp).zip(&xp_old) {
            uphill += (yv - xv) * (xv - ov);
        }
        for ((yv, xv), ov) in ym.iter().zip(&xm).zip(&xm_old) {
            uphill += (yv - xv) * (xv - ov);
        }
        if uphill > 0.0 {
            t = 1.0;
        }
        let t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let mom = (t - 1.0) / t_new;
        t = t_new;

        // The check at x, every check_every iterations and when the budget
        // ends (the loop's head then stops).
        let budget_ends =
            iterations >= opts.max_iter || deadline.is_some_and(|d| Instant::now() >= d);
        let checked = iterations % opts.check_every == 0 || budget_ends;
        if checked {
            let fit = loss_grad(loss, data, &ax, &mut grad);
            op.adjoint(&grad, &mut gprod);
            op.from_product(&gprod, &mut gmat);
            passes += 1.0;
            let pen = {
                // ‖C⁺ − C⁻‖∞,1 per matrix, through the product buffer's twin.
                let nn = n * n;
                xp.chunks_exact(nn)
                    .zip(xm.chunks_exact(nn))
                    .map(|(a, b)| {
                        a.chunks_exact(n)
                            .zip(b.chunks_exact(n))
                            .map(|(ra, rb)| ra.iter().zip(rb).map(|(u, v)| (u - v).abs()).sum())
                            .fold(0.0, f64::max)
                    })
                    .sum::<f64>()
            };
            cert = certify(loss, data, beta, fit, pen, &grad, &gmat);
            if cert.relative_gap <= opts.tol || budget_ends {
                continue;
            }
        }

        // Extrapolate: y = x + mom(x − x_old), and its predictions likewise.
        for ((yv, xv), ov) in yp.iter_mut().zip(&xp).zip(&xp_old) {
            *yv = xv + mom * (xv - ov);
        }
        for ((yv, xv), ov) in ym.iter_mut().zip(&xm).zip(&xm_old) {
            *yv = xv + mom * (xv - ov);
        }
        for ((yv, xv), ov) in ay.iter_mut().zip(&ax).zip(&ax_old) {
            *yv = xv + mom * (xv - ov);
        }
        if !(checked && mom == 0.0) {
            // (After a check with no momentum, y = x and gmat is already ∇ at y.)
            loss_grad(loss, data, &ay, &mut grad);
            op.adjoint(&grad, &mut gprod);
            op.from_product(&gprod, &mut gmat);
            passes += 1.0;
        }
    };

    // The returned point: C = C⁺ − C⁻ with its row sums made equal, certified.
    let mut coef: Vec<f64> = xp.iter().zip(&xm).map(|(a, b)| a - b).collect();
    equalize_rows(&mut coef, n);
    op.to_product(&coef, &mut bprod);
    op.forward(&bprod, &mut ax);
    let fit = loss_grad(loss, data, &ax, &mut grad);
    op.adjoint(&grad, &mut gprod);
    op.from_product(&gprod, &mut gmat);
    passes += 2.0;
    let certificate = certify(
        loss,
        data,
        beta,
        fit,
        sequence_penalty(&coef, n),
        &grad,
        &gmat,
    );
    Outcome {
        coef,
        certificate,
        iterations,
        passes,
        stop,
    }
}
