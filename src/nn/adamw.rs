//! AdamW over one flat parameter vector in one fused pass: the update of
//! candle_nn's `AdamW` (decoupled decay first, then the bias-corrected Adam
//! step), without a tensor per moment and per op.

use candle_core::WithDType;
use rayon::prelude::*;

use super::train::Optimizer;

/// Moments and step count.
#[derive(Clone, Debug)]
pub struct AdamW<T> {
    m: Vec<T>,
    v: Vec<T>,
    steps: i32,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Each entry's decoupled weight decay λ as an [`Optimizer`] (0 unless
    /// set by [`AdamW::with_decay`]).
    decay: Vec<f64>,
}

/// Entries per parallel work unit.
const CHUNK: usize = 1 << 14;

impl<T: WithDType> AdamW<T> {
    pub fn new(len: usize, beta1: f64, beta2: f64, eps: f64) -> Self {
        AdamW {
            m: vec![T::zero(); len],
            v: vec![T::zero(); len],
            steps: 0,
            beta1,
            beta2,
            eps,
            decay: vec![0.0; len],
        }
    }

    /// With decoupled weight decay `decay[i]` on entry i when it steps as an
    /// [`Optimizer`].
    pub fn with_decay(mut self, decay: Vec<f64>) -> crate::error::Result<Self> {
        if decay.len() != self.m.len() {
            return crate::error::invalid(format!(
                "{} weight-decay factors for {} parameters",
                decay.len(),
                self.m.len()
            ));
        }
        self.decay = decay;
        Ok(self)
    }

    /// The moments and the number of steps taken, to save a run.
    pub fn state(&self) -> (&[T], &[T], i32) {
        (&self.m, &self.v, self.steps)
    }

    /// Continues from saved moments (as f64) after `steps` steps.
    pub fn restore(&mut self, m: &[f64], v: &[f64], steps: i32) -> crate::error::Result<()> {
        if m.len() != self.m.len() || v.len() != self.v.len() || steps < 0 {
            return crate::error::invalid(format!(
                "AdamW state of {} and {} entries after {steps} steps for {} parameters",
                m.len(),
                v.len(),
                self.m.len()
            ));
        }
        for (d, &s) in self.m.iter_mut().zip(m) {
            *d = T::from_f64(s);
        }
        for (d, &s) in self.v.iter_mut().zip(v) {
            *d = T::from_f64(s);
        }
        self.steps = steps;
        Ok(())
    }

    /// One step with learning rate `lr`; `decay[i]` is entry i's weight
    /// decay λ (θ ← θ(1 − lr·λ) before the Adam update).
    pub fn step(&mut self, params: &mut [T], grads: &[T], decay: &[f64], lr: f64) {
        assert!(params.len() == self.m.len() && grads.len() == params.len());
        assert_eq!(decay.len(), params.len());
        self.steps += 1;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let scale_m = 1.0 / (1.0 - b1.powi(self.steps));
        let scale_v = 1.0 / (1.0 - b2.powi(self.steps));
        let update = |th: &mut [T], m: &mut [T], v: &mut [T], g: &[T], wd: &[f64]| {
            for i in 0..th.len() {
                let gi = g[i].to_f64();
                let mi = m[i].to_f64() * b1 + gi * (1.0 - b1);
                let vi = v[i].to_f64() * b2 + gi * gi * (1.0 - b2);
                m[i] = T::from_f64(mi);
                v[i] = T::from_f64(vi);
                let adjusted = mi * scale_m / ((vi * scale_v).sqrt() + eps);
                let t = th[i].to_f64() * (1.0 - lr * wd[i]);
                th[i] = T::from_f64(t - lr * adjusted);
            }
        };
        if params.len() <= CHUNK {
            // One chunk: on this thread (handing it to the pool costs more
            // than the update of a small model).
            return update(params, &mut self.m, &mut self.v, grads, decay);
        }
        params
            .par_chunks_mut(CHUNK)
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .zip(grads.par_chunks(CHUNK))
            .zip(decay.par_chunks(CHUNK))
            .for_each(|((((th, m), v), g), wd)| update(th, m, v, g, wd));
    }
}

impl<T: WithDType> Optimizer<T> for AdamW<T> {
    fn step(&mut self, params: &mut [T], grads: &[T], lr: f64) {
        // Taken out for the call, which borrows the moments mutably.
        let decay = std::mem::take(&mut self.decay);
        AdamW::step(self, params, grads, &decay, lr);
        self.decay = decay;
    }
    fn state(&self) -> (&[T], &[T], i32) {
        AdamW::state(self)
    }
    fn restore(&mut self, m: &[f64], v: &[f64], steps: i32) -> crate::error::Result<()> {
        AdamW::restore(self, m, v, steps)
    }
}
