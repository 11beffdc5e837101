use super::kernels::{axpy, dot};
use super::{LinearOperator, PassBuffers, RowWeights};
use crate::data::Dataset;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Gate indicators D_p(X_i) = 1[⟨X_i, G_p⟩ ≥ 0] for P gates (SPEC §3.4/§4d),
/// stored N×P, with the gates themselves (to evaluate new data).
#[derive(Clone, Debug)]
pub struct GateMasks {
    pub n_gates: usize,
    /// N·P indicators, sample-major.
    pub mask: Vec<bool>,
}

/// The map Z ↦ (⟨X_i, Z⟩)_i of SPEC §4a/§4b (no gates) or §4d (with gates),
/// with per-block statistics the solver needs (norms for screening, column
/// sums for the intercept), computed once.
pub struct TokenOperator<'a> {
    pub data: &'a Dataset<'a>,
    pub gates: Option<&'a GateMasks>,
    n_blocks: usize,
    pub(super) chunk_size: usize,
    /// ‖X_b‖_F over the samples (gated rows count only where the gate is on).
    block_norms: Vec<f64>,
    /// Σ_i x_{i,b}, d per block.
    block_sums: Vec<f64>,
    /// The tokens, token-major (x_{i,k} at (k·N + i)·d): a pass over a few
    /// tokens then reads a few sequential streams instead of striding
    /// through every sample. One copy of X, made once per operator.
    xt: Vec<f64>,
    /// Per token, its nonzeros row by row where under a tenth of its
    /// entries are nonzero (one-hot tokens): products then visit only those.
    pub(super) sparse: Vec<Option<SparseToken>>,
}

/// The nonzeros of one token over the samples (compressed rows).
pub(super) struct SparseToken {
    offsets: Vec<usize>,
    index: Vec<usize>,
    value: Vec<f64>,
}

impl SparseToken {
    /// The token's n×d rows, when under a tenth of their entries are nonzero.
    fn new(rows: &[f64], d: usize) -> Option<SparseToken> {
        let nnz = rows.iter().filter(|&&v| v != 0.0).count();
        if 10 * nnz >= rows.len() {
            return None;
        }
        let mut t = SparseToken {
            offsets: Vec::with_capacity(rows.len() / d.max(1) + 1),
            index: Vec::with_capacity(nnz),
            value: Vec::with_capacity(nnz),
        };
        t.offsets.push(0);
        for row in rows.chunks_exact(d) {
            for (q, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    t.index.push(q);
                    t.value.push(v);
                }
            }
            t.offsets.push(t.index.len());
        }
        Some(t)
    }

    /// Sample i's nonzeros: (feature, value) pairs.
    #[inline]
    pub(super) fn row(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let (a, b) = (self.offsets[i], self.offsets[i + 1]);
        self.index[a..b]
            .iter()
            .copied()
            .zip(self.value[a..b].iter().copied())
    }
}

/// At most this many chunks: results then depend on N only, not on the
/// number of threads.
const MAX_CHUNKS: usize = 32;
const MIN_CHUNK: usize = 256;
/// Samples per sub-batch of the fused pass.
const SUB_BATCH: usize = 64;
/// From this many outputs on, ungated passes use matrix products per sub-batch.
const GEMM_MIN_OUTPUTS: usize = 8;

/// A sub-batch's first sample and its prediction and gradient rows.
struct SubBatch<'s> {
    i0: usize,
    yh: &'s mut [f64],
    sg: &'s mut [f64],
}

impl<'a> TokenOperator<'a> {
    pub fn new(data: &'a Dataset<'a>, gates: Option<&'a GateMasks>) -> Self {
        let n_blocks = data.n_tokens * gates.map_or(1, |g| g.n_gates);
        let chunk_size = MIN_CHUNK.max(data.n_samples.div_ceil(MAX_CHUNKS));
        let (n, t, d) = (data.n_samples, data.n_tokens, data.n_features);
        let mut xt = Vec::with_capacity(n * t * d);
        for k in 0..t {
            for i in 0..n {
                xt.extend_from_slice(data.token(i, k));
            }
        }
        let sparse = if d == 0 {
            (0..t).map(|_| None).collect()
        } else {
            xt.chunks(n * d)
                .map(|tok| SparseToken::new(tok, d))
                .collect()
        };
        let mut op = TokenOperator {
            sparse,
            xt,
            data,
            gates,
            n_blocks,
            chunk_size,
            block_norms: Vec::new(),
            block_sums: Vec::new(),
        };
        op.compute_block_stats();
        op
    }

