//! Optimizers for the nonconvex baselines, on their flat parameters (the
//! training loop of [`crate::nn::train`]).
//!
//! - Adam: [`crate::nn::AdamW`] (candle_nn's update) with weight decay 0 on the objective *including*
//!   the penalty (coupled ℓ₂, the gradient of the very objective P that is
//!   compared with the certified optimum);
//! - AdamW: the same with decoupled weight decay λ = β/N on the
//!   penalized parameters, the loss alone going through Adam's preconditioner
//!   (the ‖o‖₁² output penalty of the ℓ₁ program is not a weight decay and
//!   stays in the loss). Its fixed points are *not* the stationary points of
//!   P, so it may plateau above the optimum: that is the standard recipe, measured;
//! - SGD with (heavy-ball) momentum, PyTorch's convention: u ← μu + g, θ ← θ − ηu;
//! - for attention rows kept in the simplex by projection, Adam and AdamW use
//!   [`RowAdam`] (one second moment per row; see there why).
//!
//! The learning-rate schedule is [`crate::nn::train::Schedule`].

use crate::error::{invalid, Result};
use crate::nn::train::Optimizer;
use crate::nn::AdamW;
use candle_core::WithDType;

/// Which optimizer trains a baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    AdamW,
    Sgd,
}

impl OptimizerKind {
    /// Parses `adam`, `adamw` or `sgd`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            "sgd" => Ok(OptimizerKind::Sgd),
            _ => invalid(format!("unknown optimizer '{s}': use adam, adamw or sgd")),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
            OptimizerKind::Sgd => "sgd",
        }
    }
}

/// SGD with heavy-ball momentum, PyTorch's convention: u ← μu + g, θ ← θ − ηu.
#[derive(Clone, Debug)]
pub struct SgdMomentum<T> {
    velocity: Vec<T>,
    momentum: f64,
    steps: i32,
}

impl<T: WithDType> SgdMomentum<T> {
    pub fn new(len: usize, momentum: f64) -> Self {
        SgdMomentum {
            velocity: vec![T::zero(); len],
            momentum,
            steps: 0,
        }
    }

    pub fn step(&mut self, params: &mut [T], grads: &[T], lr: f64) {
        let mu = if self.steps > 0 { self.momentum } else { 0.0 };
        self.steps += 1;
        for ((p, u), g) in params.iter_mut().zip(&mut self.velocity).zip(grads) {
            let ui = mu * u.to_f64() + g.to_f64();
            *u = T::from_f64(ui);
            *p = T::from_f64(p.to_f64() - lr * ui);
        }
    }
}

/// Adam with one second moment per row, for attention rows kept in the
/// simplex by projection. Per-coordinate Adam followed by a Euclidean
/// projection has fixed points that are not stationary points of the
/// objective (the step direction is rescaled coordinate by coordinate, the
/// projection is not), and on simplex attention it stalls well above the
/// optimum (measured). With one scale per row, the step is a gradient step
/// (with momentum) whose projection is exact in that row's metric, so its
/// fixed points are the KKT points of P over the simplex.
#[derive(Clone, Debug)]
pub struct RowAdam<T> {
    /// Entries per row.
    row: usize,
    m: Vec<T>,
    /// One second moment per row.
    v: Vec<f64>,
    steps: i32,
}

impl<T: WithDType> RowAdam<T> {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    /// Over `len` entries in rows of `row`.
    pub fn new(len: usize, row: usize) -> Self {
        RowAdam {
            row: row.max(1),
            m: vec![T::zero(); len],
            v: vec![0.0; len / row.max(1)],
            steps: 0,
        }
    }

    pub fn step(&mut self, params: &mut [T], grads: &[T], lr: f64) {
        self.steps += 1;
        let (c1, c2) = (
            1.0 - Self::B1.powi(self.steps),
            1.0 - Self::B2.powi(self.steps),
        );
        let rows = params
            .chunks_exact_mut(self.row)
            .zip(grads.chunks_exact(self.row))
            .zip(self.m.chunks_exact_mut(self.row))
            .zip(&mut self.v);
        for (((p, g), m), v) in rows {
            let g2 = g.iter().map(|g| g.to_f64() * g.to_f64()).sum::<f64>() / g.len() as f64;
            *v = Self::B2 * *v + (1.0 - Self::B2) * g2;
            // v·(1/c2), as the tensor version computed it: the same rounding.
            let denom = (*v * (1.0 / c2)).sqrt() + Self::EPS;
            for ((p, m), g) in p.iter_mut().zip(m).zip(g) {
                let mi = Self::B1 * m.to_f64() + (1.0 - Self::B1) * g.to_f64();
                *m = T::from_f64(mi);
                *p = T::from_f64(p.to_f64() - lr / c1 * mi / denom);
            }
        }
    }
}

/// The optimizer of one baseline run, on its flat parameters laid out as
/// [penalized | unpenalized | projected rows].
pub struct Stepper<T> {
    /// Adam (coupled) or AdamW (decoupled decay on the penalized entries) on
    /// the first `split` entries; SGD on all.
    adam: Option<AdamW<T>>,
    rows: Option<RowAdam<T>>,
    sgd: Option<SgdMomentum<T>>,
    split: usize,
}

