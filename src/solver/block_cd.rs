//! Block coordinate descent on the data (skglm's AndersonCD, celer's inner
//! solver), for any smooth loss: the predictions ŷ, the rows' gradients and
//! losses are kept up to date as each block of the working set moves, so an
//! epoch reads each block's data once while it is in cache (its adjoint,
//! then its update) and never builds an m×m Gram. This is the inner solver
//! where a working-set Gram would cost more than the passes it saves
//! (m ≳ N, many outputs, cross-entropy). Near the optimum it sets the
//! nonzero groups' lengths to their best, for the dual point's sake
//! ([`super::group_lengths`]).
//!
//! Each block is minimised exactly on a quadratic model in the metric of
//! its own Gram X_bᵀX_b (which preconditions anisotropic features), scaled
//! by κ_b·γ where γ bounds the loss's curvature. κ_b starts at 1 (the model
//! majorises the loss) and follows the curvature the loss showed along the
//! last step of that block: a step whose loss rises above its model is
//! undone and retried with a larger κ_b, so every kept step lowers the
//! objective. Anderson extrapolation every K epochs is kept where it lowers
//! the objective.

use super::certificate::{reduced_certificate, Certificate};
use super::fista::{Budget, InnerResult};
use super::gram_cd::anderson_coefficients;
use super::group_lengths::{set_group_lengths, Reach, MAX_VALUES};
use super::prox_newton::penalty_sum;
use crate::loss::SampleLoss;
use crate::operator::kernels::{axpy, dot, rows_times_symmetric};
use crate::operator::{LinearOperator, PassBuffers};
use crate::penalty::{BlockPenalty, SymEigen};
use crate::problem::Problem;
use std::collections::HashMap;

/// Epochs between Anderson extrapolations (and duality-gap checks).
const ANDERSON_K: usize = 5;
/// Below this relative gap the nonzero groups' lengths are set to their
/// best ([`super::group_lengths`]) after each cycle of epochs, aiming at
/// `LENGTHS_AIM` of the gap (or the tolerance). Gated cross-entropy, seeds
/// 0..23: 43 to 80 passes, mean 59 (101 to 191, mean 155, before); with an
/// earlier version, seeds 0..11, starting at 1e-3 or 1e-2 took 119 and 105
/// passes, 1e-1 72. Taking it only where a first-order estimate from the
/// pass promised half the gap saved no passes on the hard suite and
/// tripled the 32-gate grokking model's at 0.158·β_max (the estimate
/// ignores the intercept's centring).
const LENGTHS_NEAR: f64 = 1e-1;
const LENGTHS_AIM: f64 = 0.1;
/// The smallest curvature scale κ a block may take.
const KAPPA_MIN: f64 = 1e-6;

/// Per block: the Gram X_bᵀX_b (d×d) with its eigendecomposition, and the
/// curvature scale κ_b learned so far. Kept across the working sets of one
/// solve: a block's data never change.
#[derive(Default)]
pub struct BlockCdCache {
    blocks: HashMap<usize, BlockMetric>,
    /// The intercept's κ.
    intercept_kappa: Option<f64>,
}

struct BlockMetric {
    shape: MetricShape,
    kappa: f64,
}

enum MetricShape {
    /// X_bᵀX_b (d×d) and its eigendecomposition.
    Dense { gram: Vec<f64>, eig: SymEigen },
    /// X_bᵀX_b is diagonal (one-hot tokens): its diagonal. The model then
    /// takes each coefficient's own curvature at the current point (the
    /// loss's diagonal curvature weights, per output), which costs nothing
    /// more than the adjoint: a diagonal Newton step, where the dense model
    /// uses one scale for the whole block.
    Diagonal(Vec<f64>),
}

