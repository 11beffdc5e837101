//! Optimizers for the nonconvex baselines.
//!
//! - Adam: candle_nn's `AdamW` with weight decay 0 on the objective *including*
//!   the penalty (coupled ℓ₂, the gradient of the very objective P that is
//!   compared with the certified optimum);
//! - AdamW: candle_nn's `AdamW` with decoupled weight decay λ = β/N on the
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
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

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

/// SGD with heavy-ball momentum (candle_nn's SGD has none).
#[derive(Debug)]
pub struct SgdMomentum {
    vars: Vec<Var>,
    velocity: Vec<Option<Tensor>>,
    lr: f64,
    momentum: f64,
}

impl Optimizer for SgdMomentum {
    /// (learning rate, momentum).
    type Config = (f64, f64);

    fn new(vars: Vec<Var>, (lr, momentum): (f64, f64)) -> candle_core::Result<Self> {
        let vars: Vec<Var> = vars.into_iter().filter(|v| v.dtype().is_float()).collect();
        let velocity = vec![None; vars.len()];
        Ok(SgdMomentum {
            vars,
            velocity,
            lr,
            momentum,
        })
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        for (var, vel) in self.vars.iter().zip(self.velocity.iter_mut()) {
            if let Some(g) = grads.get(var) {
                let u = match vel.take() {
                    Some(u) if self.momentum > 0.0 => ((u * self.momentum)? + g)?,
                    _ => g.clone(),
                };
                var.set(&var.as_tensor().sub(&(&u * self.lr)?)?)?;
                *vel = Some(u.detach());
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr
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
#[derive(Debug)]
pub struct RowAdam {
    vars: Vec<Var>,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
    t: i32,
    lr: f64,
}

impl RowAdam {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    pub fn new(vars: Vec<Var>, lr: f64) -> Self {
        let k = vars.len();
        RowAdam {
            vars,
            m: vec![None; k],
            v: vec![None; k],
            t: 0,
            lr,
        }
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One step on every 2-D parameter (rows × entries).
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.t += 1;
        let (c1, c2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        for ((var, m), v) in self.vars.iter().zip(&mut self.m).zip(&mut self.v) {
            let Some(g) = grads.get(var) else { continue };
            let g2 = g.sqr()?.mean_keepdim(1)?;
            let nm = match m.take() {
                Some(m) => ((m * Self::B1)? + (g * (1.0 - Self::B1))?)?,
                None => (g * (1.0 - Self::B1))?,
            };
            let nv = match v.take() {
                Some(v) => ((v * Self::B2)? + (&g2 * (1.0 - Self::B2))?)?,
                None => (&g2 * (1.0 - Self::B2))?,
            };
            let denom = ((&nv * (1.0 / c2))?.sqrt()? + Self::EPS)?;
            let step = (&nm * (self.lr / c1))?.broadcast_div(&denom)?;
            var.set(&var.as_tensor().sub(&step)?)?;
            *m = Some(nm.detach());
            *v = Some(nv.detach());
        }
        Ok(())
    }
}

/// The optimizer of one run, over penalized and unpenalized parameters.
pub enum Stepper {
    /// Coupled: the penalty is in the loss.
    Adam(AdamW, Option<RowAdam>),
    /// Decoupled weight decay on `decayed`; `plain` has none.
    AdamW {
        decayed: AdamW,
        plain: AdamW,
        rows: Option<RowAdam>,
    },
    Sgd(SgdMomentum),
}

impl Stepper {
    /// Builds the optimizer; `decayed` are the parameters under the ℓ₂
    /// penalty (only AdamW treats them apart), `weight_decay` its λ;
    /// `projected` are attention rows projected onto the simplex after each
    /// step (Adam and AdamW give them a [`RowAdam`], SGD treats them as the rest).
    pub fn new(
        kind: OptimizerKind,
        decayed: Vec<Var>,
        plain: Vec<Var>,
        projected: Vec<Var>,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        let adam = |vars: Vec<Var>, wd: f64| {
            AdamW::new(
                vars,
                ParamsAdamW {
                    lr,
                    weight_decay: wd,
                    ..Default::default()
                },
            )
            .map_err(crate::Error::from)
        };
        let rows = (!projected.is_empty()).then(|| RowAdam::new(projected.clone(), lr));
        Ok(match kind {
            OptimizerKind::Adam => {
                let mut all = decayed;
                all.extend(plain);
                Stepper::Adam(adam(all, 0.0)?, rows)
            }
            OptimizerKind::AdamW => Stepper::AdamW {
                decayed: adam(decayed, weight_decay)?,
                plain: adam(plain, 0.0)?,
                rows,
            },
            OptimizerKind::Sgd => {
                let mut all = decayed;
                all.extend(plain);
                all.extend(projected);
                Stepper::Sgd(SgdMomentum::new(all, (lr, momentum))?)
            }
        })
    }

    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Stepper::Adam(o, rows) => {
                o.set_learning_rate(lr);
                rows.iter_mut().for_each(|r| r.set_learning_rate(lr));
            }
            Stepper::AdamW {
                decayed,
                plain,
                rows,
            } => {
                decayed.set_learning_rate(lr);
                plain.set_learning_rate(lr);
                rows.iter_mut().for_each(|r| r.set_learning_rate(lr));
            }
            Stepper::Sgd(o) => o.set_learning_rate(lr),
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let rows_step = |rows: &mut Option<RowAdam>| match rows {
            Some(r) => r.step(grads),
            None => Ok(()),
        };
        match self {
            Stepper::Adam(o, rows) => o.step(grads).and_then(|_| rows_step(rows)),
            Stepper::AdamW {
                decayed,
                plain,
                rows,
            } => decayed
                .step(grads)
                .and_then(|_| plain.step(grads))
                .and_then(|_| rows_step(rows)),
            Stepper::Sgd(o) => o.step(grads),
        }
        .map_err(crate::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

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
        let x = Var::from_tensor(&Tensor::new(&[1.0f64], &Device::Cpu).unwrap()).unwrap();
        let mut opt = SgdMomentum::new(vec![x.clone()], (0.1, 0.9)).unwrap();
        let (mut xr, mut u) = (1.0f64, 0.0f64);
        for _ in 0..5 {
            let loss = (x.as_tensor().sqr().unwrap() * 0.5)
                .unwrap()
                .sum_all()
                .unwrap();
            let g = loss.backward().unwrap();
            opt.step(&g).unwrap();
            u = 0.9 * u + xr;
            xr -= 0.1 * u;
        }
        let got = x.as_tensor().to_vec1::<f64>().unwrap()[0];
        assert!((got - xr).abs() < 1e-14, "{got} vs {xr}");
        assert_eq!(x.dtype(), DType::F64);
    }
}
