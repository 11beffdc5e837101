//! A baseline model as the training loop of [`crate::nn::train`] sees it:
//! its parameters in one flat vector laid out [penalized | unpenalized |
//! projected rows] (the layout of [`super::optim::Stepper`]), the minibatch
//! objective's gradient by candle's autograd.

use std::ops::Range;

use candle_core::{DType, Device, Tensor, Var, WithDType};

use super::{project_simplex, Objective, Trainable};
use crate::error::Result;
use crate::nn::train::Network;

pub(super) struct Flat<'m, T> {
    pub model: &'m dyn Trainable,
    vars: Vec<Var>,
    layout: Vec<(String, usize, usize)>,
    /// Entries of the penalized parameters (first in the layout).
    decayed: usize,
    /// Entries of the projected parameters, and their row length.
    projected: Vec<(Range<usize>, usize)>,
    params: Vec<T>,
    grad: Vec<T>,
    x: Tensor,
    y: Tensor,
    /// Full-batch steps read `x` and `y` as they are (no reordering copy).
    full: bool,
    obj: Objective,
    decoupled: bool,
    /// The variables hold `params` (false after an update until the next pass).
    synced: bool,
}

impl<'m, T: WithDType> Flat<'m, T> {
    /// The `model`'s variables `(decayed, plain, projected)` in that order.
    pub fn new(
        model: &'m dyn Trainable,
        (decayed, plain, projected): (Vec<Var>, Vec<Var>, Vec<Var>),
        (x, y): (Tensor, Tensor),
        full: bool,
        obj: Objective,
        decoupled: bool,
    ) -> Result<Self> {
        let n_projected = projected.len();
        let n_decayed = decayed.iter().map(|v| v.elem_count()).sum();
        let groups = [
            ("decayed", decayed),
            ("plain", plain),
            ("projected", projected),
        ];
        let (mut vars, mut layout, mut params) = (Vec::new(), Vec::new(), Vec::new());
        for (group, vs) in groups {
            for (k, v) in vs.into_iter().enumerate() {
                layout.push((format!("{group}.{k}"), params.len(), v.elem_count()));
                params.extend(v.as_tensor().flatten_all()?.to_vec1::<T>()?);
                vars.push(v);
            }
        }
        let projected = vars[vars.len() - n_projected..]
            .iter()
            .zip(&layout[layout.len() - n_projected..])
            .map(|(v, (_, off, len))| (*off..off + len, v.dims().last().copied().unwrap_or(1)))
            .collect();
        Ok(Flat {
            model,
            grad: vec![T::zero(); params.len()],
            vars,
            layout,
            decayed: n_decayed,
            projected,
            params,
            x,
            y,
            full,
            obj,
            decoupled,
            synced: true,
        })
    }

    /// Entries penalized, unpenalized, and (projected, their rows' length).
    pub fn split(&self) -> (usize, usize, (usize, usize)) {
        let projected: usize = self.projected.iter().map(|(r, _)| r.len()).sum();
        let row = self.projected.first().map_or(1, |(_, row)| *row);
        let plain = self.params.len() - projected - self.decayed;
        (self.decayed, plain, (projected, row))
    }

    /// Writes the flat parameters into the model's variables.
    pub fn sync(&mut self) -> Result<()> {
        if !self.synced {
            for (v, (_, off, len)) in self.vars.iter().zip(&self.layout) {
                v.set(&Tensor::from_slice(
                    &self.params[*off..off + len],
                    v.shape(),
                    &Device::Cpu,
                )?)?;
            }
            self.synced = true;
        }
        Ok(())
    }
}

impl<T: WithDType> Network<T> for Flat<'_, T> {
    fn layout(&self) -> Vec<(String, usize, usize)> {
        self.layout.clone()
    }

    fn loss_and_grad(&mut self, batch: &[u32]) -> Result<f64> {
        self.sync()?;
        let n_samples = self.x.dim(0)?;
        let (xb, yb, nb) = if self.full {
            (self.x.clone(), self.y.clone(), n_samples)
        } else {
            let t = Tensor::from_slice(batch, batch.len(), &Device::Cpu)?;
            (
                self.x.index_select(&t, 0)?,
                self.y.index_select(&t, 0)?,
                batch.len(),
            )
        };
        let (lw, pw) = (1.0 / nb as f64, 1.0 / n_samples as f64);
        let value = self
            .model
            .weighted_objective(&xb, &yb, &self.obj, lw, pw, self.decoupled)?;
        let v = value.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !v.is_finite() {
            return Ok(v);
        }
        let grads = value.backward()?;
        for (var, (_, off, len)) in self.vars.iter().zip(&self.layout) {
            let g = &mut self.grad[*off..off + len];
            match grads.get(var) {
                Some(t) => g.copy_from_slice(&t.flatten_all()?.to_vec1::<T>()?),
                None => g.fill(T::zero()),
            }
        }
        Ok(v)
    }

    fn params_and_grad(&mut self) -> (&mut [T], &[T]) {
        self.synced = false;
        (&mut self.params, &self.grad)
    }

    /// Each projected row back onto the simplex.
    fn after_step(&mut self, _lr: f64) {
        let mut row64 = Vec::new();
        for (range, row) in &self.projected {
            for r in self.params[range.clone()].chunks_exact_mut(*row) {
                row64.clear();
                row64.extend(r.iter().map(|v| v.to_f64()));
                project_simplex(&mut row64);
                for (v, &p) in r.iter_mut().zip(&row64) {
                    *v = T::from_f64(p);
                }
            }
        }
        self.synced = false;
    }
}
