//! The outer loop: certify on all candidate blocks, screen, pick a working
//! set, solve it with FISTA, repeat (as celer/skglm do for the lasso).

use super::block_cd::{block_cd, BlockCdCache};
use super::certificate::{certify, dual_scores, safe_radius, Certificate};
use super::fista::{fista, Budget, FistaBuffers, InnerResult};
use super::prox_newton::{gram_bytes, prox_newton, Curvature, AUTO_GRAM_BYTES, MAX_GRAM_BYTES};
use super::{Solution, SolverKind, SolverOptions, StopReason};
use crate::error::{invalid, Result};
use crate::loss::SampleLoss;
use crate::operator::LinearOperator;
use crate::penalty::BlockPenalty;
use crate::problem::Problem;
use std::time::{Duration, Instant};

/// FISTA iterations (or coordinate-descent epochs) `auto` gives a working
/// set before it builds a Gram.
const AUTO_FISTA_TRIAL: usize = 10;
const AUTO_CD_TRIAL: usize = 10;
/// Where the loss's curvature moves (logistic, cross-entropy), `auto` takes
/// prox-Newton only if one Gram costs at most this many epochs of
/// coordinate descent: wide outputs (the grokking model's 97 classes) on a
/// small working set.
const AUTO_NEWTON_EPOCHS: usize = 16;

/// The inner solver of one working set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inner {
    Fista,
    Newton,
    Cd,
    /// `auto`: a few iterations first (far less than a Gram costs: easy
    /// sets finish there), then prox-Newton if they fall short.
    FistaThenNewton,
    CdThenNewton,
}

/// `auto`'s choice, by what the operator offers and the loss. With block
/// products (token and gated programs): coordinate descent, then
/// prox-Newton once a trial of epochs falls short, where the working set's
/// Gram fits and is cheap enough to rebuild, until a Newton step crawls
/// (`newton_slow`). Without (the sequence program): FISTA, then
/// prox-Newton where Grams exist and the loss's Hessian is diagonal.
fn choose_inner<O: LinearOperator>(
    problem: &Problem<'_, O>,
    opts: &SolverOptions,
    ws_len: usize,
    newton_taken: bool,
    newton_slow: bool,
) -> Inner {
    let gram = problem.op.supports_gram();
    let blocks = problem.op.supports_block_products();
    let gram_bytes = gram_bytes(problem, ws_len, opts.solver == SolverKind::Auto);
    match opts.solver {
        SolverKind::Fista => Inner::Fista,
        SolverKind::Cd => Inner::Cd,
        SolverKind::ProxNewton if gram && gram_bytes <= MAX_GRAM_BYTES => Inner::Newton,
        SolverKind::ProxNewton => Inner::Fista,
        SolverKind::Auto => {
            let fits = gram && gram_bytes <= AUTO_GRAM_BYTES;
            if blocks {
                // An epoch of coordinate descent costs an adjoint and an
                // update per block, about 2·N·m·c work; a Newton step
                // builds a Gram, N·m², once for the squared loss and at
                // every step elsewhere.
                let (c, d) = problem.op.penalty_shape();
                let m = ws_len * d + 1;
                let cheap = problem.loss.constant_curvature()
                    || (m <= 2 * c * AUTO_NEWTON_EPOCHS && !newton_slow);
                match (fits && cheap, newton_taken) {
                    (true, true) => Inner::Newton,
                    (true, false) => Inner::CdThenNewton,
                    (false, _) => Inner::Cd,
                }
            } else if fits && problem.loss.hessian_diagonal() {
                if newton_taken {
                    Inner::Newton
                } else {
                    Inner::FistaThenNewton
                }
            } else {
                Inner::Fista
            }
        }
    }
}

