use super::{log1pexp, xlogx, SampleLoss};

/// log(1 + e^{−yŷ}) for y ∈ {−1, +1}. With s = yθ ∈ [0, 1]:
/// −L*(−θ) = −s ln s − (1 − s) ln(1 − s) (binary entropy).
#[derive(Clone, Copy, Debug)]
pub struct Logistic;

impl SampleLoss for Logistic {
    #[inline]
    fn value_grad(&self, yhat: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let m = y[0] * yhat[0];
        // d/dŷ = −y σ(−yŷ)
        grad[0] = -y[0] * sigmoid(-m);
        log1pexp(-m)
    }
    #[inline]
    fn value(&self, yhat: &[f64], y: &[f64]) -> f64 {
        log1pexp(-y[0] * yhat[0])
    }
    #[inline]
    fn dual_value(&self, theta: &[f64], y: &[f64]) -> f64 {
        let s = (y[0] * theta[0]).clamp(0.0, 1.0);
        -xlogx(s) - xlogx(1.0 - s)
    }
    fn smoothness(&self) -> f64 {
        0.25
    }
    /// σ(1 − σ), exact: |∇L| = σ(−yŷ).
    #[inline]
    fn curvature(&self, _yhat: &[f64], _y: &[f64], grad: &[f64], w: &mut [f64]) {
        let s = grad[0].abs();
        w[0] = s * (1.0 - s);
    }
}

#[inline]
pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
