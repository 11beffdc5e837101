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

use crate::data::Dataset;
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
    pub data: &'a Dataset<'a>,
    par: Par,
    /// √2·‖X_q‖_F for block (q, l): a bound on ‖[𝒜_{ql}, −𝒜_{ql}]‖, where
    /// 𝒜_{ql} = I_n ⊗ X_q and X_q[i, k] = X_i[k, q].
    block_norms: Vec<f64>,
    /// The data feature-major, X_q (N×n, row-major) at q·N·n: a pass over a
    /// few blocks reads only their features (working sets pay off).
    xf: Vec<f64>,
    /// Multithreading for the per-feature products (N·n²·c multiply-adds each).
    block_par: Par,
    /// X̄ᵀX̄ where it has at most [`MAX_GRAM`] entries, formed once (one
    /// pass): the step sizes of all blocks and of working sets read it.
    gram: std::sync::OnceLock<Option<Vec<f64>>>,
    /// 2·λ_max(X̄ᵀX̄)·1.02, computed once.
    lipschitz: std::sync::OnceLock<f64>,
}

impl<'a> SequenceOperator<'a> {
    pub fn new(data: &'a Dataset<'a>) -> Self {
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
        let mut xf = vec![0.0; data.x.len()];
        for (row, x) in data.x.chunks_exact(d).enumerate() {
            for (q, &v) in x.iter().enumerate() {
                xf[q * n_s * n + row] = v;
            }
        }
        let block_flops = (n_s * n * n * c) as f64;
        let block_par = if block_flops > 4e6 {
            Par::rayon(0)
        } else {
            Par::Seq
        };
        SequenceOperator {
            data,
            par,
            block_norms,
            xf,
            block_par,
            gram: std::sync::OnceLock::new(),
            lipschitz: std::sync::OnceLock::new(),
        }
    }

    /// λ_max(X̄ᵀX̄) by power iteration from a fixed start (from below), and
    /// the data passes it took: on the Gram matrix X̄ᵀX̄ ((n·d)², at most
    /// [`MAX_GRAM`] entries) formed in one pass, or else two passes per
    /// iteration.
    pub fn power_iteration(&self, iters: usize, use_gram: bool) -> (f64, usize) {
        let gram = use_gram.then(|| self.gram());
        self.power_with(iters, gram.as_deref())
    }

    /// X̄ᵀX̄ ((n·d)², column-major) in one pass.
    fn gram(&self) -> Vec<f64> {
        let (n_s, n, d, _) = self.data.shape();
        let p = n * d;
        let x = MatRef::from_row_major_slice(&self.data.x, n_s, p);
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
    }

    /// [`Self::gram`], formed on first use where it fits.
    fn cached_gram(&self) -> Option<&[f64]> {
        let (_, n, d, _) = self.data.shape();
        self.gram
            .get_or_init(|| ((n * d) * (n * d) <= MAX_GRAM).then(|| self.gram()))
            .as_deref()
    }

    /// The power iteration on `gram` (which may be summed over shards), or
    /// on the data when None.
    fn power_with(&self, iters: usize, gram: Option<&[f64]>) -> (f64, usize) {
        let (n_s, n, d, _) = self.data.shape();
        let p = n * d;
        if let Some(g) = gram {
            return (power_on_gram(g, p, iters), 1);
        }
        let x = MatRef::from_row_major_slice(&self.data.x, n_s, p);
        let mut w = vec![0.0; n_s];
        let (lambda, products) = power_iterate(p, iters, |v, out| {
            let vr = MatRef::from_column_major_slice(v, p, 1);
            let wm = MatMut::from_column_major_slice_mut(&mut w, n_s, 1);
            matmul(wm, Accum::Replace, x, vr, 1.0, self.par);
            let wr = MatRef::from_column_major_slice(&w, n_s, 1);
            let dst = MatMut::from_column_major_slice_mut(out, p, 1);
            matmul(dst, Accum::Replace, x.transpose(), wr, 1.0, self.par);
        });
        (lambda, 2 * products)
    }

    /// Whether a pass adjoining `blocks` blocks takes the two dense products
    /// (half the blocks or more: one large product beats many small ones).
    fn dense(&self, blocks: usize) -> bool {
        2 * blocks >= self.n_blocks()
    }

