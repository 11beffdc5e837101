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

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::SequenceDataset;

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
}

impl<'a> SequenceOperator<'a> {
    pub fn new(data: &'a SequenceDataset) -> Self {
        let (n_s, n, d, c) = data.shape();
        // Multithreading pays off above a few million multiply-adds.
        let flops = (n_s as f64) * (n * d) as f64 * (n * c) as f64;
        let par = if flops > 4e6 { Par::rayon(0) } else { Par::Seq };
        SequenceOperator { data, par }
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

    /// σ_max(X̄)² = λ_max(X̄ᵀX̄) by power iteration from a fixed start (an
    /// estimate from below), and the data passes it took. When the Gram
    /// matrix X̄ᵀX̄ ((n·d)², at most [`MAX_GRAM`] entries) is small it is formed
    /// in one pass and iterated on; otherwise each iteration multiplies by X̄
    /// and X̄ᵀ (two passes).
    pub fn max_eigenvalue(&self, iters: usize) -> (f64, usize) {
        let (_, n, d, _) = self.data.shape();
        self.power_iteration(iters, (n * d) * (n * d) <= MAX_GRAM)
    }

    /// [`Self::max_eigenvalue`] with the Gram matrix or without.
    pub fn power_iteration(&self, iters: usize, use_gram: bool) -> (f64, usize) {
        let (n_s, n, d, _) = self.data.shape();
        let p = n * d;
        let x = MatRef::from_row_major_slice(&self.data.x, n_s, p);
        let gram = use_gram.then(|| {
            let mut g = vec![0.0; p * p];
            matmul(
                MatMut::from_column_major_slice_mut(&mut g, p, p),
                Accum::Replace,
                x.transpose(),
                x,
                1.0,
                self.par,
            );
            g
        });
        let mut passes = usize::from(gram.is_some());
        let mut v: Vec<f64> = (0..p)
            .map(|k| 1.0 + ((k * 7919) % 13) as f64 / 13.0)
            .collect();
        let mut v2 = vec![0.0; p];
        let mut w = vec![0.0; n_s];
        let mut lambda = 0.0;
        for _ in 0..iters {
            let nrm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if nrm == 0.0 || !nrm.is_finite() {
                break;
            }
            v.iter_mut().for_each(|x| *x /= nrm);
            let vr = MatRef::from_column_major_slice(&v, p, 1);
            let dst = MatMut::from_column_major_slice_mut(&mut v2, p, 1);
            match &gram {
                Some(g) => {
                    let g = MatRef::from_column_major_slice(g, p, p);
                    matmul(dst, Accum::Replace, g, vr, 1.0, Par::Seq);
                }
                None => {
                    let wm = MatMut::from_column_major_slice_mut(&mut w, n_s, 1);
                    matmul(wm, Accum::Replace, x, vr, 1.0, self.par);
                    let wr = MatRef::from_column_major_slice(&w, n_s, 1);
                    matmul(dst, Accum::Replace, x.transpose(), wr, 1.0, self.par);
                    passes += 2;
                }
            }
            std::mem::swap(&mut v, &mut v2);
            let new = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let done = (new - lambda).abs() <= 1e-9 * new;
            lambda = new;
            if done {
                break;
            }
        }
        (lambda, passes)
    }
}

/// Largest Gram matrix X̄ᵀX̄, in entries, that [`SequenceOperator::max_eigenvalue`] forms.
pub const MAX_GRAM: usize = 1 << 22;
