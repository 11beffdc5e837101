//! Student (a)'s training step written out over buffers (issue #13), in
//! place of the candle graph: the same loss and gradient in fewer products.
//!
//! The loss reads the chosen positions only (0–3 by default), so queries,
//! attention rows, contexts and outputs are computed at those positions
//! alone; keys and values at every token. Each batch is cut into shards of
//! [`SHARD_SENTENCES`] sentences, each run forward and backward on one thread
//! with one-thread products; their gradients are added in shard order, so a
//! step's result does not depend on the number of threads.

use super::features::Features;
use crate::error::{invalid, Result};
use crate::nn::matmul::{matmul, plain, tr};
use rayon::prelude::*;

/// Sentences per shard: 4 shards of a batch of 64, products of 256 rows.
pub const SHARD_SENTENCES: usize = 32;

/// The student's sizes. Its parameters sit in one flat vector in the order
/// wq (D×I), wk (D×I), wv (D×I), wo (I×D), bias (D), row-major, I = h·k:
/// the order of `SoftmaxStudent`'s variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StudentDims {
    /// Tokens per sentence (padded).
    pub n: usize,
    /// D, the width of inputs and outputs.
    pub dim: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl StudentDims {
    fn inner(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Length of the flat parameter vector.
    pub fn n_params(&self) -> usize {
        4 * self.dim * self.inner() + self.dim
    }

    /// (wq, wk, wv, wo, bias) as slices of `params`.
    fn split<'p>(&self, params: &'p [f32]) -> [&'p [f32]; 5] {
        let w = self.dim * self.inner();
        [
            &params[..w],
            &params[w..2 * w],
            &params[2 * w..3 * w],
            &params[3 * w..4 * w],
            &params[4 * w..4 * w + self.dim],
        ]
    }

    /// The same split of a mutable gradient vector.
    fn split_mut<'g>(&self, g: &'g mut [f32]) -> [&'g mut [f32]; 5] {
        let w = self.dim * self.inner();
        let (wq, rest) = g.split_at_mut(w);
        let (wk, rest) = rest.split_at_mut(w);
        let (wv, rest) = rest.split_at_mut(w);
        let (wo, bias) = rest.split_at_mut(w);
        [wq, wk, wv, wo, bias]
    }
}

/// The training step's workspace: shards' buffers, allocated on first use
/// and reused.
pub struct FusedStudent {
    dims: StudentDims,
    positions: Vec<usize>,
    shards: Vec<Shard>,
    grad: Vec<f32>,
}

/// One shard's activations, their gradients and its own parameter gradient.
#[derive(Default)]
struct Shard {
    /// Inputs, m×D (m = sentences·n), and at the loss positions, r×D.
    x: Vec<f32>,
    xp: Vec<f32>,
    /// Targets at the loss positions (r×D) and whether each row counts.
    y: Vec<f32>,
    counts: Vec<bool>,
    lengths: Vec<usize>,
    /// Queries (r×I), keys and values (m×I), heads side by side.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention rows, per (sentence, head, position): n each.
    probs: Vec<f32>,
    ctx: Vec<f32>,
    /// Outputs, then the loss's gradient with respect to them (r×D).
    out: Vec<f32>,
    dctx: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    /// One attention row's gradient (n).
    dp: Vec<f32>,
    grad: Vec<f32>,
    loss: f64,
}

impl FusedStudent {
    /// A workspace for `dims`, the loss at `positions` (each below n, each
    /// once).
    pub fn new(dims: StudentDims, positions: &[usize]) -> Result<Self> {
        if let Some(&r) = positions.iter().find(|&&r| r >= dims.n) {
            return invalid(format!(
                "loss position {r} is beyond the sentences' {} tokens",
                dims.n
            ));
        }
        for (i, r) in positions.iter().enumerate() {
            if positions[..i].contains(r) {
                return invalid(format!("loss position {r} is listed twice"));
            }
        }
        Ok(FusedStudent {
            dims,
            positions: positions.to_vec(),
            shards: Vec::new(),
            grad: vec![0.0; dims.n_params()],
        })
    }

