//! One block's products for block coordinate descent on the token
//! operator: the adjoint of per-row gradients, and the update of the
//! predictions (and their rows' losses) after one block moved. Both run
//! over the operator's fixed chunks of samples, so the results do not
//! depend on the thread count.

use super::kernels::{axpy, dot};
use super::token::TokenOperator;
use super::{LinearOperator, RowWeights};
use rayon::prelude::*;

/// Outputs from which a dense, ungated block's products are one matrix
/// product per chunk of samples (the teacher's 384) instead of a loop over
/// rows and outputs.
const OUTPUTS_BY_PRODUCTS: usize = 8;

impl TokenOperator<'_> {
    /// out = Σ_i ∇_i ⊗ x_{i,b} over the rows where block b's gate is on;
    /// with `curvature` = (w, diag) also diag[l·d+q] = Σ_i w_il·x_{i,b,q}²,
    /// w_i written by w(i, ∇_i, w_i), in the same read of the block.
    pub(super) fn adjoint_of_block(
        &self,
        b: usize,
        grad: &[f64],
        out: &mut [f64],
        curvature: Option<(&RowWeights<'_>, &mut [f64])>,
    ) {
        let (c, d) = (self.n_outputs(), self.block_dim());
        let cs = self.chunk_size;
        let n = self.n_samples();
        let sparse = self.sparse_rows(b);
        let weights = curvature.as_ref().map(|(w, _)| *w);
        let by_products = self.dense_ungated(b) && c >= OUTPUTS_BY_PRODUCTS && weights.is_none();
        let partials: Vec<(Vec<f64>, Vec<f64>)> = grad
            .par_chunks(cs * c)
            .enumerate()
            .map(|(j, g)| {
                let mut acc = vec![0.0; c * d];
                let mut acc2 = vec![0.0; if weights.is_some() { c * d } else { 0 }];
                let mut wi = vec![0.0; if weights.is_some() { c } else { 0 }];
                let i0 = j * cs;
                let rows = g.len() / c;
                let x = self.rows(i0, rows, b);
                if by_products {
                    self.add_adjoint(i0, b, g, &mut acc);
                    return (acc, acc2);
                }
                for (r, (gi, xi)) in g.chunks_exact(c).zip(x.chunks_exact(d)).enumerate() {
                    if !self.gate_on(i0 + r, b) {
                        continue;
                    }
                    if let Some(w) = weights {
                        w(i0 + r, gi, &mut wi);
                    }
                    if let Some(sp) = sparse {
                        for (q, v) in sp.row(i0 + r) {
                            for (l, gl) in gi.iter().enumerate() {
                                acc[l * d + q] += gl * v;
                            }
                            for (l, wl) in wi.iter().enumerate() {
                                acc2[l * d + q] += wl * v * v;
                            }
                        }
                    } else {
                        for (gl, acc_l) in gi.iter().zip(acc.chunks_exact_mut(d)) {
                            if *gl != 0.0 {
                                axpy(*gl, xi, acc_l);
                            }
                        }
                        for (wl, acc_l) in wi.iter().zip(acc2.chunks_exact_mut(d)) {
                            for (a, v) in acc_l.iter_mut().zip(xi) {
                                *a += wl * v * v;
                            }
                        }
                    }
                }
                (acc, acc2)
            })
            .collect();
        debug_assert_eq!(partials.len(), n.div_ceil(cs));
        out.iter_mut().for_each(|v| *v = 0.0);
        for (p, _) in &partials {
            axpy(1.0, p, out);
        }
        if let Some((_, diag)) = curvature {
            diag.iter_mut().for_each(|v| *v = 0.0);
            for (_, p) in &partials {
                axpy(1.0, p, diag);
            }
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
        let sparse = self.sparse_rows(b);
        // Only the outputs whose row of Δ is nonzero change.
        let moved: Vec<usize> = (0..c)
            .filter(|&l| delta[l * d..(l + 1) * d].iter().any(|&v| v != 0.0))
            .collect();
        if moved.is_empty() {
            return 0.0;
        }
        // A product over all outputs pays for the unmoved ones' zero rows:
        // worth it once half of them moved.
        let by_products = self.dense_ungated(b) && c >= OUTPUTS_BY_PRODUCTS && 2 * moved.len() >= c;
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
                if by_products {
                    // The unmoved outputs' zero rows of Δ included.
                    self.add_predictions(i0, b, delta, yh);
                }
                for (r, xi) in x.chunks_exact(d).enumerate() {
                    let i = i0 + r;
                    if !self.gate_on(i, b) {
                        continue;
                    }
                    let yi = &mut yh[r * c..(r + 1) * c];
                    match sparse {
                        _ if by_products => {} // ŷ moved above
                        Some(sp) => {
                            for (q, v) in sp.row(i) {
                                for &l in &moved {
                                    yi[l] += v * delta[l * d + q];
                                }
                            }
                        }
                        None => {
                            for &l in &moved {
                                yi[l] += dot(xi, &delta[l * d..(l + 1) * d]);
                            }
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