/// Solves the problem reduced to `ws` from (x, bx) to relative gap `tol`,
/// as [`super::fista::fista`] does (on return `buf` holds the pass at the
/// returned point).
#[allow(clippy::too_many_arguments)]
pub fn block_cd<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws: &[usize],
    x: &mut [f64],
    bx: &mut [f64],
    tol: f64,
    budget: &mut Budget,
    buf: &mut PassBuffers,
    cache: &mut BlockCdCache,
) -> InnerResult {
    let (c, d) = problem.op.penalty_shape();
    let cd = problem.block_len();
    let loss = problem.loss;
    let grad_fn = |i: usize, yh: &[f64], g: &mut [f64]| loss.value_grad(yh, problem.target(i), g);
    let rows = problem.op.n_rows();
    let beta = problem.beta;
    let mut passes = 0.0;
    let mut iterations = 0;

    // The metric of every block new to this solve: one read of its data.
    let new: Vec<usize> = ws
        .iter()
        .copied()
        .filter(|b| !cache.blocks.contains_key(b))
        .collect();
    if !new.is_empty() {
        let ones = vec![1.0; rows];
        for &b in &new {
            let gram = problem
                .op
                .weighted_gram(&[b], &ones, 1, false)
                .and_then(|mut g| g.pop());
            let metric = gram.and_then(|gram| {
                let diagonal = (0..d).all(|p| (0..d).all(|q| p == q || gram[p * d + q] == 0.0));
                let shape = if diagonal {
                    let diag: Vec<f64> = (0..d).map(|q| gram[q * d + q]).collect();
                    if !diag.iter().all(|v| v.is_finite()) {
                        return None;
                    }
                    MetricShape::Diagonal(diag)
                } else {
                    let eig = SymEigen::new(&gram, d, d)?;
                    MetricShape::Dense { gram, eig }
                };
                Some(BlockMetric { shape, kappa: 1.0 })
            });
            match metric {
                Some(m) => {
                    cache.blocks.insert(b, m);
                }
                None => {
                    // No Gram (or non-finite data): nothing this solver can do.
                    let lv = problem.op.fused_pass(ws, x, bx, ws, grad_fn, buf);
                    let certificate =
                        reduced_certificate(problem, ws, buf, lv + beta * penalty_sum(problem, x));
                    return InnerResult {
                        iterations,
                        passes: passes + problem.op.pass_fraction(ws),
                        certificate,
                        stopped: None,
                        lipschitz: f64::NAN,
                    };
                }
            }
        }
        passes += problem.op.pass_fraction(&new);
    }

    let mut row_loss = vec![0.0; rows];
    let mut work = Scratch::new(c, d);
    let mut history: Vec<Vec<f64>> = Vec::with_capacity(ANDERSON_K + 1);
    // Some(loss) when `buf` holds the pass at (x, bx) with the adjoint on ws.
    let mut at_point: Option<f64> = None;
    // The highest dual value seen in this call: every dual point computed
    // here is feasible for the same reduced problem, so the best bounds its
    // optimum (celer keeps it too: the rescaled point wobbles, and an
    // extrapolation rejected for its primal can still hold the better dual).
    let mut best_dual = f64::NEG_INFINITY;
    let mut lengths_set = false;
    loop {
        let lv = match at_point.take() {
            Some(lv) => lv,
            None => {
                passes += problem.op.pass_fraction(ws);
                problem.op.fused_pass(ws, x, bx, ws, grad_fn, buf)
            }
        };
        let certificate =
            reduced_certificate(problem, ws, buf, lv + beta * penalty_sum(problem, x));
        best_dual = best_dual.max(certificate.dual);
        let bound = Certificate::new(certificate.primal, best_dual);
        let stopped = budget.exhausted();
        if bound.relative_gap <= tol || stopped.is_some() {
            return InnerResult {
                iterations,
                passes,
                certificate: bound,
                stopped,
                lipschitz: f64::NAN,
            };
        }
        // Near the optimum the rescaled dual point lags the primal: set the
        // nonzero groups' lengths to their best and certify there. Not twice
        // in a row: epochs move the point in between.
        let gap = certificate.relative_gap;
        if !lengths_set && gap < LENGTHS_NEAR {
            let aim = tol.max(LENGTHS_AIM * gap) * certificate.primal.abs().max(1.0);
            let stop = || budget.out_of_time().is_some();
            let reach = Reach {
                aim,
                max_values: MAX_VALUES,
                stop: &stop,
            };
            let (read, moved) = set_group_lengths(problem, ws, x, bx, buf, &reach);
            passes += read;
            if moved {
                lengths_set = true;
                continue;
            }
        }
        lengths_set = false;
        for (i, l) in row_loss.iter_mut().enumerate() {
            *l = loss.value(&buf.yhat[i * c..(i + 1) * c], problem.target(i));
        }
        history.clear();
        history.push(stack(x, bx));
        for _ in 0..ANDERSON_K {
            for (j, &b) in ws.iter().enumerate() {
                let metric = cache.blocks.get_mut(&b).expect("computed above");
                block_step(
                    problem,
                    b,
                    &mut x[j * cd..(j + 1) * cd],
                    metric,
                    buf,
                    &mut row_loss,
                    &mut work,
                );
            }
            // SPEC §5: an epoch counts as the data its blocks hold (a
            // block's adjoint and update read its columns while in cache).
            passes += problem.op.pass_fraction(ws);
            if problem.intercept {
                passes += intercept_step(problem, bx, cache, buf, &mut row_loss);
            }
            iterations += 1;
            budget.iterations_left = budget.iterations_left.saturating_sub(1);
            history.push(stack(x, bx));
            if budget.exhausted().is_some() {
                break;
            }
        }
        // Anderson: the extrapolation of the epochs' iterates, kept only if
        // it lowers the objective (its pass then serves the certificate).
        if history.len() == ANDERSON_K + 1 {
            if let Some(coefs) = anderson_coefficients(&history) {
                let mut ext = vec![0.0; x.len() + bx.len()];
                for (k, &ck) in coefs.iter().enumerate() {
                    axpy(ck, &history[k + 1], &mut ext);
                }
                let (xe, be) = ext.split_at(x.len());
                let mut current = [row_loss.iter().sum::<f64>()];
                problem.op.sum_over_shards(&mut current);
                let current = current[0] + beta * penalty_sum(problem, x);
                passes += problem.op.pass_fraction(ws);
                let le = problem.op.fused_pass(ws, xe, be, ws, grad_fn, buf);
                let pe = le + beta * penalty_sum(problem, xe);
                if pe < current {
                    x.copy_from_slice(xe);
                    bx.copy_from_slice(be);
                    at_point = Some(le);
                } else {
                    let ext = reduced_certificate(problem, ws, buf, pe);
                    best_dual = best_dual.max(ext.dual);
                }
            }
        }
    }
}