    pub fn n_samples(&self) -> usize {
        self.data.n_samples
    }
    pub fn block_dim(&self) -> usize {
        self.data.n_features
    }
    /// Σ_i x_{i,b} (d values).
    pub fn block_sum(&self, b: usize) -> &[f64] {
        let d = self.block_dim();
        &self.block_sums[b * d..(b + 1) * d]
    }

    /// Is block b's row present in sample i (its gate on)?
    #[inline]
    pub(crate) fn gate_on(&self, i: usize, b: usize) -> bool {
        match self.gates {
            None => true,
            Some(g) => g.mask[i * g.n_gates + b / self.data.n_tokens],
        }
    }

    /// Sample i's d-vector for block b (before gating).
    #[inline]
    pub(crate) fn row(&self, i: usize, b: usize) -> &[f64] {
        let d = self.data.n_features;
        let off = ((b % self.data.n_tokens) * self.data.n_samples + i) * d;
        &self.xt[off..off + d]
    }

    /// Whether block b's rows are stored dense and every gate is on (no
    /// gates): its products can then be matrix products over chunks.
    pub(super) fn dense_ungated(&self, b: usize) -> bool {
        self.gates.is_none() && self.sparse_rows(b).is_none()
    }

    /// Block b's token in compressed rows, when it is sparse.
    #[inline]
    pub(super) fn sparse_rows(&self, b: usize) -> Option<&SparseToken> {
        self.sparse[b % self.data.n_tokens].as_ref()
    }

    /// (gate, token) of a block.
    pub fn block_parts(&self, b: usize) -> (usize, usize) {
        (b / self.data.n_tokens, b % self.data.n_tokens)
    }

    fn compute_block_stats(&mut self) {
        let d = self.block_dim();
        let mut norms = vec![0.0; self.n_blocks];
        let mut sums = vec![0.0; self.n_blocks * d];
        for i in 0..self.n_samples() {
            for b in 0..self.n_blocks {
                if self.gate_on(i, b) {
                    let x = self.row(i, b);
                    norms[b] += dot(x, x);
                    axpy(1.0, x, &mut sums[b * d..(b + 1) * d]);
                }
            }
        }
        norms.iter_mut().for_each(|v| *v = v.sqrt());
        self.block_norms = norms;
        self.block_sums = sums;
    }

    /// One sub-batch of an ungated pass with many outputs, as matrix
    /// products: Ŷ += X_b Z_bᵀ per forward block, then G_b += ∇Lᵀ X_b per
    /// adjoint block. Per sample, the loop above would stream every Z_b (c·d
    /// values) from cache once per sample; here once per sub-batch.
    #[allow(clippy::too_many_arguments)]
    fn sub_batch_gemm<F>(
        &self,
        s: SubBatch,
        fwd: &[usize],
        fwd_coef: &[f64],
        intercept: &[f64],
        adj: &[usize],
        loss: &F,
        grads: &mut [f64],
        igrad: &mut [f64],
    ) -> f64
    where
        F: Fn(usize, &[f64], &mut [f64]) -> f64 + Sync,
    {
        let (c, d) = (self.n_outputs(), self.block_dim());
        for y in s.yh.chunks_exact_mut(c) {
            y.copy_from_slice(intercept);
        }
        for (zb, &b) in fwd_coef.chunks_exact(c * d).zip(fwd) {
            self.add_predictions(s.i0, b, zb, s.yh);
        }
        let mut total = 0.0;
        for (r, (yi, gi)) in
            s.yh.chunks_exact(c)
                .zip(s.sg.chunks_exact_mut(c))
                .enumerate()
        {
            total += loss(s.i0 + r, yi, gi);
            axpy(1.0, gi, igrad);
        }
        for (gb, &b) in grads.chunks_exact_mut(c * d).zip(adj) {
            self.add_adjoint(s.i0, b, s.sg, gb);
        }
        total
    }

    /// Ŷ += X_b Zᵀ over the dense rows i0.. of block b (as many as Ŷ has,
    /// c each; Z is c×d): one product, no gates.
    pub(super) fn add_predictions(&self, i0: usize, b: usize, z: &[f64], yh: &mut [f64]) {
        let (c, d) = (self.n_outputs(), self.block_dim());
        let m = yh.len() / c;
        let x = MatRef::from_row_major_slice(self.rows(i0, m, b), m, d);
        let z = MatRef::from_row_major_slice(z, c, d);
        let y = MatMut::from_row_major_slice_mut(yh, m, c);
        matmul(y, Accum::Add, x, z.transpose(), 1.0, Par::Seq);
    }

