//! The linear map of the sequence program and its adjoint, as two matrix
//! products.
//!
//! Flatten sample i to x_i = vec X_i ∈ R^{n·d} (index k·d + q, the storage
//! order of the data) and F(X_i) to f_i ∈ R^{n·c} (index r·c + l, the order
//! of the targets). F is linear in X_i: f_i = B x_i with the (n·c)×(n·d)
//! matrix B[(r, l), (k, q)] = C_{ql}[r, k], and B holds every coefficient
//! exactly once. Over all samples, with X̄ the N×(n·d) data matrix:
//!
//! - forward: F̄ = X̄ Bᵀ (N×(n·c)), one pass over the data;
//! - adjoint: for Θ̄ (N×(n·c)), Bᵀ-shaped gradient G = Θ̄ᵀ X̄ ((n·c)×(n·d)),
//!   whose (q, l) matrix is G_{ql}[r, k] = Σ_i Θ_i[r, l] X_i[k, q], one pass.
//!
//! Both are dense matrix products (faer); the coefficients live in the
//! matrix-major layout of [`matrix_index`] elsewhere and are converted here.
//!
//! For the generic solver ([`LinearOperator`]) a block is one (q, l) pair of
//! the split form: C⁺_{ql} then C⁻_{ql} (2n² values), mapped to 𝒜(C⁺ − C⁻);
//! rows are (sample, position) pairs with c outputs each.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::SequenceDataset;
use crate::operator::{LinearOperator, PassBuffers};

/// Rows per chunk of the loss evaluation, and at most this many chunks, so
/// sums are taken in an order that depends on the data size only.
const MIN_CHUNK: usize = 256;
const MAX_CHUNKS: usize = 32;

/// Index of C_{ql}[r, k] in the matrix-major layout (d·c matrices n×n,
/// matrix (q, l) at (q·c + l)·n², row-major): the layout of
/// [`super::SequenceSolution::coef`].
#[inline]
pub fn matrix_index(q: usize, l: usize, r: usize, k: usize, n: usize, c: usize) -> usize {
    ((q * c + l) * n + r) * n + k
}

/// Index of C_{ql}[r, k] in the product layout B[(r, l), (k, q)].
#[inline]
fn product_index(q: usize, l: usize, r: usize, k: usize, n: usize, d: usize, c: usize) -> usize {
    (r * c + l) * (n * d) + k * d + q
}

/// The operator on one data set.
pub struct SequenceOperator<'a> {
    pub data: &'a SequenceDataset,
    par: Par,
    /// √2·‖X_q‖_F for block (q, l): a bound on ‖[𝒜_{ql}, −𝒜_{ql}]‖, where
    /// 𝒜_{ql} = I_n ⊗ X_q and X_q[i, k] = X_i[k, q].
    block_norms: Vec<f64>,
}

impl<'a> SequenceOperator<'a> {
    pub fn new(data: &'a SequenceDataset) -> Self {
        let (n_s, n, d, c) = data.shape();
        // Multithreading pays off above a few million multiply-adds.
        let flops = (n_s as f64) * (n * d) as f64 * (n * c) as f64;
        let par = if flops > 4e6 { Par::rayon(0) } else { Par::Seq };
        let mut fro = vec![0.0; d];
        for row in data.x.chunks_exact(d) {
            for (f, v) in fro.iter_mut().zip(row) {
                *f += v * v;
            }
        }
        let block_norms = fro
            .iter()
            .flat_map(|f| std::iter::repeat((2.0 * f).sqrt()).take(c))
            .collect();
        SequenceOperator {
            data,
            par,
            block_norms,
        }
    }

    /// Product-layout size, n·c × n·d.
    fn product_len(&self) -> usize {
        self.n_coef()
    }

    /// Number of coefficients, d·c·n².
    pub fn n_coef(&self) -> usize {
        let (_, n, d, c) = self.data.shape();
        d * c * n * n
    }

    /// Writes B (product layout) from matrix-major coefficients `coef`.
    pub fn to_product(&self, coef: &[f64], b: &mut [f64]) {
        self.to_product_with(|j| coef[j], b);
    }

    /// Writes B (product layout) with the coefficient of matrix-major index
    /// j equal to `value(j)`.
    pub fn to_product_with(&self, value: impl Fn(usize) -> f64, b: &mut [f64]) {
        let (_, n, d, c) = self.data.shape();
        for q in 0..d {
            for l in 0..c {
                for r in 0..n {
                    for k in 0..n {
                        b[product_index(q, l, r, k, n, d, c)] =
                            value(matrix_index(q, l, r, k, n, c));
                    }
                }
            }
        }
    }

    /// Writes matrix-major coefficients from B in product layout.
    pub fn from_product(&self, b: &[f64], coef: &mut [f64]) {
        let (_, n, d, c) = self.data.shape();
        for q in 0..d {
            for l in 0..c {
                let m = &mut coef[(q * c + l) * n * n..(q * c + l + 1) * n * n];
                for r in 0..n {
                    for k in 0..n {
                        m[r * n + k] = b[product_index(q, l, r, k, n, d, c)];
                    }
                }
            }
        }
    }

    /// Predictions F̄ = X̄ Bᵀ (N×n×c, sample-major) of B in product layout.
    pub fn forward(&self, b: &[f64], out: &mut [f64]) {
        let (n_s, n, d, c) = self.data.shape();
        let x = MatRef::from_row_major_slice(&self.data.x, n_s, n * d);
        let bt = MatRef::from_row_major_slice(b, n * c, n * d).transpose();
        let dst = MatMut::from_row_major_slice_mut(out, n_s, n * c);
        matmul(dst, Accum::Replace, x, bt, 1.0, self.par);
    }