/// Solves `problem` to relative gap `opts.tol` from an optional warm start
/// (coefficients on all blocks, intercept).
pub fn solve<O: LinearOperator>(
    problem: &Problem<'_, O>,
    opts: &SolverOptions,
    warm: Option<(&[f64], &[f64])>,
) -> Result<Solution> {
    opts.validate()?;
    if opts.solver == SolverKind::ProxNewton && !problem.op.supports_gram() {
        return invalid(
            "the prox-newton solver needs working-set Gram matrices, which this program's operator does not give: use --solver auto or fista",
        );
    }
    if opts.solver == SolverKind::Cd && !problem.op.supports_block_products() {
        return invalid(
            "the cd solver needs per-block products, which this program's operator does not give: use --solver auto or fista",
        );
    }
    let start = Instant::now();
    let c = problem.op.n_outputs();
    let cd = problem.block_len();
    let nb = problem.op.n_blocks();
    let loss = problem.loss;
    let grad_fn = |i: usize, yh: &[f64], g: &mut [f64]| loss.value_grad(yh, problem.target(i), g);

    let (mut coef, mut b) = match warm {
        Some((z, b0)) => {
            if z.len() != nb * cd || b0.len() != c {
                return invalid(format!(
                    "warm start has {} coefficients and {} intercepts, the problem needs {} and {c}",
                    z.len(),
                    b0.len(),
                    nb * cd
                ));
            }
            let b0 = if problem.intercept {
                b0.to_vec()
            } else {
                vec![0.0; c]
            };
            (z.to_vec(), b0)
        }
        None => (vec![0.0; nb * cd], problem.intercept_at_zero()),
    };

    let mut buf = problem.op.buffers(nb);
    let mut fb = FistaBuffers::new(nb, cd, c);
    let mut budget = Budget {
        iterations_left: opts.max_iter,
        deadline: (opts.max_seconds.is_finite())
            .then(|| start + Duration::from_secs_f64(opts.max_seconds)),
        interrupt: opts.interrupt.clone(),
        shards: problem.op.communicator(),
    };
    let mut candidates: Vec<usize> = (0..nb).collect();
    let mut dual_norms = Vec::with_capacity(nb);
    let mut scratch = vec![0.0; cd];
    let mut packed = Vec::with_capacity(nb * cd);
    let mut support: Vec<usize> = Vec::with_capacity(nb);
    let mut prev_ws: Vec<usize> = Vec::new();
    let mut prev_lipschitz: Option<f64> = None;
    let mut gram_cache = None;
    let mut cd_cache = BlockCdCache::default();
    let mut newton_taken = false;
    let mut newton_slow = false;
    let mut iterations = 0;
    let mut passes = 0.0;
    let mut screened_at_end = 0;
    let stop;
    let mut certificate;
    // The primal value at the current point when `buf` holds the inner
    // solver's last pass there, its adjoint on every candidate: the
    // certificate takes that pass.
    let mut checked_primal: Option<f64> = None;

    loop {
        // Certificate on all candidate blocks.
        support.clear();
        packed.clear();
        for &blk in &candidates {
            let z = &coef[blk * cd..(blk + 1) * cd];
            if z.iter().any(|&v| v != 0.0) {
                support.push(blk);
                packed.extend_from_slice(z);
            }
        }
        let (primal, max) = match checked_primal.take() {
            Some(primal) => {
                let max = dual_scores(problem, &candidates, &buf, &mut scratch, &mut dual_norms);
                (primal, max)
            }
            None => {
                let lv =
                    problem
                        .op
                        .fused_pass(&support, &packed, &b, &candidates, grad_fn, &mut buf);
                passes += problem.op.pass_fraction(&candidates);
                let max = dual_scores(problem, &candidates, &buf, &mut scratch, &mut dual_norms);
                (lv + problem.penalty_value(&coef), max)
            }
        };
        let (cert, alpha): (Certificate, f64) = certify(problem, &buf, primal, max);
        certificate = cert;

        if cert.relative_gap <= opts.tol {
            if candidates.len() == nb {
                stop = StopReason::Converged;
                break;
            }
            // Certify once more on every block, so the reported gap does not
            // rest on the screening being right.
            screened_at_end = nb - candidates.len();
            candidates = (0..nb).collect();
            continue;
        }
        if let Some(s) = budget.exhausted() {
            stop = s;
            break;
        }

        // Gap-safe screening: blocks whose correlation provably stays below β.
        let unscreened = candidates.len();
        if opts.screening {
            let r = safe_radius(problem, cert.gap) * problem.penalty.dual_lipschitz();
            let norms = problem.op.block_norms();
            let mut keep = 0;
            for j in 0..candidates.len() {
                let blk = candidates[j];
                if alpha * dual_norms[j] + r * norms[blk] < problem.beta {
                    coef[blk * cd..(blk + 1) * cd]
                        .iter_mut()
                        .for_each(|v| *v = 0.0);
                } else {
                    candidates[keep] = blk;
                    dual_norms[keep] = dual_norms[j];
                    keep += 1;
                }
            }
            candidates.truncate(keep);
            dual_norms.truncate(keep);
        }

        // Working set: the support and the blocks closest to their constraint.
        let ws = if opts.working_sets {
            let mut size = opts.ws_start.max(2 * support.len()).max(prev_ws.len());
            let mut ws = pick_working_set(problem, &candidates, &dual_norms, alpha, &coef, size);
            // The same set again: grow it, unless the dual constraint is
            // tightest inside it, when only the inner accuracy was short.
            if ws == prev_ws
                && ws.len() < candidates.len()
                && !tightest_inside(&candidates, &dual_norms, &ws)
            {
                size = 2 * prev_ws.len().max(1);
                ws = pick_working_set(problem, &candidates, &dual_norms, alpha, &coef, size);
            }
            ws
        } else {
            candidates.clone()
        };

        // Inner solve, warm-started from the current point.
        let mut x: Vec<f64> = ws
            .iter()
            .flat_map(|&blk| coef[blk * cd..(blk + 1) * cd].iter().copied())
            .collect();
        let inner = choose_inner(problem, opts, ws.len(), newton_taken, newton_slow);
        // Where screening changed nothing, `buf` holds the pass at the
        // current point: FISTA's first step takes it. (Coordinate descent's
        // first certificate could too, one pass less per round, but on the
        // grokking model at 0.158·β_max its solve then took 4× the seconds
        // in as many passes, with `auto`'s trial handing over to
        // prox-Newton; not traced further.)
        let pass_at_start = matches!(inner, Inner::Fista | Inner::FistaThenNewton)
            && candidates.len() == unscreened;
        if pass_at_start {
            keep_adjoint_blocks(&mut buf.block_grad, &candidates, &ws, cd);
        }
        // A Newton inner solve gains accuracy cheaply: ask it for more, so
        // fewer outer rounds (each a full pass) are needed. So does
        // coordinate descent, whose epochs adapt to each block. A working
        // set of every candidate leaves an outer round nothing to add but a
        // pass and a restart (Anderson's history lost): ask it for the final
        // accuracy too.
        let whole = ws.len() == candidates.len();
        let inner_tol = if inner != Inner::Fista && (whole || cert.relative_gap < 1e3 * opts.tol) {
            0.5 * opts.tol
        } else {
            (if inner != Inner::Fista { 0.05 } else { 0.3 } * cert.relative_gap).max(0.5 * opts.tol)
        };
        let trial_cap = match inner {
            Inner::FistaThenNewton => AUTO_FISTA_TRIAL,
            Inner::CdThenNewton => AUTO_CD_TRIAL,
            _ => usize::MAX,
        };
        let mut sub = Budget {
            iterations_left: budget.iterations_left.min(trial_cap),
            deadline: budget.deadline,
            interrupt: budget.interrupt.clone(),
            shards: budget.shards,
        };
        let given = sub.iterations_left;
        let first = match inner {
            Inner::Newton => newton_on_support(
                problem,
                &ws,
                &mut x,
                &mut b,
                inner_tol,
                &mut sub,
                &mut buf,
                &mut gram_cache,
                &mut cd_cache,
                opts.solver == SolverKind::Auto,
                &mut newton_slow,
            ),
            Inner::Cd | Inner::CdThenNewton => block_cd(
                problem,
                &ws,
                &mut x,
                &mut b,
                inner_tol,
                &mut sub,
                &mut buf,
                &mut cd_cache,
            ),
            Inner::Fista | Inner::FistaThenNewton => fista(
                problem,
                &ws,
                &mut x,
                &mut b,
                inner_tol,
                opts,
                &mut sub,
                &mut buf,
                &mut fb,
                prev_lipschitz.filter(|_| ws.iter().all(|blk| prev_ws.binary_search(blk).is_ok())),
                pass_at_start,
            ),
        };
        budget.iterations_left -= given - sub.iterations_left;
        // `auto`'s trial fell short on this set: prox-Newton takes over from
        // its point, for this set and the rest of the solve.
        let res = if matches!(inner, Inner::FistaThenNewton | Inner::CdThenNewton)
            && first.certificate.relative_gap > inner_tol
            && budget.exhausted().is_none()
        {
            newton_taken = true;
            let second = newton_on_support(
                problem,
                &ws,
                &mut x,
                &mut b,
                inner_tol,
                &mut budget,
                &mut buf,
                &mut gram_cache,
                &mut cd_cache,
                opts.solver == SolverKind::Auto,
                &mut newton_slow,
            );
            InnerResult {
                iterations: first.iterations + second.iterations,
                passes: first.passes + second.passes,
                lipschitz: first.lipschitz,
                ..second
            }
        } else {
            first
        };
        prev_lipschitz = Some(res.lipschitz).filter(|l| l.is_finite());
        iterations += res.iterations;
        passes += res.passes;

        for blk in &candidates {
            coef[blk * cd..(blk + 1) * cd]
                .iter_mut()
                .for_each(|v| *v = 0.0);
        }
        for (j, &blk) in ws.iter().enumerate() {
            coef[blk * cd..(blk + 1) * cd].copy_from_slice(&x[j * cd..(j + 1) * cd]);
        }
        // Every inner solver ends on a pass at the point it returns, its
        // adjoint on `ws`: on every candidate, with no intercept to re-fit,
        // that is the next certificate's pass.
        if ws == candidates && !problem.intercept {
            checked_primal = Some(res.certificate.primal);
        }
        // Re-fit the intercept exactly for the current Z (no data pass: ŷ is
        // in the buffers), so the centred dual point is exact.
        if problem.intercept {
            let offset: Vec<f64> = buf
                .yhat
                .iter()
                .enumerate()
                .map(|(j, v)| v - b[j % c])
                .collect();
            b = problem.best_intercept(&offset, Some(&b));
        }
        prev_ws = ws;
    }
    Ok(Solution {
        coef,
        intercept: b,
        beta: problem.beta,
        certificate,
        iterations,
        data_passes: passes,
        seconds: start.elapsed().as_secs_f64(),
        stop,
        screened: if candidates.len() < nb {
            nb - candidates.len()
        } else {
            screened_at_end
        },
    })
}

