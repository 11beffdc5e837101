//! The duality gap of SPEC §5 from one fused pass.
//!
//! With θ_i = −∇L_i(ŷ_i) (centred over samples when an intercept is fitted,
//! which the dual requires: Σ_i θ_i = 0), the dual point α·θ with
//! α = min(1, β / max_b Ω^D(X_bᵀθ)) is feasible and
//! D = Σ_i −L*(−αθ_i) ≤ P* ≤ P(Z).

use crate::loss::SampleLoss;
use crate::operator::PassBuffers;
use crate::penalty::BlockPenalty;
use crate::problem::Problem;

/// A checked bound on suboptimality.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
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
pub fn dual_scores(
    problem: &Problem,
    adj: &[usize],
    buf: &PassBuffers,
    scratch: &mut [f64],
    out: &mut Vec<f64>,
) -> f64 {
    let (c, d) = (problem.op.n_outputs(), problem.op.block_dim());
    let cd = c * d;
    let n = problem.op.n_samples() as f64;
    out.clear();
    let mut max = 0.0f64;
    for (j, &b) in adj.iter().enumerate() {
        let g = &buf.block_grad[j * cd..(j + 1) * cd];
        // X_bᵀθ = −Σ_i x_{i,b}∇L_i, plus the centring term (mean ∇L)·Σ_i x_{i,b}.
        for (s, &v) in scratch.iter_mut().zip(g) {
            *s = -v;
        }
        if problem.intercept {
            let sums = problem.op.block_sum(b);
            for l in 0..c {
                let m = buf.intercept_grad[l] / n;
                for q in 0..d {
                    scratch[l * d + q] += m * sums[q];
                }
            }
        }
        let v = problem.penalty.dual_norm(&scratch[..cd], c, d);
        max = max.max(v);
        out.push(v);
    }
    max
}

/// The dual objective Σ_i −L*(−αθ_i) at the pass's sample gradients.
pub fn dual_value(problem: &Problem, buf: &PassBuffers, alpha: f64) -> f64 {
    let c = problem.op.n_outputs();
    let n = problem.op.n_samples() as f64;
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
        total += problem.loss.dual_value(&theta, problem.op.data.target(i));
    }
    total
}

/// The certificate for primal value `primal` after a pass whose adjoint
/// covered the blocks of the (reduced) problem; returns it and α.
pub fn certify(
    problem: &Problem,
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
pub fn safe_radius(problem: &Problem, gap: f64) -> f64 {
    (2.0 * problem.loss.smoothness() * gap.max(0.0)).sqrt()
}