impl<T: WithDType> Stepper<T> {
    /// `decayed` entries under the ℓ₂ penalty (only AdamW treats them apart,
    /// with decay `weight_decay`), then `plain` ones, then `projected` rows of
    /// `row` entries each, projected onto the simplex after each step (Adam
    /// and AdamW give them a [`RowAdam`], SGD treats them as the rest).
    /// candle_nn's AdamW defaults: β = (0.9, 0.999), ε = 1e-8.
    pub fn new(
        kind: OptimizerKind,
        (decayed, plain): (usize, usize),
        (projected, row): (usize, usize),
        momentum: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        let split = decayed + plain;
        let adam = |wd: f64| {
            let mut decay = vec![wd; decayed];
            decay.resize(split, 0.0);
            AdamW::new(split, 0.9, 0.999, 1e-8).with_decay(decay)
        };
        let rows = (projected > 0).then(|| RowAdam::new(projected, row));
        Ok(match kind {
            OptimizerKind::Adam => Stepper {
                adam: Some(adam(0.0)?),
                rows,
                sgd: None,
                split,
            },
            OptimizerKind::AdamW => Stepper {
                adam: Some(adam(weight_decay)?),
                rows,
                sgd: None,
                split,
            },
            OptimizerKind::Sgd => Stepper {
                adam: None,
                rows: None,
                sgd: Some(SgdMomentum::new(split + projected, momentum)),
                split,
            },
        })
    }
}

impl<T: WithDType> Optimizer<T> for Stepper<T> {
    fn step(&mut self, params: &mut [T], grads: &[T], lr: f64) {
        if let Some(sgd) = &mut self.sgd {
            sgd.step(params, grads, lr);
        }
        let (p, rest) = params.split_at_mut(self.split);
        let (g, grest) = grads.split_at(self.split);
        if let Some(adam) = &mut self.adam {
            Optimizer::step(adam, p, g, lr);
        }
        if let Some(rows) = &mut self.rows {
            rows.step(rest, grest, lr);
        }
    }

    /// Adam's moments, or SGD's velocity as the first moment. The row-wise
    /// part is not included: a baseline run is not continued mid-run
    /// (`compare --resume` trains the runs that did not finish again).
    fn state(&self) -> (&[T], &[T], i32) {
        match (&self.adam, &self.sgd) {
            (Some(a), _) => a.state(),
            (None, Some(s)) => (&s.velocity, &[], s.steps),
            (None, None) => (&[], &[], 0),
        }
    }

    fn restore(&mut self, _: &[f64], _: &[f64], _: i32) -> Result<()> {
        invalid("a baseline run starts from its initialization; it is not continued mid-run")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(OptimizerKind::parse("AdamW").unwrap(), OptimizerKind::AdamW);
        let e = OptimizerKind::parse("lbfgs").unwrap_err().to_string();
        assert!(e.contains("unknown optimizer 'lbfgs'"), "{e}");
        assert!(crate::nn::train::Decay::parse("step").is_err());
    }

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        // f(x) = ½x², gradient x; x0 = 1, η = 0.1, μ = 0.9.
        let mut opt = SgdMomentum::<f64>::new(1, 0.9);
        let mut x = [1.0f64];
        let (mut xr, mut u) = (1.0f64, 0.0f64);
        for _ in 0..5 {
            let g = [x[0]];
            opt.step(&mut x, &g, 0.1);
            u = 0.9 * u + xr;
            xr -= 0.1 * u;
        }
        assert!((x[0] - xr).abs() < 1e-14, "{} vs {xr}", x[0]);
    }

    #[test]
    fn row_adam_scales_each_row_by_one_second_moment() {
        // Two rows of two; after one step each row moves by −lr·g/rms(g)
        // (bias corrections cancel on the first step).
        let mut opt = RowAdam::<f64>::new(4, 2);
        let mut p = [0.0; 4];
        let g = [3.0, 4.0, 0.5, -0.5];
        opt.step(&mut p, &g, 0.1);
        let rms = [(12.5f64).sqrt(), 0.5];
        for (i, (&pi, &gi)) in p.iter().zip(&g).enumerate() {
            let want = -0.1 * gi / (rms[i / 2] + 1e-8);
            assert!((pi - want).abs() < 1e-12, "{i}: {pi} vs {want}");
        }
    }

    #[test]
    fn the_stepper_splits_adamw_decay_and_rows_as_laid_out() {
        // [decayed | plain | projected rows]: with a zero gradient only the
        // decayed entries move (θ(1 − lr·λ)), under SGD nothing does.
        let mut p = [1.0f64, 1.0, 1.0, 1.0, 0.5, 0.5];
        let g = [0.0; 6];
        let mut w = Stepper::<f64>::new(OptimizerKind::AdamW, (2, 2), (2, 2), 0.0, 0.5).unwrap();
        w.step(&mut p, &g, 0.1);
        assert_eq!(p, [0.95, 0.95, 1.0, 1.0, 0.5, 0.5]);
        let mut a = Stepper::<f64>::new(OptimizerKind::Adam, (2, 2), (2, 2), 0.0, 0.5).unwrap();
        a.step(&mut p, &g, 0.1);
        assert_eq!(p, [0.95, 0.95, 1.0, 1.0, 0.5, 0.5]);
        let mut s = Stepper::<f64>::new(OptimizerKind::Sgd, (2, 2), (2, 2), 0.9, 0.5).unwrap();
        s.step(&mut p, &[1.0; 6], 0.1);
        assert!(p
            .iter()
            .zip([0.95, 0.95, 1.0, 1.0, 0.5, 0.5])
            .all(|(a, b)| (a - (b - 0.1)).abs() < 1e-15));
        assert!(s.restore(&[], &[], 0).is_err());
    }
}