/// Prox-Newton on `ws`. Only for `auto` (`restrict`; an explicit
/// prox-newton stays prox-Newton, with per-output curvature):
/// - one Gram for all outputs ([`Curvature::Shared`]);
/// - where the operator has block products, coordinate descent on all of
///   `ws` finishes what a Newton step left: where it crawled (`slow`),
///   and, for the squared loss, where the point already had a support
///   smaller than `ws` (coordinate descent found it): the Gram is then
///   built on the support alone (it costs N·m², so half the blocks is a
///   quarter of the work), and coordinate descent admits the blocks the
///   support missed.
#[allow(clippy::too_many_arguments)]
fn newton_on_support<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws: &[usize],
    x: &mut [f64],
    b: &mut [f64],
    tol: f64,
    budget: &mut Budget,
    buf: &mut crate::operator::PassBuffers,
    gram_cache: &mut Option<(Vec<usize>, super::gram_cd::GramModel)>,
    cd_cache: &mut BlockCdCache,
    restrict: bool,
    slow: &mut bool,
) -> InnerResult {
    let (curvature, blocks) = match restrict {
        true => (Curvature::Shared, problem.op.supports_block_products()),
        false => (Curvature::PerOutput, false),
    };
    let cd = problem.block_len();
    let support: Vec<usize> = (0..ws.len())
        .filter(|&j| x[j * cd..(j + 1) * cd].iter().any(|&v| v != 0.0))
        .collect();
    // (Where the curvature moves, a Gram on all of `ws` is cheap: `auto`
    // took Newton because it is; coordinate descent would crawl after it.)
    let on_support = problem.loss.constant_curvature() && support.len() < ws.len();
    let first = if blocks && on_support && !support.is_empty() {
        let sub_ws: Vec<usize> = support.iter().map(|&j| ws[j]).collect();
        let mut sub_x: Vec<f64> = support
            .iter()
            .flat_map(|&j| x[j * cd..(j + 1) * cd].iter().copied())
            .collect();
        let first = prox_newton(
            problem, &sub_ws, &mut sub_x, b, tol, budget, buf, gram_cache, curvature, slow,
        );
        for (k, &j) in support.iter().enumerate() {
            x[j * cd..(j + 1) * cd].copy_from_slice(&sub_x[k * cd..(k + 1) * cd]);
        }
        first
    } else {
        let first = prox_newton(
            problem, ws, x, b, tol, budget, buf, gram_cache, curvature, slow,
        );
        if blocks && *slow {
            first
        } else {
            return first;
        }
    };
    let second = block_cd(problem, ws, x, b, tol, budget, buf, cd_cache);
    InnerResult {
        iterations: first.iterations + second.iterations,
        passes: first.passes + second.passes,
        ..second
    }
}