/// Block b's step: the exact minimiser of its model, kept if the loss
/// stays below the model, else undone and retried with a larger κ.
fn block_step<O: LinearOperator>(
    problem: &Problem<'_, O>,
    b: usize,
    z: &mut [f64],
    metric: &mut BlockMetric,
    buf: &mut PassBuffers,
    row_loss: &mut [f64],
    w: &mut Scratch,
) {
    match &metric.shape {
        MetricShape::Dense { gram, eig } => dense_step(
            problem,
            b,
            z,
            gram,
            eig,
            &mut metric.kappa,
            buf,
            row_loss,
            w,
        ),
        MetricShape::Diagonal(diag) => {
            diagonal_step(problem, b, z, diag, &mut metric.kappa, buf, row_loss, w)
        }
    }
}

/// The step in the metric κ·γ·X_bᵀX_b.
#[allow(clippy::too_many_arguments)]
fn dense_step<O: LinearOperator>(
    problem: &Problem<'_, O>,
    b: usize,
    z: &mut [f64],
    gram: &[f64],
    eig: &SymEigen,
    kappa: &mut f64,
    buf: &mut PassBuffers,
    row_loss: &mut [f64],
    w: &mut Scratch,
) {
    let (c, d) = problem.op.penalty_shape();
    let loss = problem.loss;
    let gamma = loss.smoothness();
    let beta = problem.beta;
    problem.op.block_adjoint(b, &buf.sample_grad, &mut w.grad);
    let lip = eig.max();
    if lip <= 0.0 {
        return;
    }
    // Z₀G (G symmetric: row l is G z0_l), the same for every retry.
    rows_times_symmetric(z, gram, c, d, &mut w.zg);
    loop {
        let h = *kappa * gamma;
        // min_z ⟨g, z − z0⟩ + (h/2)Σ_l (z_l − z0_l)ᵀG(z_l − z0_l) + βΩ(z):
        // in G's metric, s_l = G z0_l − g_l/h and τ = β/h.
        for ((s, zg), g) in w.s.iter_mut().zip(&w.zg).zip(&w.grad) {
            *s = zg - g / h;
        }
        w.trial.copy_from_slice(z);
        let exact =
            problem
                .penalty
                .quadratic_min(eig, &w.s, c, d, beta / h, &mut w.trial, &mut w.secular);
        if !exact {
            for ((t, z0), g) in w.trial.iter_mut().zip(z.iter()).zip(&w.grad) {
                *t = z0 - g / (h * lip);
            }
            problem.penalty.prox(&mut w.trial, c, d, beta / (h * lip));
        }
        for ((dv, t), z0) in w.delta.iter_mut().zip(&w.trial).zip(z.iter()) {
            *dv = t - z0;
        }
        if w.delta.iter().all(|&v| v == 0.0) {
            return;
        }
        let lin = dot(&w.delta, &w.grad);
        // Σ_l Δ_lᵀGΔ_l = ⟨Δ, ΔG⟩.
        rows_times_symmetric(&w.delta, gram, c, d, &mut w.dg);
        let quad = dot(&w.delta, &w.dg);
        let k = *kappa;
        let kept = keep_or_undo(
            problem,
            b,
            z,
            w,
            buf,
            row_loss,
            (lin, h * quad, gamma * quad),
            (k, 1.0),
            kappa,
        );
        if kept {
            return;
        }
    }
}