    /// acc (c×d) += Gᵀ X_b over the dense rows i0.. of block b (as many as
    /// G has, c each): one product, no gates.
    pub(super) fn add_adjoint(&self, i0: usize, b: usize, g: &[f64], acc: &mut [f64]) {
        let (c, d) = (self.n_outputs(), self.block_dim());
        let m = g.len() / c;
        let g = MatRef::from_row_major_slice(g, m, c);
        let x = MatRef::from_row_major_slice(self.rows(i0, m, b), m, d);
        let acc = MatMut::from_row_major_slice_mut(acc, c, d);
        matmul(acc, Accum::Add, g.transpose(), x, 1.0, Par::Seq);
    }

    /// The design of `blocks`: row i is (x_{i,b})_{b ∈ blocks} (zero where a
    /// gate is off), then a 1 when `ones`; N × (|blocks|·d + ones).
    fn design(&self, blocks: &[usize], ones: bool) -> Vec<f64> {
        let (n, d) = (self.n_samples(), self.block_dim());
        let m = blocks.len() * d + usize::from(ones);
        let mut a = vec![0.0; n * m];
        if m == 0 {
            return a;
        }
        a.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
            for (j, &b) in blocks.iter().enumerate() {
                if self.gate_on(i, b) {
                    row[j * d..(j + 1) * d].copy_from_slice(self.row(i, b));
                }
            }
            if ones {
                row[m - 1] = 1.0;
            }
        });
        a
    }

    /// Rows of token block `b` for samples i0..i0+m, contiguous (m×d).
    #[inline]
    pub(super) fn rows(&self, i0: usize, m: usize, b: usize) -> &[f64] {
        let d = self.data.n_features;
        let off = ((b % self.data.n_tokens) * self.data.n_samples + i0) * d;
        &self.xt[off..off + m * d]
    }
}

