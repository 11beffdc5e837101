//! The duality gap of SPEC §5 from one fused pass.
//!
//! With θ_i = −∇L_i(ŷ_i) (centred over samples when an intercept is fitted,
//! which the dual requires: Σ_i θ_i = 0), the dual point α·θ with
//! α = min(1, β / max_b Ω^D(X_bᵀθ)) is feasible and
//! D = Σ_i −L*(−αθ_i) ≤ P* ≤ P(Z).

use crate::loss::SampleLoss;
use crate::operator::{LinearOperator, PassBuffers};
use crate::penalty::BlockPenalty;
use crate::problem::Problem;

/// A checked bound on suboptimality.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Certificate {
    pub primal: f64,
    pub dual: f64,
    pub gap: f64,
    /// gap / max(1, |primal|).
    pub relative_gap: f64,
}

impl Certificate {
    pub fn new(primal: f64, dual: f64) -> Self {
        let gap = primal - dual;
        Certificate {
            primal,
            dual,
            gap,
            relative_gap: gap / primal.abs().max(1.0),
        }
    }
}

/// Dual norms of the correlations X_bᵀθ for the blocks a pass adjoined.
pub struct DualScores {
    /// Ω^D(X_bᵀθ) per adjoint block, positional.
    pub dual_norms: Vec<f64>,
    /// The largest of them.
    pub max: f64,
}

/// Ω^D(X_bᵀθ) for each block of `adj` after `buf` holds a pass over them.
/// `scratch` holds c·d values.
pub fn dual_scores<O: LinearOperator>(
    problem: &Problem<'_, O>,
    adj: &[usize],
    buf: &PassBuffers,
    scratch: &mut [f64],
    out: &mut Vec<f64>,
) -> f64 {
    let (pc, pd) = problem.op.penalty_shape();
    let cd = problem.block_len();
    let n = problem.op.total_rows() as f64;
    // The centring term exists only with an intercept: no allocation otherwise.
    let mean: Vec<f64> = if problem.intercept {
        buf.intercept_grad.iter().map(|g| g / n).collect()
    } else {
        Vec::new()
    };
    out.clear();
    let mut max = 0.0f64;
    for (j, &b) in adj.iter().enumerate() {
        let g = &buf.block_grad[j * cd..(j + 1) * cd];
        // 𝒜_bᵀθ = −𝒜_bᵀ∇L, plus the centring term 𝒜_bᵀ(1 ⊗ mean ∇L).
        for (s, &v) in scratch.iter_mut().zip(g) {
            *s = -v;
        }
        if problem.intercept {
            problem
                .op
                .add_constant_adjoint(b, &mean, &mut scratch[..cd]);
        }
        let v = problem.penalty.dual_norm(&scratch[..cd], pc, pd);
        max = max.max(v);
        out.push(v);
    }
    max
}

/// The dual objective Σ_i −L*(−αθ_i) at the pass's sample gradients.
pub fn dual_value<O: LinearOperator>(
    problem: &Problem<'_, O>,
    buf: &PassBuffers,
    alpha: f64,
) -> f64 {
    let c = problem.op.n_outputs();
    let n = problem.op.total_rows() as f64;
    let mean: Vec<f64> = if problem.intercept {
        buf.intercept_grad.iter().map(|g| g / n).collect()
    } else {
        vec![0.0; c]
    };
    let mut theta = vec![0.0; c];
    let mut total = 0.0;
    for (i, g) in buf.sample_grad.chunks_exact(c).enumerate() {
        for l in 0..c {
            theta[l] = alpha * (mean[l] - g[l]);
        }
        total += problem.loss.dual_value(&theta, problem.target(i));
    }
    let mut total = [total];
    problem.op.sum_over_shards(&mut total);
    total[0]
}

/// The certificate for primal value `primal` after a pass whose adjoint
/// covered the blocks of the (reduced) problem; returns it and α.
pub fn certify<O: LinearOperator>(
    problem: &Problem<'_, O>,
    buf: &PassBuffers,
    primal: f64,
    max_dual_norm: f64,
) -> (Certificate, f64) {
    let alpha = if max_dual_norm > problem.beta {
        problem.beta / max_dual_norm
    } else {
        1.0
    };
    let dual = dual_value(problem, buf, alpha);
    (Certificate::new(primal, dual), alpha)
}

/// Gap-safe sphere radius: the dual is (1/γ)-strongly concave, so
/// ‖θ* − θ‖ ≤ √(2γ·gap).
pub fn safe_radius<O: LinearOperator>(problem: &Problem<'_, O>, gap: f64) -> f64 {
    (2.0 * problem.loss.smoothness() * gap.max(0.0)).sqrt()
}

/// The certificate of the point (coefficients on all blocks, intercept),
/// checked on every block: one full pass.
pub fn certificate_at<O: LinearOperator>(
    problem: &Problem<'_, O>,
    coef: &[f64],
    intercept: &[f64],
) -> Certificate {
    let bl = problem.block_len();
    let nb = problem.op.n_blocks();
    let all: Vec<usize> = (0..nb).collect();
    let (support, packed) = crate::operator::pack_support(coef, bl);
    let mut buf = problem.op.buffers(nb);
    let loss = problem.loss;
    let lv = problem.op.fused_pass(
        &support,
        &packed,
        intercept,
        &all,
        |i, yh, g| loss.value_grad(yh, problem.target(i), g),
        &mut buf,
    );
    let mut scratch = vec![0.0; bl];
    let mut norms = Vec::with_capacity(nb);
    let max = dual_scores(problem, &all, &buf, &mut scratch, &mut norms);
    certify(problem, &buf, lv + problem.penalty_value(coef), max).0
}

/// The certificate of the problem reduced to the blocks `ws`, from a pass in
/// `buf` whose adjoint covered them and the primal value there.
pub fn reduced_certificate<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws: &[usize],
    buf: &PassBuffers,
    primal: f64,
) -> Certificate {
    let mut scratch = vec![0.0; problem.block_len()];
    let mut norms = Vec::with_capacity(ws.len());
    let max = dual_scores(problem, ws, buf, &mut scratch, &mut norms);
    certify(problem, buf, primal, max).0
}