    /// The loss on sentences `idx` of `f` (the mean over the chosen positions
    /// that hold a token of ‖ŷ − y‖² / D) at `params`, with its gradient left
    /// in [`Self::grad`].
    pub fn loss_and_grad(&mut self, f: &Features, idx: &[usize], params: &[f32]) -> Result<f64> {
        let d = self.dims;
        if (f.n, f.dim) != (d.n, d.dim) || params.len() != d.n_params() {
            return invalid(format!(
                "the student has n = {}, D = {} and {} parameters; got n = {}, D = {} and {}",
                d.n,
                d.dim,
                d.n_params(),
                f.n,
                f.dim,
                params.len()
            ));
        }
        if idx.is_empty() {
            return invalid("a training batch needs at least one sentence");
        }
        if let Some(&i) = idx.iter().find(|&&i| i >= f.lengths.len()) {
            return invalid(format!(
                "sentence {i} is out of range 0..{}",
                f.lengths.len()
            ));
        }
        let count: usize = idx
            .iter()
            .map(|&i| self.positions.iter().filter(|&&r| r < f.lengths[i]).count())
            .sum();
        // The loss divides by (counted rows)·D: each row's gradient is 2·diff times this.
        let inv = 1.0 / (count.max(1) * d.dim) as f64;
        let chunks: Vec<&[usize]> = idx.chunks(SHARD_SENTENCES).collect();
        if self.shards.len() < chunks.len() {
            self.shards.resize_with(chunks.len(), Shard::default);
        }
        let positions = &self.positions;
        self.shards[..chunks.len()]
            .par_iter_mut()
            .zip(&chunks)
            .for_each(|(s, c)| s.run(d, positions, f, c, params, inv));
        // The shards' gradients added in shard order, in parallel over entries.
        let shards = &self.shards[..chunks.len()];
        self.grad
            .par_chunks_mut(SUM_CHUNK)
            .enumerate()
            .for_each(|(c, g)| {
                let at = c * SUM_CHUNK;
                g.copy_from_slice(&shards[0].grad[at..at + g.len()]);
                for s in &shards[1..] {
                    for (g, v) in g.iter_mut().zip(&s.grad[at..]) {
                        *g += v;
                    }
                }
            });
        Ok(shards.iter().map(|s| s.loss).sum::<f64>() * inv)
    }

    /// The gradient of the last [`Self::loss_and_grad`].
    pub fn grad(&self) -> &[f32] {
        &self.grad
    }
}

/// Gradient entries per parallel work unit of the shards' sum.
const SUM_CHUNK: usize = 1 << 14;

/// `buf` holding `len` zeros (its allocation kept).
fn zeroed(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.clear();
    buf.resize(len, 0.0);
    buf
}

/// `buf` resized to `len`, values left as they are: for outputs a product
/// overwrites whole.
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

use crate::nn::ops::softmax_rows::{self, HeadRows};

/// One head's rows (keys, values or their gradients) of one sentence: the
/// `hk` columns from `offset`, a row every `inner` values.
fn head_rows(offset: usize, inner: usize, hk: usize) -> HeadRows {
    HeadRows {
        offset,
        stride: inner,
        dh: hk,
    }
}

#[inline(always)]
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

impl Shard {
    /// Forward and backward over the sentences `idx`: loss (unscaled sum)
    /// and this shard's parameter gradient.
    fn run(
        &mut self,
        d: StudentDims,
        positions: &[usize],
        f: &Features,
        idx: &[usize],
        params: &[f32],
        inv: f64,
    ) {
        #[cfg(target_arch = "x86_64")]
        if crate::nn::wide_vectors() {
            // SAFETY: the processor has AVX2 and FMA (checked just above).
            return unsafe { self.run_wide(d, positions, f, idx, params, inv) };
        }
        self.run_body(d, positions, f, idx, params, inv)
    }