/// The step in a diagonal metric: coefficient (l, q) takes curvature
/// h = min(κ·m_lq, γ·G_qq), with m_lq = Σ_i w_il·x²_iq from the loss's
/// curvature weights w at the current point (γ·G_qq for a loss of constant
/// curvature). At κ ≥ max γG/m the model is γ·G, which majorises the loss.
#[allow(clippy::too_many_arguments)]
fn diagonal_step<O: LinearOperator>(
    problem: &Problem<'_, O>,
    b: usize,
    z: &mut [f64],
    diag: &[f64],
    kappa: &mut f64,
    buf: &mut PassBuffers,
    row_loss: &mut [f64],
    w: &mut Scratch,
) {
    let (c, d) = problem.op.penalty_shape();
    let loss = problem.loss;
    let gamma = loss.smoothness();
    let beta = problem.beta;
    if loss.constant_curvature() {
        problem.op.block_adjoint(b, &buf.sample_grad, &mut w.grad);
        for row in w.m.chunks_exact_mut(d) {
            for (m, g) in row.iter_mut().zip(diag) {
                *m = gamma * g;
            }
        }
    } else {
        let yhat = &buf.yhat;
        let weights = |i: usize, g: &[f64], wi: &mut [f64]| {
            loss.curvature(&yhat[i * c..(i + 1) * c], problem.target(i), g, wi)
        };
        problem
            .op
            .block_adjoint_curvature(b, &buf.sample_grad, &mut w.grad, &mut w.m, &weights);
    }
    // m within [tiny, γG]: κ at `cap` makes every h its bound γG.
    let mut cap = 1.0f64;
    for row in w.m.chunks_exact_mut(d) {
        for (m, g) in row.iter_mut().zip(diag) {
            let top = gamma * g;
            if top > 0.0 {
                *m = m.clamp(1e-12 * top, top);
                cap = cap.max(top / *m);
            } else {
                *m = 0.0;
            }
        }
    }
    // No feature of this block has data: nothing to move.
    if diag.iter().all(|&g| g <= 0.0) {
        return;
    }
    loop {
        let k = kappa.min(cap);
        for (j, ((h, s), (&m, &z0))) in
            w.h.iter_mut()
                .zip(w.s.iter_mut())
                .zip(w.m.iter().zip(z.iter()))
                .enumerate()
        {
            *h = (k * m).min(gamma * diag[j % d]);
            // min_z ⟨g, z − z0⟩ + ½Σ h(z − z0)² + βΩ(z): s = h∘z0 − g.
            *s = *h * z0 - w.grad[j];
        }
        w.trial.copy_from_slice(z);
        let exact = problem
            .penalty
            .diagonal_quadratic_min(&w.h, &w.s, c, d, beta, &mut w.trial);
        if !exact {
            // A prox-gradient step at the largest curvature.
            let top = w.h.iter().fold(0.0f64, |a, &v| a.max(v));
            for ((t, z0), g) in w.trial.iter_mut().zip(z.iter()).zip(&w.grad) {
                *t = z0 - g / top;
            }
            problem.penalty.prox(&mut w.trial, c, d, beta / top);
            w.h.iter_mut().for_each(|v| *v = top);
        }
        let (mut lin, mut quad_h, mut quad_m) = (0.0, 0.0, 0.0);
        for (j, (dv, (&t, &z0))) in w
            .delta
            .iter_mut()
            .zip(w.trial.iter().zip(z.iter()))
            .enumerate()
        {
            *dv = t - z0;
            lin += *dv * w.grad[j];
            quad_h += w.h[j] * *dv * *dv;
            quad_m += w.m[j] * *dv * *dv;
        }
        if w.delta.iter().all(|&v| v == 0.0) {
            return;
        }
        let kept = keep_or_undo(
            problem,
            b,
            z,
            w,
            buf,
            row_loss,
            (lin, quad_h, quad_m),
            (k, cap),
            kappa,
        );
        if kept {
            return;
        }
    }
}