/// Moves the adjoint blocks of a pass over `adj` to the positions of `ws`,
/// a subset (both sorted): a pass over `ws` at the same point.
fn keep_adjoint_blocks(block_grad: &mut [f64], adj: &[usize], ws: &[usize], cd: usize) {
    let mut from = 0;
    for (to, blk) in ws.iter().enumerate() {
        while adj[from] != *blk {
            from += 1;
        }
        // from ≥ to: blocks not yet moved are not overwritten.
        block_grad.copy_within(from * cd..(from + 1) * cd, to * cd);
    }
}

/// Is the largest dual norm among the candidates attained on `ws` (sorted)?
fn tightest_inside(candidates: &[usize], dual_norms: &[f64], ws: &[usize]) -> bool {
    let (mut inside, mut outside) = (0.0f64, 0.0f64);
    for (&blk, &dn) in candidates.iter().zip(dual_norms) {
        if ws.binary_search(&blk).is_ok() {
            inside = inside.max(dn);
        } else {
            outside = outside.max(dn);
        }
    }
    outside < inside
}

/// The `size` candidate blocks nearest to violating the dual constraint,
/// measured by (β − α·Ω^D(X_bᵀθ)) / ‖X_b‖, plus every block in the support.
fn pick_working_set<O: LinearOperator>(
    problem: &Problem<'_, O>,
    candidates: &[usize],
    dual_norms: &[f64],
    alpha: f64,
    coef: &[f64],
    size: usize,
) -> Vec<usize> {
    let cd = problem.block_len();
    let norms = problem.op.block_norms();
    let mut scored: Vec<(f64, usize)> = candidates
        .iter()
        .zip(dual_norms)
        .filter(|(&blk, _)| norms[blk] > 0.0)
        .map(|(&blk, &dn)| {
            let in_support = coef[blk * cd..(blk + 1) * cd].iter().any(|&v| v != 0.0);
            let score = if in_support {
                f64::NEG_INFINITY
            } else {
                (problem.beta - alpha * dn) / norms[blk]
            };
            (score, blk)
        })
        .collect();
    let size = size.min(scored.len());
    if size < scored.len() {
        scored.select_nth_unstable_by(size, |a, b| a.0.total_cmp(&b.0));
        scored.truncate(size);
    }
    let mut ws: Vec<usize> = scored.into_iter().map(|(_, blk)| blk).collect();
    ws.sort_unstable();
    ws
}
