//! Per-sample losses L(ŷ, y), convex in ŷ ∈ R^c, with what the solver needs:
//! value and gradient, the dual value −L*(−θ) for the duality gap, the
//! smoothness constant (Lipschitz constant of ∇L) and the optimal constant
//! prediction (for an intercept and for β_max).

mod cross_entropy;
mod huber;
mod logistic;
mod squared;

pub use cross_entropy::CrossEntropy;
pub use huber::Huber;
pub use logistic::Logistic;
pub use squared::Squared;

use crate::data::{Dataset, Targets};
use crate::error::{invalid, Result};

/// What a per-sample loss provides.
pub trait SampleLoss {
    /// L(ŷ, y); writes ∇_ŷ L into `grad`.
    fn value_grad(&self, yhat: &[f64], y: &[f64], grad: &mut [f64]) -> f64;
    /// L(ŷ, y) alone.
    fn value(&self, yhat: &[f64], y: &[f64]) -> f64;
    /// −L*(−θ; y): the sample's term of the Fenchel dual objective. Only called
    /// with θ = α·(−∇L(ŷ)) for α ∈ [0, 1] (and centred, for an intercept), where
    /// it is finite.
    fn dual_value(&self, theta: &[f64], y: &[f64]) -> f64;
    /// γ with ∇L γ-Lipschitz: the dual is (1/γ)-strongly concave.
    fn smoothness(&self) -> f64;
    /// The curvature weights of a prox-Newton model at ŷ (`grad` = ∇L(ŷ)):
    /// a diagonal approximation w (c values, ≥ 0) of ∇²L(ŷ). Exact for the
    /// squared and logistic losses; the diagonal of the softmax Hessian for
    /// cross-entropy (a line search covers the rest). By default the
    /// global bound γ on every output.
    fn curvature(&self, _yhat: &[f64], _y: &[f64], _grad: &[f64], w: &mut [f64]) {
        w.iter_mut().for_each(|v| *v = self.smoothness());
    }
    /// One weight for all outputs of a row that bounds ∇²L(ŷ) from above,
    /// for a prox-Newton model with one Gram: by default the largest of
    /// [`Self::curvature`]'s (exact for a diagonal Hessian), with `w` (c
    /// values) as scratch.
    fn shared_curvature(&self, yhat: &[f64], y: &[f64], grad: &[f64], w: &mut [f64]) -> f64 {
        self.curvature(yhat, y, grad, w);
        w.iter().copied().fold(0.0, f64::max)
    }
    /// Whether the curvature weights can differ between the outputs of a
    /// row (then a model needs one Gram per output).
    fn curvature_per_output(&self) -> bool {
        false
    }
    /// Whether ∇²L is the same everywhere (a quadratic loss): a Gram built
    /// for prox-Newton then never needs rebuilding.
    fn constant_curvature(&self) -> bool {
        false
    }
    /// Whether ∇²L is diagonal across outputs, so that the weights of
    /// `curvature` are the whole Hessian (false for softmax cross-entropy).
    fn hessian_diagonal(&self) -> bool {
        true
    }
}

/// The losses by name; dispatch costs one branch per sample.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// ½‖ŷ − y‖², any number of outputs.
    Squared,
    /// log(1 + e^{−yŷ}), one output, y ∈ {−1, +1}.
    Logistic,
    /// Softmax cross-entropy, c ≥ 2 outputs, y a one-hot (or probability) row.
    CrossEntropy,
    /// Huber with threshold δ, any number of outputs, per coordinate.
    Huber(f64),
}

macro_rules! dispatch {
    ($self:expr, $l:ident => $e:expr) => {
        match *$self {
            Loss::Squared => {
                let $l = Squared;
                $e
            }
            Loss::Logistic => {
                let $l = Logistic;
                $e
            }
            Loss::CrossEntropy => {
                let $l = CrossEntropy;
                $e
            }
            Loss::Huber(delta) => {
                let $l = Huber { delta };
                $e
            }
        }
    };
}

impl SampleLoss for Loss {
    #[inline]
    fn value_grad(&self, yhat: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        dispatch!(self, l => l.value_grad(yhat, y, grad))
    }
    #[inline]
    fn value(&self, yhat: &[f64], y: &[f64]) -> f64 {
        dispatch!(self, l => l.value(yhat, y))
    }
    #[inline]
    fn dual_value(&self, theta: &[f64], y: &[f64]) -> f64 {
        dispatch!(self, l => l.dual_value(theta, y))
    }
    fn smoothness(&self) -> f64 {
        dispatch!(self, l => l.smoothness())
    }
    #[inline]
    fn curvature(&self, yhat: &[f64], y: &[f64], grad: &[f64], w: &mut [f64]) {
        dispatch!(self, l => l.curvature(yhat, y, grad, w))
    }
    #[inline]
    fn shared_curvature(&self, yhat: &[f64], y: &[f64], grad: &[f64], w: &mut [f64]) -> f64 {
        dispatch!(self, l => l.shared_curvature(yhat, y, grad, w))
    }
    fn curvature_per_output(&self) -> bool {
        dispatch!(self, l => l.curvature_per_output())
    }
    fn hessian_diagonal(&self) -> bool {
        dispatch!(self, l => l.hessian_diagonal())
    }
    fn constant_curvature(&self) -> bool {
        dispatch!(self, l => l.constant_curvature())
    }
}