    /// X_q as an N×n matrix.
    fn feature(&self, q: usize) -> MatRef<'_, f64> {
        let (n_s, n) = (self.data.n_samples, self.data.n_tokens);
        MatRef::from_row_major_slice(&self.xf[q * n_s * n..(q + 1) * n_s * n], n_s, n)
    }

    /// Product-layout size, n·c × n·d.
    fn product_len(&self) -> usize {
        self.n_coef()
    }

    /// Forward over a few blocks, one product per feature used:
    /// Ŷ (N×n·c) += X_q (N×n) · B_q (n×n·c), B_q[k, (r, l)] = C_ql[r, k] for
    /// the blocks (q, l) of `fwd` (the predictions' own layout).
    fn forward_blocks(&self, fwd: &[usize], fwd_coef: &[f64], bq: &mut [f64], yhat: &mut [f64]) {
        let (n_s, n, _, c) = self.data.shape();
        let (nn, w) = (n * n, n * c);
        yhat.iter_mut().for_each(|v| *v = 0.0);
        let mut j = 0;
        while j < fwd.len() {
            let q = fwd[j] / c;
            let bq = &mut bq[..n * w];
            bq.iter_mut().for_each(|v| *v = 0.0);
            while j < fwd.len() && fwd[j] / c == q {
                let (l, z) = (fwd[j] % c, &fwd_coef[j * 2 * nn..(j + 1) * 2 * nn]);
                for r in 0..n {
                    for k in 0..n {
                        bq[k * w + r * c + l] = z[r * n + k] - z[nn + r * n + k];
                    }
                }
                j += 1;
            }
            let b = MatRef::from_row_major_slice(bq, n, w);
            let dst = MatMut::from_row_major_slice_mut(yhat, n_s, w);
            matmul(dst, Accum::Add, self.feature(q), b, 1.0, self.block_par);
        }
    }

    /// Adjoint over a few blocks, one product per feature used:
    /// G_q (n×n·c) = X_qᵀ Θ̄ (Θ̄ the row gradients, N×n·c), whose entry
    /// [k, (r, l)] is G_ql[r, k]; then (G_ql, −G_ql) per block of `adj`.
    fn adjoint_blocks(&self, adj: &[usize], grad: &[f64], gq: &mut [f64], out: &mut [f64]) {
        let (n_s, n, _, c) = self.data.shape();
        let (nn, w) = (n * n, n * c);
        let theta = MatRef::from_row_major_slice(grad, n_s, w);
        let mut cur = usize::MAX;
        for (o, &blk) in out.chunks_exact_mut(2 * nn).zip(adj) {
            let (q, l) = (blk / c, blk % c);
            let gq = &mut gq[..n * w];
            if q != cur {
                let dst = MatMut::from_row_major_slice_mut(gq, n, w);
                let xq = self.feature(q).transpose();
                matmul(dst, Accum::Replace, xq, theta, 1.0, self.block_par);
                cur = q;
            }
            let (gp, gm) = o.split_at_mut(nn);
            for r in 0..n {
                for k in 0..n {
                    let g = gq[k * w + r * c + l];
                    gp[r * n + k] = g;
                    gm[r * n + k] = -g;
                }
            }
        }
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
    /// A pass is two products (forward and adjoint); over a working set each
    /// reads only the columns X_q of the features used, so it counts
    /// 2·(features used)/d data passes (2 for the dense products).
    fn pass_fraction(&self, blocks: &[usize]) -> f64 {
        if self.dense(blocks.len()) {
            return 2.0;
        }
        // Each product reads the columns X_q of the features used, once.
        let c = self.data.n_outputs;
        let mut features: Vec<usize> = blocks.iter().map(|b| b / c).collect();
        features.sort_unstable();
        features.dedup();
        2.0 * features.len() as f64 / self.data.n_features as f64
    }
    /// ‖[𝒜, −𝒜]‖² = 2·λ_max(X̄ᵀX̄) (from the Gram matrix, with a 2% margin
    /// for the estimate from below), valid for any subset of blocks.
    fn lipschitz_bound(&self) -> Option<f64> {
        Some(*self.lipschitz.get_or_init(|| {
            let (lam, _) = self.power_with(300, self.cached_gram());
            2.0 * 1.02 * lam
        }))
    }
    fn lipschitz_bound_on(&self, blocks: &[usize]) -> Option<f64> {
        let gram = self.cached_gram()?;
        Some(self.lipschitz_bound_of(gram, Some(blocks)))
    }
    fn lipschitz_gram(&self) -> Option<Vec<f64>> {
        let (_, n, d, _) = self.data.shape();
        ((n * d) * (n * d) <= MAX_GRAM).then(|| self.gram())
    }
    /// On blocks W: 𝒜_W is block diagonal over the outputs l (output l
    /// reads only the blocks (q, l)), so ‖[𝒜_W, −𝒜_W]‖² = 2·max_l λ_max of
    /// X̄ᵀX̄ on the columns (k, q) of those features (with the same margin).
    fn lipschitz_bound_of(&self, gram: &[f64], blocks: Option<&[usize]>) -> f64 {
        let Some(blocks) = blocks else {
            return 2.0 * 1.02 * self.power_with(300, Some(gram)).0;
        };
        let (_, n, d, c) = self.data.shape();
        let p = n * d;
        let mut lam = 0.0f64;
        for l in 0..c {
            let features: Vec<usize> = blocks
                .iter()
                .filter(|b| *b % c == l)
                .map(|b| b / c)
                .collect();
            let cols: Vec<usize> = (0..n)
                .flat_map(|k| features.iter().map(move |q| k * d + q))
                .collect();
            let sub: Vec<f64> = cols
                .iter()
                .flat_map(|&i| cols.iter().map(move |&j| gram[i * p + j]))
                .collect();
            if !cols.is_empty() {
                lam = lam.max(power_on_gram(&sub, cols.len(), 300));
            }
        }
        2.0 * 1.02 * lam
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
            shard_sum: Vec::new(),
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
        // Passes over half the blocks or more (certificates, β_max) take one
        // dense product each way; passes over a working set one product per
        // feature used, reading only those features' columns.
        let dense = self.dense(adj.len());
        let (bprod, gprod) = buf.work.split_at_mut(self.product_len());
        // Forward: B from the blocks' C⁺ − C⁻, then F̄ = X̄ Bᵀ.
        if fwd.is_empty() {
            buf.yhat.iter_mut().for_each(|v| *v = 0.0);
        } else if !dense {
            self.forward_blocks(fwd, fwd_coef, bprod, &mut buf.yhat);
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
        if !adj.is_empty() && !dense {
            self.adjoint_blocks(adj, &buf.sample_grad, gprod, &mut buf.block_grad);
        } else if !adj.is_empty() {
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

/// λ_max of the p×p symmetric matrix `g` by power iteration (from below).
fn power_on_gram(g: &[f64], p: usize, iters: usize) -> f64 {
    let g = MatRef::from_column_major_slice(g, p, p);
    power_iterate(p, iters, |v, out| {
        let vr = MatRef::from_column_major_slice(v, p, 1);
        let dst = MatMut::from_column_major_slice_mut(out, p, 1);
        matmul(dst, Accum::Replace, g, vr, 1.0, Par::Seq);
    })
    .0
}

/// Power iteration with the map `apply(v, out)` (out = M v) from a fixed
/// start, so results are reproducible: λ_max(M) from below and the number
/// of products taken.
fn power_iterate(
    p: usize,
    iters: usize,
    mut apply: impl FnMut(&[f64], &mut [f64]),
) -> (f64, usize) {
    let mut v: Vec<f64> = (0..p)
        .map(|k| 1.0 + ((k * 7919) % 13) as f64 / 13.0)
        .collect();
    let mut v2 = vec![0.0; p];
    let mut lambda = 0.0;
    let mut products = 0;
    for _ in 0..iters {
        let nrm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if nrm == 0.0 || !nrm.is_finite() {
            break;
        }
        v.iter_mut().for_each(|x| *x /= nrm);
        apply(&v, &mut v2);
        products += 1;
        std::mem::swap(&mut v, &mut v2);
        let new = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let done = (new - lambda).abs() <= 1e-9 * new;
        lambda = new;
        if done {
            break;
        }
    }
    (lambda, products)
}

/// Rows per loss chunk for `rows` rows.
fn chunk_rows(rows: usize) -> usize {
    MIN_CHUNK.max(rows.div_ceil(MAX_CHUNKS))
}

/// Largest Gram matrix X̄ᵀX̄, in entries, that [`SequenceOperator::max_eigenvalue`] forms.
pub const MAX_GRAM: usize = 1 << 22;