impl LinearOperator for TokenOperator<'_> {
    fn n_blocks(&self) -> usize {
        self.n_blocks
    }
    fn block_len(&self) -> usize {
        self.n_outputs() * self.block_dim()
    }
    fn n_rows(&self) -> usize {
        self.data.n_samples
    }
    fn n_outputs(&self) -> usize {
        self.data.n_outputs
    }
    fn penalty_shape(&self) -> (usize, usize) {
        (self.data.n_outputs, self.data.n_features)
    }
    fn block_norms(&self) -> &[f64] {
        &self.block_norms
    }
    fn supports_intercept(&self) -> bool {
        true
    }
    fn supports_gram(&self) -> bool {
        true
    }
    fn supports_block_products(&self) -> bool {
        true
    }
    fn block_adjoint(&self, b: usize, grad: &[f64], out: &mut [f64]) -> bool {
        self.adjoint_of_block(b, grad, out, None);
        true
    }
    fn block_adjoint_curvature(
        &self,
        b: usize,
        grad: &[f64],
        out: &mut [f64],
        diag: &mut [f64],
        weights: &RowWeights<'_>,
    ) -> bool {
        self.adjoint_of_block(b, grad, out, Some((weights, diag)));
        true
    }
    fn block_update<F>(
        &self,
        b: usize,
        delta: &[f64],
        yhat: &mut [f64],
        grad: &mut [f64],
        row_loss: &mut [f64],
        loss: F,
    ) -> Option<f64>
    where
        F: Fn(usize, &[f64], &mut [f64]) -> f64 + Sync,
    {
        Some(self.update_block(b, delta, yhat, grad, row_loss, loss))
    }
    fn weighted_gram(
        &self,
        ws: &[usize],
        weights: &[f64],
        sets: usize,
        ones: bool,
    ) -> Option<Vec<Vec<f64>>> {
        let (n, d) = (self.n_samples(), self.block_dim());
        let m = ws.len() * d + usize::from(ones);
        // A = [X_W 1] (N×m, gates applied), read once; then per weight set
        // B = diag(√w) A and G = BᵀB.
        let mut a = self.design(ws, ones);
        let scale = |b: &mut [f64], s: usize| {
            // Unit weights (squared loss) leave A as it is: skip the pass.
            if (0..n).all(|i| weights[i * sets + s] == 1.0) {
                return;
            }
            b.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
                let w = weights[i * sets + s].max(0.0).sqrt();
                row.iter_mut().for_each(|v| *v *= w);
            });
        };
        let mut grams = Vec::with_capacity(sets);
        if sets == 1 {
            scale(&mut a, 0);
            grams.push(gram_lower_mirrored(&a, n, m));
        } else {
            let mut b = vec![0.0; n * m];
            for s in 0..sets {
                b.copy_from_slice(&a);
                scale(&mut b, s);
                grams.push(gram_lower_mirrored(&b, n, m));
            }
        }
        Some(grams)
    }
    fn extend_gram(
        &self,
        ws: &[usize],
        weights: &[f64],
        ones: bool,
        known_ws: &[usize],
        known: &[f64],
    ) -> Option<Vec<f64>> {
        let (n, d) = (self.n_samples(), self.block_dim());
        let m = ws.len() * d + usize::from(ones);
        let m_known = known_ws.len() * d + usize::from(ones);
        if known.len() != m_known * m_known {
            return None;
        }
        // Each coordinate of the new Gram: its index in the known one, if any.
        let mut old_index: Vec<Option<usize>> = Vec::with_capacity(m);
        let mut new_blocks = Vec::new();
        for &b in ws {
            match known_ws.binary_search(&b) {
                Ok(p) => old_index.extend((0..d).map(|q| Some(p * d + q))),
                Err(_) => {
                    new_blocks.push(b);
                    old_index.extend((0..d).map(|_| None));
                }
            }
        }
        if ones {
            old_index.push(Some(m_known - 1));
        }
        // Half the blocks new or more: a full triangular product is cheaper.
        if 2 * new_blocks.len() >= ws.len() {
            return None;
        }
        let unit = weights[..n].iter().all(|&w| w == 1.0);
        let sqrt_w = |a: &mut [f64], width: usize| {
            if unit {
                return;
            }
            a.par_chunks_mut(width).enumerate().for_each(|(i, row)| {
                let w = weights[i].max(0.0).sqrt();
                row.iter_mut().for_each(|v| *v *= w);
            });
        };
        let mut a = self.design(ws, ones);
        sqrt_w(&mut a, m);
        let m_new = new_blocks.len() * d;
        let mut a_new = self.design(&new_blocks, false);
        sqrt_w(&mut a_new, m_new);
        // C = Aᵀ A_new: every coordinate against the new ones.
        let mut cross = vec![0.0; m * m_new];
        matmul(
            MatMut::from_row_major_slice_mut(&mut cross, m, m_new),
            Accum::Replace,
            MatRef::from_row_major_slice(&a, n, m).transpose(),
            MatRef::from_row_major_slice(&a_new, n, m_new),
            1.0,
            Par::rayon(0),
        );
        // The new coordinates' column in C, in order of appearance.
        let mut new_col = vec![usize::MAX; m];
        let mut k = 0;
        for (r, o) in old_index.iter().enumerate() {
            if o.is_none() {
                new_col[r] = k;
                k += 1;
            }
        }
        let mut g = vec![0.0; m * m];
        for r in 0..m {
            for col in 0..m {
                g[r * m + col] = match (old_index[r], old_index[col]) {
                    (Some(i), Some(j)) => known[i * m_known + j],
                    (_, None) => cross[r * m_new + new_col[col]],
                    (None, Some(_)) => cross[col * m_new + new_col[r]],
                };
            }
        }
        Some(g)
    }
    fn add_constant_adjoint(&self, b: usize, m: &[f64], out: &mut [f64]) {
        let d = self.block_dim();
        let sums = self.block_sum(b);
        for (l, &ml) in m.iter().enumerate() {
            axpy(ml, sums, &mut out[l * d..(l + 1) * d]);
        }
    }
    fn buffers(&self, max_adj: usize) -> PassBuffers {
        let (n, c, d) = (self.n_samples(), self.n_outputs(), self.block_dim());
        let chunks = n.div_ceil(self.chunk_size);
        let width = max_adj * c * d + c;
        PassBuffers {
            yhat: vec![0.0; n * c],
            sample_grad: vec![0.0; n * c],
            block_grad: vec![0.0; max_adj * c * d],
            intercept_grad: vec![0.0; c],
            partials: vec![vec![0.0; width]; chunks],
            chunk_loss: vec![0.0; chunks],
            work: Vec::new(),
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
        let (c, d) = (self.n_outputs(), self.block_dim());
        let cd = c * d;
        debug_assert_eq!(fwd_coef.len(), fwd.len() * cd);
        debug_assert!(adj.len() * cd <= buf.block_grad.len());
        let width = adj.len() * cd;
        let cs = self.chunk_size;
        buf.partials
            .par_iter_mut()
            .zip(buf.yhat.par_chunks_mut(cs * c))
            .zip(buf.sample_grad.par_chunks_mut(cs * c))
            .zip(buf.chunk_loss.par_iter_mut())
            .enumerate()
            .for_each(|(j, (((part, yh), sg), chunk_loss))| {
                let part = &mut part[..width + c];
                part.iter_mut().for_each(|v| *v = 0.0);
                let (grads, igrad) = part.split_at_mut(width);
                let rows = yh.len() / c;
                let mut total = 0.0;
                // Sub-batches: the forward rows of a sub-batch stay in cache
                // while the adjoint streams each token's rows in order.
                for start in (0..rows).step_by(SUB_BATCH) {
                    let end = (start + SUB_BATCH).min(rows);
                    if self.gates.is_none() && c >= GEMM_MIN_OUTPUTS {
                        let s = SubBatch {
                            i0: j * cs + start,
                            yh: &mut yh[start * c..end * c],
                            sg: &mut sg[start * c..end * c],
                        };
                        total += self
                            .sub_batch_gemm(s, fwd, fwd_coef, intercept, adj, &loss, grads, igrad);
                        continue;
                    }
                    for r in start..end {
                        let i = j * cs + r;
                        let yi = &mut yh[r * c..(r + 1) * c];
                        let gi = &mut sg[r * c..(r + 1) * c];
                        yi.copy_from_slice(intercept);
                        for (zb, &b) in fwd_coef.chunks_exact(cd).zip(fwd) {
                            if !self.gate_on(i, b) {
                                continue;
                            }
                            if let Some(sp) = self.sparse_rows(b) {
                                for (q, v) in sp.row(i) {
                                    for (l, y) in yi.iter_mut().enumerate() {
                                        *y += v * zb[l * d + q];
                                    }
                                }
                            } else {
                                let x = self.row(i, b);
                                for (y, z) in yi.iter_mut().zip(zb.chunks_exact(d)) {
                                    *y += dot(x, z);
                                }
                            }
                        }
                        total += loss(i, yi, gi);
                        axpy(1.0, gi, igrad);
                    }
                    for (gb, &b) in grads.chunks_exact_mut(cd).zip(adj) {
                        let sparse = self.sparse_rows(b);
                        for r in start..end {
                            let i = j * cs + r;
                            if !self.gate_on(i, b) {
                                continue;
                            }
                            let gi = &sg[r * c..(r + 1) * c];
                            if let Some(sp) = sparse {
                                for (q, v) in sp.row(i) {
                                    for (l, g) in gi.iter().enumerate() {
                                        gb[l * d + q] += g * v;
                                    }
                                }
                            } else {
                                let x = self.row(i, b);
                                for (g, acc) in gi.iter().zip(gb.chunks_exact_mut(d)) {
                                    axpy(*g, x, acc);
                                }
                            }
                        }
                    }
                }
                *chunk_loss = total;
            });
        // Fixed-order reduction.
        let out = &mut buf.block_grad[..width];
        out.copy_from_slice(&buf.partials[0][..width]);
        buf.intercept_grad
            .copy_from_slice(&buf.partials[0][width..width + c]);
        for part in &buf.partials[1..] {
            axpy(1.0, &part[..width], out);
            axpy(1.0, &part[width..width + c], &mut buf.intercept_grad);
        }
        buf.chunk_loss.iter().sum()
    }
}

/// BᵀB for a row-major n×m matrix B: the lower triangle (half the work of
/// a full product), then mirrored.
fn gram_lower_mirrored(b: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut g = vec![0.0; m * m];
    let bm = MatRef::from_row_major_slice(b, n, m);
    let gm = MatMut::from_row_major_slice_mut(&mut g, m, m);
    triangular::matmul(
        gm,
        BlockStructure::TriangularLower,
        Accum::Replace,
        bm.transpose(),
        BlockStructure::Rectangular,
        bm,
        BlockStructure::Rectangular,
        1.0,
        Par::rayon(0),
    );
    for r in 0..m {
        for col in r + 1..m {
            g[r * m + col] = g[col * m + r];
        }
    }
    g
}
