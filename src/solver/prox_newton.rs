//! Prox-Newton on a working set (skglm's GroupProxNewton, generalised):
//! at the current point, the loss is replaced by its second-order model
//! with one curvature weight per row, Σ_rows w_row/2 (Δŷ_row)² + ∇Lᵀ Δŷ,
//! whose Hessian on the working set is the weighted Gram of its data; the
//! model plus the penalty is minimised by Gram coordinate descent, and a
//! backtracking line search on the true objective takes the step. For the
//! squared loss the model is the objective and the step is exact.

use super::certificate::reduced_certificate;
use super::fista::{Budget, InnerResult};
use super::gram_cd::{gram_cd, GramModel};
use crate::loss::{Loss, SampleLoss};
use crate::operator::{LinearOperator, PassBuffers};
use crate::penalty::BlockPenalty;
use crate::problem::Problem;

/// Memory for working-set Grams (8·m² bytes each, m = |W|·d + intercept,
/// one per output for cross-entropy) that `auto` spends before it stays
/// first order; an explicit `prox-newton` goes to [`MAX_GRAM_BYTES`].
pub const AUTO_GRAM_BYTES: usize = 256 << 20;
pub const MAX_GRAM_BYTES: usize = 2 << 30;

/// The bytes of the Gram matrices a Newton step on `ws` builds (`shared`:
/// one for all outputs, as [`Curvature::Shared`]).
pub fn gram_bytes<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws_len: usize,
    shared: bool,
) -> usize {
    let (c, d) = problem.op.penalty_shape();
    let m = ws_len * d + usize::from(problem.intercept);
    let sets = weight_sets(problem.loss, c, shared);
    // Plus the N×m matrix the Grams are built from (on the largest shard).
    8 * m * (sets * m + problem.op.largest_shard_rows())
}

/// Coordinate-descent epochs per Newton step, at most.
const MAX_EPOCHS: usize = 2000;

/// The curvature weights of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curvature {
    /// The loss's diagonal curvature, one Gram per output where it differs
    /// between outputs (the most faithful model).
    PerOutput,
    /// One bound per row for all outputs (`SampleLoss::shared_curvature`):
    /// one Gram, c times cheaper, and a model above the loss's expansion;
    /// `auto`'s choice. It can be stiff along classes of small probability,
    /// so a step that gains less than half the gap ends the solve with
    /// `slow` set: coordinate descent does better there.
    Shared,
}

/// One weight set per output, or one for all.
fn weight_sets(loss: Loss, c: usize, shared: bool) -> usize {
    if loss.curvature_per_output() && c > 1 && !shared {
        c
    } else {
        1
    }
}

