use super::SampleLoss;

/// Huber loss per coordinate: ½r² for |r| ≤ δ, δ(|r| − δ/2) beyond, r = ŷ − y.
/// Conjugate: L*(u) = ½u² + uy on |u| ≤ δ, so −L*(−θ) = θy − ½θ² for |θ| ≤ δ.
#[derive(Clone, Copy, Debug)]
pub struct Huber {
    pub delta: f64,
}

impl SampleLoss for Huber {
    #[inline]
    fn value_grad(&self, yhat: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let d = self.delta;
        let mut v = 0.0;
        for ((g, &p), &t) in grad.iter_mut().zip(yhat).zip(y) {
            let r = p - t;
            if r.abs() <= d {
                *g = r;
                v += 0.5 * r * r;
            } else {
                *g = d * r.signum();
                v += d * (r.abs() - 0.5 * d);
            }
        }
        v
    }
    #[inline]
    fn value(&self, yhat: &[f64], y: &[f64]) -> f64 {
        let d = self.delta;
        yhat.iter()
            .zip(y)
            .map(|(p, t)| {
                let r = (p - t).abs();
                if r <= d {
                    0.5 * r * r
                } else {
                    d * (r - 0.5 * d)
                }
            })
            .sum()
    }
    #[inline]
    fn dual_value(&self, theta: &[f64], y: &[f64]) -> f64 {
        // θ stays in [−δ, δ] along the solver's dual points; clamp guards rounding.
        theta
            .iter()
            .zip(y)
            .map(|(&t, &v)| {
                let t = t.clamp(-self.delta, self.delta);
                t * v - 0.5 * t * t
            })
            .sum()
    }
    fn smoothness(&self) -> f64 {
        1.0
    }
    /// The generalised Hessian: 1 where the residual is in the quadratic
    /// zone, 0 where it is linear (a semismooth Newton model; the line
    /// search covers the kinks).
    #[inline]
    fn curvature(&self, yhat: &[f64], y: &[f64], _grad: &[f64], w: &mut [f64]) {
        for ((w, p), t) in w.iter_mut().zip(yhat).zip(y) {
            *w = if (p - t).abs() <= self.delta {
                1.0
            } else {
                0.0
            };
        }
    }
    fn curvature_per_output(&self) -> bool {
        true
    }
}