    /// G = Θ̄ᵀ X̄ in product layout for Θ̄ (N×n×c, sample-major).
    pub fn adjoint(&self, theta: &[f64], out: &mut [f64]) {
        let (n_s, n, d, c) = self.data.shape();
        let x = MatRef::from_row_major_slice(&self.data.x, n_s, n * d);
        let tt = MatRef::from_row_major_slice(theta, n_s, n * c).transpose();
        let dst = MatMut::from_row_major_slice_mut(out, n * c, n * d);
        matmul(dst, Accum::Replace, tt, x, 1.0, self.par);
    }
}

impl LinearOperator for SequenceOperator<'_> {
    fn n_blocks(&self) -> usize {
        self.data.n_features * self.data.n_outputs
    }
    fn block_len(&self) -> usize {
        2 * self.data.n_tokens * self.data.n_tokens
    }
    fn n_rows(&self) -> usize {
        self.data.n_samples * self.data.n_tokens
    }
    fn n_outputs(&self) -> usize {
        self.data.n_outputs
    }
    fn penalty_shape(&self) -> (usize, usize) {
        (2, self.data.n_tokens * self.data.n_tokens)
    }
    fn block_norms(&self) -> &[f64] {
        &self.block_norms
    }
    /// Every pass is two dense products over all of X̄ (forward and adjoint),
    /// whatever the blocks: two data passes, honestly counted.
    fn pass_fraction(&self, blocks: usize) -> f64 {
        if blocks == 0 {
            0.0
        } else {
            2.0
        }
    }
    fn supports_intercept(&self) -> bool {
        false
    }
    fn add_constant_adjoint(&self, _b: usize, _m: &[f64], _out: &mut [f64]) {}
    fn buffers(&self, max_adj: usize) -> PassBuffers {
        let (rows, c) = (self.n_rows(), self.data.n_outputs);
        let chunks = rows.div_ceil(chunk_rows(rows)).max(1);
        PassBuffers {
            yhat: vec![0.0; rows * c],
            sample_grad: vec![0.0; rows * c],
            block_grad: vec![0.0; max_adj * self.block_len()],
            intercept_grad: vec![0.0; c],
            partials: Vec::new(),
            chunk_loss: vec![0.0; chunks],
            work: vec![0.0; 2 * self.product_len()],
        }
    }
    fn fused_pass<F>(
        &self,
        fwd: &[usize],
        fwd_coef: &[f64],
        intercept: &[f64],
        adj: &[usize],
        loss: F,
        buf: &mut PassBuffers,
    ) -> f64
    where
        F: Fn(usize, &[f64], &mut [f64]) -> f64 + Sync,
    {
        let (_, n, d, c) = self.data.shape();
        let (nn, bl) = (n * n, self.block_len());
        let (bprod, gprod) = buf.work.split_at_mut(self.product_len());
        // Forward: B from the blocks' C⁺ − C⁻, then F̄ = X̄ Bᵀ.
        if fwd.is_empty() {
            buf.yhat.iter_mut().for_each(|v| *v = 0.0);
        } else {
            bprod.iter_mut().for_each(|v| *v = 0.0);
            for (z, &blk) in fwd_coef.chunks_exact(bl).zip(fwd) {
                let (q, l) = (blk / c, blk % c);
                let (zp, zm) = z.split_at(nn);
                for r in 0..n {
                    for k in 0..n {
                        bprod[product_index(q, l, r, k, n, d, c)] = zp[r * n + k] - zm[r * n + k];
                    }
                }
            }
            self.forward(bprod, &mut buf.yhat);
        }
        for row in buf.yhat.chunks_exact_mut(c) {
            row.iter_mut().zip(intercept).for_each(|(v, b)| *v += b);
        }
        // The loss per row, in fixed chunks.
        let cs = chunk_rows(self.n_rows());
        buf.yhat
            .par_chunks(cs * c)
            .zip(buf.sample_grad.par_chunks_mut(cs * c))
            .zip(buf.chunk_loss.par_iter_mut())
            .enumerate()
            .for_each(|(j, ((yh, sg), total))| {
                *total = yh
                    .chunks_exact(c)
                    .zip(sg.chunks_exact_mut(c))
                    .enumerate()
                    .map(|(r, (y, g))| loss(j * cs + r, y, g))
                    .sum();
            });
        buf.intercept_grad.iter_mut().for_each(|v| *v = 0.0);
        for g in buf.sample_grad.chunks_exact(c) {
            buf.intercept_grad
                .iter_mut()
                .zip(g)
                .for_each(|(s, v)| *s += v);
        }
        // Adjoint: G = Θ̄ᵀX̄, then (G_{ql}, −G_{ql}) per block of `adj`.
        if !adj.is_empty() {
            self.adjoint(&buf.sample_grad, gprod);
            for (out, &blk) in buf.block_grad.chunks_exact_mut(bl).zip(adj) {
                let (q, l) = (blk / c, blk % c);
                let (gp, gm) = out.split_at_mut(nn);
                for r in 0..n {
                    for k in 0..n {
                        let g = gprod[product_index(q, l, r, k, n, d, c)];
                        gp[r * n + k] = g;
                        gm[r * n + k] = -g;
                    }
                }
            }
        }
        buf.chunk_loss.iter().sum()
    }
}

/// Rows per loss chunk for `rows` rows.
fn chunk_rows(rows: usize) -> usize {
    MIN_CHUNK.max(rows.div_ceil(MAX_CHUNKS))
}