/// Solves the problem reduced to `ws` from (x, bx) to relative gap `tol`,
/// as [`super::fista::fista`] does; `cache` keeps the Gram of the squared
/// loss (whose weights never change) between calls on the same set. With
/// [`Curvature::Shared`] it may return early, having set `slow`.
#[allow(clippy::too_many_arguments)]
pub fn prox_newton<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws: &[usize],
    x: &mut [f64],
    bx: &mut [f64],
    tol: f64,
    budget: &mut Budget,
    buf: &mut PassBuffers,
    cache: &mut Option<(Vec<usize>, GramModel)>,
    curvature: Curvature,
    slow: &mut bool,
) -> InnerResult {
    let (c, d) = problem.op.penalty_shape();
    let cd = problem.block_len();
    let frac = problem.op.pass_fraction(ws);
    let loss = problem.loss;
    let grad_fn = |i: usize, yh: &[f64], g: &mut [f64]| loss.value_grad(yh, problem.target(i), g);
    let beta = problem.beta;
    let ones = problem.intercept;
    let rows = problem.op.n_rows();
    let m = ws.len() * d + usize::from(ones);
    let squared = loss == Loss::Squared;

    let mut passes = 0.0;
    let mut iterations = 0;
    // How far each model solve reduces the model's violation; tightened
    // whenever a step falls short of `tol`.
    let mut eps_scale = 0.0;
    let mut v = vec![0.0; c * m];
    let mut u = vec![0.0; c * m];
    let mut a = vec![0.0; c * m];
    // One weight per row, or per (row, output) where the loss's curvature
    // differs between outputs (then one Gram per output).
    // Shared weights change the model only where outputs' curvatures differ.
    let merged = curvature == Curvature::Shared && weight_sets(loss, c, false) > 1;
    let sets = weight_sets(loss, c, merged);
    let mut last_gap = f64::INFINITY;
    let mut weights = vec![0.0; rows * sets];
    let mut row_w = vec![0.0; c];
    loop {
        // The pass at the current point: the reduced problem's certificate,
        // the gradient on W and the rows' curvature.
        let lv = problem.op.fused_pass(ws, x, bx, ws, grad_fn, buf);
        passes += frac;
        let pen = penalty_sum(problem, x);
        let primal = lv + beta * pen;
        let certificate = reduced_certificate(problem, ws, buf, primal);
        let stopped = budget.exhausted();
        // A shared model that gains less than half the gap per step hands
        // over.
        let crawling = merged && certificate.relative_gap > 0.5 * last_gap;
        last_gap = certificate.relative_gap;
        *slow |= crawling;
        if certificate.relative_gap <= tol || stopped.is_some() || crawling {
            return InnerResult {
                iterations,
                passes,
                certificate,
                stopped,
                lipschitz: f64::NAN,
            };
        }

        // The model: Gram of W weighted by the rows' curvature.
        // The squared loss's weights never change: a Gram built for a
        // superset of W serves W.
        if squared {
            if let Some((cached_ws, model)) = cache.as_ref() {
                if cached_ws != ws && model.ones == ones {
                    let keep: Option<Vec<usize>> =
                        ws.iter().map(|b| cached_ws.binary_search(b).ok()).collect();
                    if let Some(sub) = keep.and_then(|k| model.restrict(&k)) {
                        *cache = Some((ws.to_vec(), sub));
                    }
                }
            }
        }
        let reuse = squared
            && cache
                .as_ref()
                .is_some_and(|(w, g)| w == ws && g.ones == ones);
        if !reuse {
            for i in 0..rows {
                let r = i * c..(i + 1) * c;
                let (yh, g, y) = (
                    &buf.yhat[r.clone()],
                    &buf.sample_grad[r.clone()],
                    problem.target(i),
                );
                if merged {
                    weights[i] = loss.shared_curvature(yh, y, g, &mut row_w);
                    continue;
                }
                loss.curvature(yh, y, g, &mut row_w);
                if sets == 1 {
                    weights[i] = row_w[0];
                } else {
                    weights[r].copy_from_slice(&row_w);
                }
            }
            // The squared loss grows its Gram from the last working set's.
            let extended = match cache.as_ref() {
                Some((known_ws, model)) if squared && sets == 1 && model.ones == ones => problem
                    .op
                    .extend_gram(ws, &weights, ones, known_ws, &model.grams[0])
                    .map(|g| vec![g]),
                _ => None,
            };
            let grams = match extended {
                Some(g) => g,
                None => problem
                    .op
                    .weighted_gram(ws, &weights, sets, ones)
                    .expect("the solver checked that the operator has Gram matrices"),
            };
            passes += frac;
            match GramModel::new(grams, ws.len(), d, c, ones) {
                Some(model) => *cache = Some((ws.to_vec(), model)),
                None => {
                    // Non-finite data: nothing a Newton step can do.
                    return InnerResult {
                        iterations,
                        passes,
                        certificate,
                        stopped: None,
                        lipschitz: f64::NAN,
                    };
                }
            }
        }
        let model = &cache.as_ref().expect("set above").1;

        // v0 from (x, bx), u0 = G v0, a = ∇ − G v0.
        to_model(x, bx, ws.len(), c, d, m, ones, &mut v);
        let v0 = v.clone();
        model.apply(&v, &mut u);
        for l in 0..c {
            for j in 0..ws.len() {
                for q in 0..d {
                    let k = l * m + j * d + q;
                    a[k] = buf.block_grad[j * cd + l * d + q] - u[k];
                }
            }
            if ones {
                a[l * m + m - 1] = buf.intercept_grad[l] - u[l * m + m - 1];
            }
        }
        if eps_scale == 0.0 {
            // Squared loss: the model is exact, so ask for the gap's
            // reduction; otherwise a Newton step needs a moderate accuracy.
            eps_scale = if squared {
                (tol / certificate.relative_gap).clamp(1e-8, 1e-2)
            } else {
                1e-3
            };
        }
        let start_violation = model.violation(
            problem.penalty,
            beta,
            &a,
            &v,
            &u,
            &mut super::gram_cd::Work::new(c, d, 0),
        );
        let out = gram_cd(
            model,
            problem.penalty,
            beta,
            &a,
            &mut v,
            &mut u,
            eps_scale * start_violation,
            MAX_EPOCHS.min(budget.iterations_left.max(1)),
            budget,
        );
        iterations += out.epochs.max(1);
        budget.iterations_left = budget.iterations_left.saturating_sub(out.epochs.max(1));
        eps_scale = (eps_scale * 0.1).max(1e-8);

        if squared {
            from_model(&v, ws.len(), c, d, m, ones, x, bx);
            continue;
        }
        // Line search along Δ = v − v0 on the true objective: ŷ is linear
        // in the coefficients, so one forward pass of Δ serves every trial.
        let yhat0 = buf.yhat.clone();
        let mut dx = vec![0.0; x.len()];
        let mut db = vec![0.0; c];
        let delta: Vec<f64> = v.iter().zip(&v0).map(|(a, b)| a - b).collect();
        from_model(&delta, ws.len(), c, d, m, ones, &mut dx, &mut db);
        let slope: f64 = buf.block_grad[..x.len()]
            .iter()
            .zip(&dx)
            .map(|(g, v)| g * v)
            .sum::<f64>()
            + buf
                .intercept_grad
                .iter()
                .zip(&db)
                .map(|(g, v)| g * v)
                .sum::<f64>();
        problem.op.fused_pass(
            ws,
            &dx,
            &db,
            &[],
            |_, _, g| {
                g.iter_mut().for_each(|v| *v = 0.0);
                0.0
            },
            buf,
        );
        passes += frac;
        let dyhat = std::mem::take(&mut buf.yhat);
        let mut trial_x: Vec<f64> = x.iter().zip(&dx).map(|(a, b)| a + b).collect();
        // Armijo for composite objectives: the decrease the model predicts,
        // ∇ᵀΔ + β(Ω(x + Δ) − Ω(x)).
        let decrease = slope + beta * (penalty_sum(problem, &trial_x) - pen);
        let mut t = 1.0;
        let mut accepted = false;
        let mut row = vec![0.0; c];
        for _ in 0..30 {
            for ((tx, x0), dv) in trial_x.iter_mut().zip(x.iter()).zip(&dx) {
                *tx = x0 + t * dv;
            }
            let f = objective_along(problem, &yhat0, &dyhat, t, &trial_x, &mut row);
            if f <= primal + 1e-4 * t * decrease.min(0.0) {
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        buf.yhat = dyhat;
        if !accepted {
            // No decrease along the Newton direction: the model is as good
            // as the data's rounding allows; leave the point as it is.
            let lv = problem.op.fused_pass(ws, x, bx, ws, grad_fn, buf);
            passes += frac;
            let certificate = reduced_certificate(problem, ws, buf, lv + beta * pen);
            return InnerResult {
                iterations,
                passes,
                certificate,
                stopped: None,
                lipschitz: f64::NAN,
            };
        }
        x.copy_from_slice(&trial_x);
        for (b, d) in bx.iter_mut().zip(&db) {
            *b += t * d;
        }
    }
}

/// The objective at predictions ŷ₀ + t·Δŷ and coefficients `x` (on the
/// blocks of a working set): the rows' losses, summed over shards, plus
/// β·Ω(x). A line search's trial: no data pass. `row` holds c values.
pub(super) fn objective_along<O: LinearOperator>(
    problem: &Problem<'_, O>,
    yhat0: &[f64],
    dyhat: &[f64],
    t: f64,
    x: &[f64],
    row: &mut [f64],
) -> f64 {
    let c = row.len();
    let f_pen = problem.beta * penalty_sum(problem, x);
    let mut f_loss = 0.0;
    for i in 0..problem.op.n_rows() {
        for l in 0..c {
            row[l] = yhat0[i * c + l] + t * dyhat[i * c + l];
        }
        f_loss += problem.loss.value(row, problem.target(i));
    }
    let mut f_loss = [f_loss];
    problem.op.sum_over_shards(&mut f_loss);
    f_loss[0] + f_pen
}

/// Σ_b Ω(x_b) over positional blocks.
pub(super) fn penalty_sum<O: LinearOperator>(problem: &Problem<'_, O>, x: &[f64]) -> f64 {
    let (c, d) = problem.op.penalty_shape();
    x.chunks_exact(problem.block_len())
        .map(|z| problem.penalty.value(z, c, d))
        .sum()
}

/// Positional blocks (c rows of d each) and intercept → model vectors
/// (one per output: the blocks' rows, then the intercept).
#[allow(clippy::too_many_arguments)]
fn to_model(
    x: &[f64],
    bx: &[f64],
    nb: usize,
    c: usize,
    d: usize,
    m: usize,
    ones: bool,
    v: &mut [f64],
) {
    for l in 0..c {
        for j in 0..nb {
            v[l * m + j * d..l * m + (j + 1) * d]
                .copy_from_slice(&x[(j * c + l) * d..(j * c + l + 1) * d]);
        }
        if ones {
            v[l * m + m - 1] = bx[l];
        }
    }
}

/// The inverse of [`to_model`].
#[allow(clippy::too_many_arguments)]
fn from_model(
    v: &[f64],
    nb: usize,
    c: usize,
    d: usize,
    m: usize,
    ones: bool,
    x: &mut [f64],
    bx: &mut [f64],
) {
    for l in 0..c {
        for j in 0..nb {
            x[(j * c + l) * d..(j * c + l + 1) * d]
                .copy_from_slice(&v[l * m + j * d..l * m + (j + 1) * d]);
        }
        if ones {
            bx[l] = v[l * m + m - 1];
        }
    }
}
