use super::{xlogx, SampleLoss};

/// Softmax cross-entropy log Σ_l e^{ŷ_l} − ⟨y, ŷ⟩ for a probability row y
/// (one-hot for class labels). Gradient p − y with p = softmax(ŷ). With
/// q = y − θ ∈ Δ_c: −L*(−θ) = −Σ_l q_l ln q_l (entropy of q).
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropy;

impl SampleLoss for CrossEntropy {
    #[inline]
    fn value_grad(&self, yhat: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let m = yhat.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut z = 0.0;
        for (g, &v) in grad.iter_mut().zip(yhat) {
            *g = (v - m).exp();
            z += *g;
        }
        let mut dot = 0.0;
        for ((g, &t), &v) in grad.iter_mut().zip(y).zip(yhat) {
            *g = *g / z - t;
            dot += t * v;
        }
        m + z.ln() - dot
    }
    #[inline]
    fn value(&self, yhat: &[f64], y: &[f64]) -> f64 {
        let m = yhat.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = yhat.iter().map(|v| (v - m).exp()).sum();
        m + z.ln() - yhat.iter().zip(y).map(|(v, t)| v * t).sum::<f64>()
    }
    #[inline]
    fn dual_value(&self, theta: &[f64], y: &[f64]) -> f64 {
        -theta
            .iter()
            .zip(y)
            .map(|(t, v)| xlogx((v - t).max(0.0)))
            .sum::<f64>()
    }
    fn smoothness(&self) -> f64 {
        // Böhning's bound: the softmax Hessian diag(p) − ppᵀ ⪯ ½ I.
        0.5
    }
    /// The diagonal of the softmax Hessian, p_l(1 − p_l), with p = ∇L + y.
    #[inline]
    fn curvature(&self, _yhat: &[f64], y: &[f64], grad: &[f64], w: &mut [f64]) {
        for ((w, g), t) in w.iter_mut().zip(grad).zip(y) {
            let p = (g + t).clamp(0.0, 1.0);
            *w = p * (1.0 - p);
        }
    }
    /// A bound on the largest eigenvalue of the softmax Hessian
    /// diag(p) − ppᵀ: min(max_l p_l, 2 max_l p_l(1 − p_l)) (it is ⪯ diag(p);
    /// and Gershgorin). Within 2× of that eigenvalue near uniform and near
    /// one-hot p alike; but as stiff along every class, so classes of small
    /// p learn slowly under it (the per-output diagonal does not).
    #[inline]
    fn shared_curvature(&self, _yhat: &[f64], y: &[f64], grad: &[f64], _w: &mut [f64]) -> f64 {
        let (mut top, mut spread) = (0.0f64, 0.0f64);
        for (g, t) in grad.iter().zip(y) {
            let p = (g + t).clamp(0.0, 1.0);
            top = top.max(p);
            spread = spread.max(p * (1.0 - p));
        }
        top.min(2.0 * spread)
    }
    fn curvature_per_output(&self) -> bool {
        true
    }
    fn hessian_diagonal(&self) -> bool {
        false
    }
}