impl Loss {
    /// ∇²L(ŷ)·u at the point whose gradient is `grad`, exactly: the
    /// curvature weights where the Hessian is diagonal, diag(p) − ppᵀ with
    /// p = ∇L + y for cross-entropy.
    pub fn hessian_times(&self, yhat: &[f64], y: &[f64], grad: &[f64], u: &[f64], out: &mut [f64]) {
        match self {
            Loss::CrossEntropy => {
                let pu: f64 = grad
                    .iter()
                    .zip(y)
                    .zip(u)
                    .map(|((g, t), v)| (g + t) * v)
                    .sum();
                for (((o, g), t), v) in out.iter_mut().zip(grad).zip(y).zip(u) {
                    *o = (g + t) * (v - pu);
                }
            }
            _ => {
                self.curvature(yhat, y, grad, out);
                for (o, v) in out.iter_mut().zip(u) {
                    *o *= v;
                }
            }
        }
    }

    /// Parses `squared`, `logistic`, `cross-entropy`, `huber` or `huber:DELTA`.
    pub fn parse(s: &str) -> Result<Loss> {
        match s {
            "squared" => Ok(Loss::Squared),
            "logistic" => Ok(Loss::Logistic),
            "cross-entropy" | "ce" => Ok(Loss::CrossEntropy),
            "huber" => Ok(Loss::Huber(1.0)),
            _ => match s.strip_prefix("huber:").map(str::parse::<f64>) {
                Some(Ok(d)) if d > 0.0 && d.is_finite() => Ok(Loss::Huber(d)),
                Some(_) => invalid(format!(
                    "huber threshold in '{s}' must be a positive number"
                )),
                None => invalid(format!(
                    "unknown loss '{s}': use squared, logistic, cross-entropy or huber[:DELTA]"
                )),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            Loss::Squared => "squared".into(),
            Loss::Logistic => "logistic".into(),
            Loss::CrossEntropy => "cross-entropy".into(),
            Loss::Huber(d) => format!("huber:{d}"),
        }
    }

    /// Checks that the targets suit this loss, one row per sample or per
    /// position (the messages say which).
    pub fn check_targets(&self, ds: &Dataset) -> Result<()> {
        let per_position = ds.targets == Targets::PerPosition;
        let c = ds.n_outputs;
        match self {
            Loss::Squared | Loss::Huber(_) => Ok(()),
            Loss::Logistic => {
                if c != 1 {
                    return invalid(if per_position {
                        format!("logistic loss needs one output per position with y in {{-1, +1}}, the data has {c}: use cross-entropy for classes")
                    } else {
                        format!("logistic loss needs one output with y in {{-1, +1}}, the data has {c} outputs: use cross-entropy for classes")
                    });
                }
                match ds.y.iter().position(|&v| v != 1.0 && v != -1.0) {
                    Some(p) => {
                        let sep = if per_position { ";" } else { "," };
                        invalid(format!(
                            "logistic loss needs y in {{-1, +1}}{sep} y[{}] = {}: recode the labels",
                            ds.row_name(p),
                            ds.y[p]
                        ))
                    }
                    None => Ok(()),
                }
            }
            Loss::CrossEntropy => {
                if c < 2 {
                    return invalid(if per_position {
                        "cross-entropy needs class labels per position (integer y of shape N×n) \
                         or a probability row per position with at least 2 classes"
                    } else {
                        "cross-entropy needs class labels (integer y) or a probability row per sample with at least 2 classes"
                    });
                }
                for row in 0..ds.n_rows() {
                    let t = ds.target(row);
                    let s: f64 = t.iter().sum();
                    if t.iter().any(|&v| v < 0.0) || (s - 1.0).abs() > 1e-9 {
                        let which = if per_position {
                            format!("y[{}]", ds.row_name(row))
                        } else {
                            format!("row {row}")
                        };
                        return invalid(format!(
                            "cross-entropy targets must be class labels or probability rows; {which} sums to {s}"
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Is this loss for classification (error reported as misclassification rate)?
    pub fn is_classification(&self) -> bool {
        matches!(self, Loss::Logistic | Loss::CrossEntropy)
    }

    /// The optimal constant prediction b* = argmin_b Σ_i L(b, y_i) (the
    /// intercept at Z = 0), found by Newton/bisection-free closed forms where
    /// they exist and by damped Newton otherwise.
    pub fn best_constant(&self, ds: &Dataset) -> Vec<f64> {
        let offsets = vec![0.0; ds.n_samples * ds.n_outputs];
        self.best_intercept(&offsets, ds, None)
    }

    /// argmin_b Σ_i L(offset_i + b, y_i): the intercept for fixed predictions
    /// `offset` (N×c). Gradient-norm-controlled Newton on the diagonal
    /// Hessian, started at `start`.
    pub fn best_intercept(&self, offset: &[f64], ds: &Dataset, start: Option<&[f64]>) -> Vec<f64> {
        self.best_intercept_rows(offset, &ds.y, ds.n_outputs, start)
    }

    /// [`Loss::best_intercept`] for targets `y` given as rows of c values.
    pub fn best_intercept_rows(
        &self,
        offset: &[f64],
        y: &[f64],
        c: usize,
        start: Option<&[f64]>,
    ) -> Vec<f64> {
        self.best_intercept_summed(offset, y, c, start, &|_| {})
    }

    /// [`Loss::best_intercept_rows`] where the rows are one shard of the
    /// data: `sum` adds a vector of sums over these rows across the shards.
    pub fn best_intercept_summed(
        &self,
        offset: &[f64],
        y: &[f64],
        c: usize,
        start: Option<&[f64]>,
        sum: &dyn Fn(&mut [f64]),
    ) -> Vec<f64> {
        let rows = y.len() / c.max(1);
        let target = |i: usize| &y[i * c..(i + 1) * c];
        let mut total = [rows as f64];
        sum(&mut total);
        let n = total[0];
        let mut b = start.map(|s| s.to_vec()).unwrap_or_else(|| vec![0.0; c]);
        if matches!(self, Loss::Squared) {
            for (l, bl) in b.iter_mut().enumerate() {
                *bl = (0..rows)
                    .map(|i| y[i * c + l] - offset[i * c + l])
                    .sum::<f64>();
            }
            sum(&mut b);
            b.iter_mut().for_each(|bl| *bl /= n);
            return b;
        }
        let mut yhat = vec![0.0; c];
        let mut g = vec![0.0; c];
        let mut plus = vec![0.0; c];
        for _ in 0..100 {
            // Gradient, and a diagonal curvature estimate by finite differences of the gradient.
            // [gradient, curvature, value], summed over all shards at once.
            let mut sums = vec![0.0; 2 * c + 1];
            for i in 0..rows {
                for l in 0..c {
                    yhat[l] = offset[i * c + l] + b[l];
                }
                sums[2 * c] += self.value_grad(&yhat, target(i), &mut g);
                for l in 0..c {
                    sums[l] += g[l];
                }
                for l in 0..c {
                    yhat[l] += 1e-5;
                    self.value_grad(&yhat, target(i), &mut plus);
                    yhat[l] -= 1e-5;
                    sums[c + l] += ((plus[l] - g[l]) / 1e-5).max(0.0);
                }
            }
            sum(&mut sums);
            let (grad, curv, val) = (&sums[..c], &sums[c..2 * c], sums[2 * c]);
            let gnorm = grad.iter().map(|v| v * v).sum::<f64>().sqrt();
            if gnorm <= 1e-13 * n.max(1.0) {
                break;
            }
            // Newton step with backtracking on the total loss.
            let step: Vec<f64> = (0..c)
                .map(|l| -grad[l] / (curv[l] + 1e-12 * n).max(1e-300))
                .collect();
            let mut t = 1.0;
            loop {
                let trial: Vec<f64> = (0..c).map(|l| b[l] + t * step[l]).collect();
                let mut tv = [(0..rows)
                    .map(|i| {
                        let yh: Vec<f64> = (0..c).map(|l| offset[i * c + l] + trial[l]).collect();
                        self.value(&yh, target(i))
                    })
                    .sum::<f64>()];
                sum(&mut tv);
                let tv = tv[0];
                if tv <= val || t < 1e-10 {
                    if tv <= val {
                        b = trial;
                    }
                    break;
                }
                t *= 0.5;
            }
            if t < 1e-10 {
                break;
            }
        }
        b
    }
}

/// Numerically stable log(1 + e^x).
#[inline]
pub(crate) fn log1pexp(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// s·ln s with 0·ln 0 = 0.
#[inline]
pub(crate) fn xlogx(s: f64) -> f64 {
    if s <= 0.0 {
        0.0
    } else {
        s * s.ln()
    }
}

#[cfg(test)]
mod tests;