/// Moves block b by the trial step Δ = `w.delta` (to `w.trial`), given
/// `model` = (⟨g, Δ⟩, ΔᵀHΔ for the curvature in use, the same at κ = 1) and
/// `scale` = (κ in use, its cap, where the model majorises the loss). Keeps
/// the step if the loss stayed below its model (or κ is at its cap) and
/// sets κ from the curvature the loss showed; else undoes it and raises κ.
/// Returns whether it was kept.
#[allow(clippy::too_many_arguments)]
fn keep_or_undo<O: LinearOperator>(
    problem: &Problem<'_, O>,
    b: usize,
    z: &mut [f64],
    w: &mut Scratch,
    buf: &mut PassBuffers,
    row_loss: &mut [f64],
    model: (f64, f64, f64),
    scale: (f64, f64),
    kappa: &mut f64,
) -> bool {
    let (lin, quad_h, quad_m) = model;
    let (k, cap) = scale;
    let loss = problem.loss;
    let grad_fn = |i: usize, yh: &[f64], g: &mut [f64]| loss.value_grad(yh, problem.target(i), g);
    let change = problem
        .op
        .block_update(
            b,
            &w.delta,
            &mut buf.yhat,
            &mut buf.sample_grad,
            row_loss,
            grad_fn,
        )
        .expect("the solver checked that the operator has block products");
    // The curvature the loss showed along Δ, relative to the model's at κ = 1.
    let shown = if quad_m > 0.0 {
        ((change - lin) / (0.5 * quad_m)).max(0.0)
    } else {
        0.0
    };
    let slack = 1e-12 * (1.0 + change.abs() + lin.abs());
    if change <= lin + 0.5 * quad_h + slack || k >= cap {
        z.copy_from_slice(&w.trial);
        *kappa = (1.5 * shown).clamp(KAPPA_MIN, cap);
        return true;
    }
    // The model did not hold: undo, and retry with the curvature seen.
    for v in w.delta.iter_mut() {
        *v = -*v;
    }
    problem.op.block_update(
        b,
        &w.delta,
        &mut buf.yhat,
        &mut buf.sample_grad,
        row_loss,
        grad_fn,
    );
    *kappa = (2.0 * shown).max(2.0 * k).min(cap);
    false
}

