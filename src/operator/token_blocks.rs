//! One block's products for block coordinate descent on the token
//! operator: the adjoint of per-row gradients, and the update of the
//! predictions (and their rows' losses) after one block moved. Both run
//! over the operator's fixed chunks of samples, so the results do not
//! depend on the thread count.

use super::kernels::{axpy, dot};
use super::token::TokenOperator;
use super::LinearOperator;
use rayon::prelude::*;

impl TokenOperator<'_> {
    /// out = Σ_i ∇_i ⊗ x_{i,b} over the rows where block b's gate is on.
    pub(super) fn adjoint_of_block(&self, b: usize, grad: &[f64], out: &mut [f64]) {
        let (c, d) = (self.n_outputs(), self.block_dim());
        let cs = self.chunk_size;
        let n = self.n_samples();
        let sparse = self.sparse_token[b % self.data.n_tokens];
        let partials: Vec<Vec<f64>> = grad
            .par_chunks(cs * c)
            .enumerate()
            .map(|(j, g)| {
                let mut acc = vec![0.0; c * d];
                let i0 = j * cs;
                let rows = g.len() / c;
                let x = self.rows(i0, rows, b);
                for (r, (gi, xi)) in g.chunks_exact(c).zip(x.chunks_exact(d)).enumerate() {
                    if !self.gate_on(i0 + r, b) {
                        continue;
                    }
                    if sparse {
                        for (q, &v) in xi.iter().enumerate() {
                            if v != 0.0 {
                                for (l, gl) in gi.iter().enumerate() {
                                    acc[l * d + q] += gl * v;
                                }
                            }
                        }
                    } else {
                        for (gl, acc_l) in gi.iter().zip(acc.chunks_exact_mut(d)) {
                            if *gl != 0.0 {
                                axpy(*gl, xi, acc_l);
                            }
                        }
                    }
                }
                acc
            })
            .collect();
        debug_assert_eq!(partials.len(), n.div_ceil(cs));
        out.iter_mut().for_each(|v| *v = 0.0);
        for p in &partials {
            axpy(1.0, p, out);
        }
    }

    /// ŷ_i += Δ x_{i,b} where the gate is on, then the row's loss and
    /// gradient; returns Σ (new − old) row losses.
    pub(super) fn update_block<F>(
        &self,
        b: usize,
        delta: &[f64],
        yhat: &mut [f64],
        grad: &mut [f64],
        row_loss: &mut [f64],
        loss: F,
    ) -> f64
    where
        F: Fn(usize, &[f64], &mut [f64]) -> f64 + Sync,
    {
        let (c, d) = (self.n_outputs(), self.block_dim());
        let cs = self.chunk_size;
        let sparse = self.sparse_token[b % self.data.n_tokens];
        // Only the outputs whose row of Δ is nonzero change.
        let moved: Vec<usize> = (0..c)
            .filter(|&l| delta[l * d..(l + 1) * d].iter().any(|&v| v != 0.0))
            .collect();
        if moved.is_empty() {
            return 0.0;
        }
        let changes: Vec<f64> = yhat
            .par_chunks_mut(cs * c)
            .zip(grad.par_chunks_mut(cs * c))
            .zip(row_loss.par_chunks_mut(cs))
            .enumerate()
            .map(|(j, ((yh, g), rl))| {
                let i0 = j * cs;
                let rows = rl.len();
                let x = self.rows(i0, rows, b);
                let mut change = 0.0;
                for (r, xi) in x.chunks_exact(d).enumerate() {
                    let i = i0 + r;
                    if !self.gate_on(i, b) {
                        continue;
                    }
                    let yi = &mut yh[r * c..(r + 1) * c];
                    if sparse {
                        for (q, &v) in xi.iter().enumerate() {
                            if v != 0.0 {
                                for &l in &moved {
                                    yi[l] += v * delta[l * d + q];
                                }
                            }
                        }
                    } else {
                        for &l in &moved {
                            yi[l] += dot(xi, &delta[l * d..(l + 1) * d]);
                        }
                    }
                    let new = loss(i, yi, &mut g[r * c..(r + 1) * c]);
                    change += new - rl[r];
                    rl[r] = new;
                }
                change
            })
            .collect();
        changes.iter().sum()
    }
}