    /// [`Shard::run`] compiled for AVX2 (the attention loops use 256-bit
    /// vectors); without fast-math the results are the baseline build's.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_wide(
        &mut self,
        d: StudentDims,
        positions: &[usize],
        f: &Features,
        idx: &[usize],
        params: &[f32],
        inv: f64,
    ) {
        self.run_body(d, positions, f, idx, params, inv)
    }

    #[inline(always)]
    fn run_body(
        &mut self,
        d: StudentDims,
        positions: &[usize],
        f: &Features,
        idx: &[usize],
        params: &[f32],
        inv: f64,
    ) {
        let (n, dim, heads, hk) = (d.n, d.dim, d.heads, d.head_dim);
        let inner = d.inner();
        let (b, p) = (idx.len(), positions.len());
        let (m, r) = (b * n, b * p);
        let [wq, wk, wv, wo, bias] = d.split(params);
        // Inputs, targets and lengths of these sentences.
        self.lengths.clear();
        self.lengths.extend(idx.iter().map(|&i| f.lengths[i]));
        self.x.clear();
        self.xp.clear();
        self.y.clear();
        self.counts.clear();
        for &i in idx {
            let s = i * n * dim;
            self.x.extend_from_slice(&f.x[s..s + n * dim]);
            for &row in positions {
                let o = s + row * dim;
                self.xp.extend_from_slice(&f.x[o..o + dim]);
                self.y.extend_from_slice(&f.y[o..o + dim]);
                self.counts.push(row < f.lengths[i]);
            }
        }
        // Projections: queries at the loss positions, keys and values at all.
        let project = |rows: usize, x: &[f32], w: &[f32], out: &mut Vec<f32>| {
            matmul(
                (rows, dim, inner),
                plain(x),
                plain(w),
                sized(out, rows * inner),
                false,
            )
        };
        project(r, &self.xp, wq, &mut self.q);
        project(m, &self.x, wk, &mut self.k);
        project(m, &self.x, wv, &mut self.v);
        // Attention rows over the sentence's tokens (padding keys get 0).
        let scale = 1.0 / (hk as f32).sqrt();
        let probs = zeroed(&mut self.probs, b * heads * p * n);
        let ctx = zeroed(&mut self.ctx, r * inner);
        for s in 0..b {
            let len = self.lengths[s];
            for h in 0..heads {
                let rows = head_rows(s * n * inner + h * hk, inner, hk);
                for a in 0..p {
                    let qo = (s * p + a) * inner + h * hk;
                    let row = &mut probs[((s * heads + h) * p + a) * n..][..len];
                    softmax_rows::probs(&self.q[qo..qo + hk], &self.k, rows, scale, row);
                    softmax_rows::mix(row, &self.v, rows, &mut ctx[qo..qo + hk]);
                }
            }
        }
        // Outputs, the loss, and its gradient in their place.
        let out = sized(&mut self.out, r * dim);
        matmul((r, inner, dim), plain(ctx), plain(wo), out, false);
        let mut loss = 0.0f64;
        for ((o, y), &counts) in out
            .chunks_exact_mut(dim)
            .zip(self.y.chunks_exact(dim))
            .zip(&self.counts)
        {
            for ((o, y), b) in o.iter_mut().zip(y).zip(bias) {
                let diff = if counts { *o + b - y } else { 0.0 };
                loss += (diff as f64) * (diff as f64);
                *o = (2.0 * diff as f64 * inv) as f32;
            }
        }
        self.loss = loss;
        let dout = &self.out;
        // Backward through the output projection.
        // The weight products overwrite their blocks; the bias sums its rows.
        let grad = sized(&mut self.grad, d.n_params());
        let [gq, gk, gv, go, gb] = d.split_mut(grad);
        matmul((inner, r, dim), tr(ctx), plain(dout), go, false);
        gb.fill(0.0);
        for row in dout.chunks_exact(dim) {
            axpy(1.0, row, gb);
        }
        let dctx = sized(&mut self.dctx, r * inner);
        matmul((r, dim, inner), plain(dout), tr(wo), dctx, false);
        // Backward through the attention rows.
        let dq = zeroed(&mut self.dq, r * inner);
        let dk = zeroed(&mut self.dk, m * inner);
        let dv = zeroed(&mut self.dv, m * inner);
        let dp = zeroed(&mut self.dp, n);
        for s in 0..b {
            let len = self.lengths[s];
            for h in 0..heads {
                let rows = head_rows(s * n * inner + h * hk, inner, hk);
                for a in 0..p {
                    let row = &probs[((s * heads + h) * p + a) * n..][..len];
                    let qo = (s * p + a) * inner + h * hk;
                    let ds = &mut dp[..len];
                    softmax_rows::value_grads(
                        row,
                        &dctx[qo..qo + hk],
                        &self.v,
                        rows,
                        scale,
                        dv,
                        ds,
                    );
                    let (q, dq) = (&self.q[qo..qo + hk], &mut dq[qo..qo + hk]);
                    softmax_rows::key_query_grads(ds, q, &self.k, rows, dq, dk);
                }
            }
        }
        // Backward through the projections.
        matmul((dim, r, inner), tr(&self.xp), plain(dq), gq, false);
        matmul((dim, m, inner), tr(&self.x), plain(dk), gk, false);
        matmul((dim, m, inner), tr(&self.x), plain(dv), gv, false);
    }
}