/// The intercept's step (all rows move): the same model with G = N·I.
/// Returns the passes it cost.
fn intercept_step<O: LinearOperator>(
    problem: &Problem<'_, O>,
    bx: &mut [f64],
    cache: &mut BlockCdCache,
    buf: &mut PassBuffers,
    row_loss: &mut [f64],
) -> f64 {
    let c = bx.len();
    let loss = problem.loss;
    let gamma = loss.smoothness();
    let n = problem.op.total_rows() as f64;
    let mut g = vec![0.0; c];
    for gi in buf.sample_grad.chunks_exact(c) {
        axpy(1.0, gi, &mut g);
    }
    problem.op.sum_over_shards(&mut g);
    let kappa = cache.intercept_kappa.get_or_insert(1.0);
    let mut cost = 0.0;
    loop {
        let h = *kappa * gamma * n;
        let delta: Vec<f64> = g.iter().map(|v| -v / h).collect();
        let lin: f64 = -g.iter().map(|v| v * v).sum::<f64>() / h;
        let quad = n * delta.iter().map(|v| v * v).sum::<f64>();
        if quad == 0.0 {
            return cost;
        }
        let change = shift_rows(problem, &delta, buf, row_loss);
        cost += 1.0 / problem.op.n_blocks().max(1) as f64;
        let shown = ((change - lin) / (0.5 * gamma * quad)).max(0.0);
        if change <= lin + 0.5 * *kappa * gamma * quad + 1e-12 * (1.0 + change.abs() + lin.abs())
            || *kappa >= 1.0
        {
            for (b, dv) in bx.iter_mut().zip(&delta) {
                *b += dv;
            }
            *kappa = (1.5 * shown).clamp(KAPPA_MIN, 1.0);
            return cost;
        }
        let back: Vec<f64> = delta.iter().map(|v| -v).collect();
        shift_rows(problem, &back, buf, row_loss);
        *kappa = (2.0 * shown).max(2.0 * *kappa).min(1.0);
    }
}

/// ŷ_i += δ on every row, with the rows' losses and gradients; returns the
/// change of the loss.
fn shift_rows<O: LinearOperator>(
    problem: &Problem<'_, O>,
    delta: &[f64],
    buf: &mut PassBuffers,
    row_loss: &mut [f64],
) -> f64 {
    let c = delta.len();
    let loss = problem.loss;
    let mut change = 0.0;
    for (i, ((yi, gi), rl)) in buf
        .yhat
        .chunks_exact_mut(c)
        .zip(buf.sample_grad.chunks_exact_mut(c))
        .zip(row_loss.iter_mut())
        .enumerate()
    {
        axpy(1.0, delta, yi);
        let new = loss.value_grad(yi, problem.target(i), gi);
        change += new - *rl;
        *rl = new;
    }
    let mut change = [change];
    problem.op.sum_over_shards(&mut change);
    change[0]
}

/// Coefficients and intercept as one vector (Anderson's iterates).
fn stack(x: &[f64], bx: &[f64]) -> Vec<f64> {
    let mut v = Vec::with_capacity(x.len() + bx.len());
    v.extend_from_slice(x);
    v.extend_from_slice(bx);
    v
}

/// Scratch of one block step.
struct Scratch {
    grad: Vec<f64>,
    s: Vec<f64>,
    trial: Vec<f64>,
    delta: Vec<f64>,
    /// Diagonal metrics: the curvature at κ = 1, and the one in use.
    m: Vec<f64>,
    h: Vec<f64>,
    secular: Vec<f64>,
    /// Dense metrics: Z₀G and ΔG.
    zg: Vec<f64>,
    dg: Vec<f64>,
}

impl Scratch {
    fn new(c: usize, d: usize) -> Self {
        Scratch {
            grad: vec![0.0; c * d],
            s: vec![0.0; c * d],
            trial: vec![0.0; c * d],
            delta: vec![0.0; c * d],
            m: vec![0.0; c * d],
            h: vec![0.0; c * d],
            // c·d: the rows' rotations when they are batched.
            secular: vec![0.0; c * d],
            zg: vec![0.0; c * d],
            dg: vec![0.0; c * d],
        }
    }
}
