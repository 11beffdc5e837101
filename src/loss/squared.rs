use super::SampleLoss;

/// ½‖ŷ − y‖². Conjugate: L*(u) = ½‖u‖² + ⟨u, y⟩, so −L*(−θ) = ⟨θ, y⟩ − ½‖θ‖².
#[derive(Clone, Copy, Debug)]
pub struct Squared;

impl SampleLoss for Squared {
    #[inline]
    fn value_grad(&self, yhat: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let mut v = 0.0;
        for ((g, &p), &t) in grad.iter_mut().zip(yhat).zip(y) {
            let r = p - t;
            *g = r;
            v += r * r;
        }
        0.5 * v
    }
    #[inline]
    fn value(&self, yhat: &[f64], y: &[f64]) -> f64 {
        0.5 * yhat
            .iter()
            .zip(y)
            .map(|(p, t)| (p - t) * (p - t))
            .sum::<f64>()
    }
    #[inline]
    fn dual_value(&self, theta: &[f64], y: &[f64]) -> f64 {
        theta.iter().zip(y).map(|(t, v)| t * v - 0.5 * t * t).sum()
    }
    fn smoothness(&self) -> f64 {
        1.0
    }
    fn constant_curvature(&self) -> bool {
        true
    }
}
