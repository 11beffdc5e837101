//! FISTA with gradient-based adaptive restart (O'Donoghue & Candès 2015) on
//! the blocks of a working set W, all other blocks held at zero. One fused
//! pass per iteration; every `check_every` iterations one more pass at the
//! current iterate gives the reduced problem's duality gap.

use super::certificate::{certify, dual_scores, Certificate};
use super::lipschitz::max_eigenvalue;
use super::{Interrupt, SolverOptions, StopReason};
use crate::loss::SampleLoss;
use crate::operator::{LinearOperator, PassBuffers};
use crate::penalty::BlockPenalty;
use crate::problem::Problem;
use std::time::Instant;

/// What is left of the iteration and time budget, and the flag that stops
/// the solve from outside.
pub struct Budget<'a> {
    pub iterations_left: usize,
    pub deadline: Option<Instant>,
    pub interrupt: Option<Interrupt>,
    /// The shards of a data-parallel solve: they stop together, as soon as
    /// any shard's clock or signal says so.
    pub shards: Option<&'a dyn crate::comm::Communicator>,
}

impl Budget<'_> {
    pub fn exhausted(&self) -> Option<StopReason> {
        if self.iterations_left == 0 {
            Some(StopReason::MaxIter)
        } else {
            self.out_of_time()
        }
    }
    /// The deadline has passed or an interrupt was requested.
    pub fn out_of_time(&self) -> Option<StopReason> {
        let interrupted = self.interrupt.as_ref().is_some_and(Interrupt::requested);
        let late = self.deadline.is_some_and(|d| Instant::now() >= d);
        let (interrupted, late) = match self.shards {
            // Without a clock or a flag nothing can differ between shards.
            Some(comm) if self.deadline.is_some() || self.interrupt.is_some() => {
                let mut v = [f64::from(u8::from(interrupted)), f64::from(u8::from(late))];
                comm.sum(&mut v);
                (v[0] > 0.0, v[1] > 0.0)
            }
            _ => (interrupted, late),
        };
        if interrupted {
            Some(StopReason::Interrupted)
        } else if late {
            Some(StopReason::MaxSeconds)
        } else {
            None
        }
    }
}

/// Buffers of the inner solver, sized for the largest working set.
pub struct FistaBuffers {
    x_old: Vec<f64>,
    y: Vec<f64>,
    bx_old: Vec<f64>,
    by: Vec<f64>,
    scratch: Vec<f64>,
    /// The dual norms of the working set's blocks at the last check.
    pub(super) dual_norms: Vec<f64>,
}

impl FistaBuffers {
    /// For `max_blocks` blocks of `block_len` coefficients and c outputs.
    pub fn new(max_blocks: usize, block_len: usize, c: usize) -> Self {
        FistaBuffers {
            x_old: vec![0.0; max_blocks * block_len],
            y: vec![0.0; max_blocks * block_len],
            bx_old: vec![0.0; c],
            by: vec![0.0; c],
            scratch: vec![0.0; block_len],
            dual_norms: Vec::with_capacity(max_blocks),
        }
    }
}

/// Outcome of one inner solve.
pub struct InnerResult {
    pub iterations: usize,
    pub passes: f64,
    /// Certificate of the problem reduced to W: the primal at the returned
    /// point; the dual that point's (coordinate descent: the best of the
    /// dual points the solve computed, each feasible on W).
    pub certificate: Certificate,
    /// Set when the budget ran out.
    pub stopped: Option<StopReason>,
    /// The Lipschitz constant used at the end (valid for any subset of W).
    pub lipschitz: f64,
}

/// Solves the problem reduced to `ws` from the warm start (`x`, `bx`) until
/// its relative gap is at most `tol`. On return `buf` holds the pass at the
/// returned point (ŷ in `buf.yhat`). `lipschitz_hint`, when given, is a
/// Lipschitz constant valid for W (one from a superset of W is: by Cauchy
/// interlacing λ_max of a principal submatrix of XᵀX is no larger), and
/// saves the power iteration. `start_pass` says that `buf` already holds
/// the pass at the warm start with its adjoint on `ws`: the first step
/// reuses it.
#[allow(clippy::too_many_arguments)]
pub fn fista<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws: &[usize],
    x: &mut [f64],
    bx: &mut [f64],
    tol: f64,
    opts: &SolverOptions,
    budget: &mut Budget,
    buf: &mut PassBuffers,
    fb: &mut FistaBuffers,
    lipschitz_hint: Option<f64>,
    start_pass: bool,
) -> InnerResult {
    let (c, d) = problem.op.penalty_shape();
    let cd = problem.block_len();
    let len = ws.len() * cd;
    let frac = problem.op.pass_fraction(ws);
    let loss = problem.loss;
    let grad_fn = |i: usize, yh: &[f64], g: &mut [f64]| loss.value_grad(yh, problem.target(i), g);
    let beta = problem.beta;
    let intercept = problem.intercept;

    // Step size 1/L, L = γ·λ_max with a 10% margin for the power-iteration
    // estimate (which approaches λ_max from below); the objective check
    // below enlarges L if that was not enough. A small working set takes
    // the operator's own bound on it where that reads no data (tighter than
    // a superset's hint), a large one the bound on all blocks.
    let large = 2 * ws.len() >= problem.op.n_blocks();
    let scaled = |l: Option<f64>| {
        l.filter(|_| !problem.intercept)
            .map(|l| problem.loss.smoothness() * l.max(1e-300))
    };
    let on_ws = scaled(problem.op.lipschitz_bound_on(ws).filter(|_| !large));
    let global = scaled(problem.op.lipschitz_bound().filter(|_| large));
    let (mut lipschitz, mut passes) = match on_ws.or(lipschitz_hint).or(global) {
        Some(l) => (l, 0.0),
        None => {
            let v = &mut fb.y[..len];
            let (lam, lip_passes) = max_eigenvalue(problem, ws, v, &mut fb.by, buf, 20);
            (
                1.1 * problem.loss.smoothness() * lam.max(1e-300),
                lip_passes as f64 * frac,
            )
        }
    };

    let y = &mut fb.y[..len];
    let x_old = &mut fb.x_old[..len];
    y.copy_from_slice(x);
    fb.by.copy_from_slice(bx);
    x_old.copy_from_slice(x);
    fb.bx_old.copy_from_slice(bx);
    let mut t = 1.0f64;
    let mut iterations = 0;
    let mut last_primal = f64::INFINITY;
    // Whether `buf` holds the pass at y (at the start, and after a check
    // that reset y to x).
    let mut pass_at_y = start_pass;

    let check = |x: &[f64],
                 bx: &[f64],
                 buf: &mut PassBuffers,
                 fb_scratch: &mut [f64],
                 norms: &mut Vec<f64>| {
        let lv = problem.op.fused_pass(ws, x, bx, ws, grad_fn, buf);
        let pen: f64 = x
            .chunks_exact(cd)
            .map(|z| problem.penalty.value(z, c, d))
            .sum();
        let max = dual_scores(problem, ws, buf, fb_scratch, norms);
        certify(problem, buf, lv + beta * pen, max).0
    };

    loop {
        if let Some(stop) = budget.exhausted() {
            let certificate = check(x, bx, buf, &mut fb.scratch, &mut fb.dual_norms);
            return InnerResult {
                iterations,
                passes: passes + frac,
                certificate,
                stopped: Some(stop),
                lipschitz,
            };
        }
        // Gradient step from y and prox.
        if !std::mem::take(&mut pass_at_y) {
            problem.op.fused_pass(ws, y, &fb.by, ws, grad_fn, buf);
            passes += frac;
        }
        let step = 1.0 / lipschitz;
        x_old.copy_from_slice(x);
        fb.bx_old.copy_from_slice(bx);
        for ((xb, yb), gb) in x
            .chunks_exact_mut(cd)
            .zip(y.chunks_exact(cd))
            .zip(buf.block_grad[..len].chunks_exact(cd))
        {
            for ((xv, yv), gv) in xb.iter_mut().zip(yb).zip(gb) {
                *xv = yv - step * gv;
            }
            problem.penalty.prox(xb, c, d, step * beta);
        }
        if intercept {
            for ((b, yv), g) in bx.iter_mut().zip(&fb.by).zip(&buf.intercept_grad) {
                *b = yv - step * g;
            }
        }
        iterations += 1;
        budget.iterations_left -= 1;

        // Restart when the momentum points uphill: ⟨y − x, x − x_old⟩ > 0.
        let mut uphill = 0.0;
        for ((yv, xv), ov) in y.iter().zip(x.iter()).zip(x_old.iter()) {
            uphill += (yv - xv) * (xv - ov);
        }
        for ((yv, xv), ov) in fb.by.iter().zip(bx.iter()).zip(fb.bx_old.iter()) {
            uphill += (yv - xv) * (xv - ov);
        }
        if uphill > 0.0 {
            t = 1.0;
        }
        let t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let mom = (t - 1.0) / t_new;
        t = t_new;
        for ((yv, xv), ov) in y.iter_mut().zip(x.iter()).zip(x_old.iter()) {
            *yv = xv + mom * (xv - ov);
        }
        for ((yv, xv), ov) in fb.by.iter_mut().zip(bx.iter()).zip(fb.bx_old.iter()) {
            *yv = xv + mom * (xv - ov);
        }

        if iterations % opts.check_every == 0 {
            let certificate = check(x, bx, buf, &mut fb.scratch, &mut fb.dual_norms);
            passes += frac;
            if certificate.relative_gap <= tol {
                return InnerResult {
                    iterations,
                    passes,
                    certificate,
                    stopped: None,
                    lipschitz,
                };
            }
            // The power-iteration estimate was too low if the objective
            // rose: enlarge L and restart the momentum.
            if certificate.primal > last_primal * (1.0 + 1e-12) + 1e-300 {
                lipschitz *= 1.5;
                t = 1.0;
                y.copy_from_slice(x);
                fb.by.copy_from_slice(bx);
                pass_at_y = true;
            }
            last_primal = certificate.primal.min(last_primal);
        }
    }
}
