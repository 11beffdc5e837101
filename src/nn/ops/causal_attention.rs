//! Causal multi-head softmax attention read straight from the fused
//! Q|K|V projection, forward and backward (the grokking transformer's).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::softmax_rows::{self, HeadRows};
use super::{tensor_values, values, ROWS};

/// Causal multi-head softmax attention on the fused projection
/// qkv = X·[W_Q | W_K | W_V] (B×n×3D, head j at columns j·d_h of each part):
/// out[b, r, j·d_h..] = Σ_{k≤r} softmax_k(q_r·k_k/√d_h) v_k, for every r
/// (B×n×D) or only r = n − 1 (`last`, B×D).
pub(crate) struct CausalAttention {
    pub heads: usize,
    pub last: bool,
}

impl CausalAttention {
    fn dims(&self, shape: &Shape) -> Result<(usize, usize, usize)> {
        let (b, n, d3) = shape.dims3()?;
        if d3 % 3 != 0 || (d3 / 3) % self.heads != 0 {
            candle_core::bail!("attention: qkv of shape {shape:?} for {} heads", self.heads);
        }
        Ok((b, n, d3 / 3))
    }

    fn rows(&self, n: usize) -> std::ops::Range<usize> {
        if self.last {
            n - 1..n
        } else {
            0..n
        }
    }

    /// Query r of head j, and the keys 0..=r, of a sample's n×3D rows.
    #[inline(always)]
    fn heads(&self, r: usize, j: usize, d: usize) -> (std::ops::Range<usize>, HeadRows, HeadRows) {
        let dh = d / self.heads;
        let q = r * 3 * d + j * dh;
        let at = |part: usize| HeadRows {
            offset: part * d + j * dh,
            stride: 3 * d,
            dh,
        };
        (q..q + dh, at(1), at(2))
    }

    /// The attention probabilities of query r of head j in sample `s`
    /// (s = the sample's n×3D values), into `p` (length r + 1).
    #[inline(always)]
    fn probs<T: WithDType>(&self, s: &[T], r: usize, j: usize, d: usize, p: &mut Vec<f64>) {
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        let (q, keys, _) = self.heads(r, j, d);
        p.resize(r + 1, 0.0);
        softmax_rows::probs(&s[q], s, keys, scale, p);
    }

    fn fwd<T: WithDType>(&self, x: &[T], b: usize, n: usize, d: usize) -> Vec<T> {
        let mut out = vec![T::zero(); b * self.rows(n).len() * d];
        self.fwd_into(x, n, d, &mut out);
        out
    }

    /// The forward pass into `out` (B×n×D, or B×D with `last`).
    pub(crate) fn fwd_into<T: WithDType>(&self, x: &[T], n: usize, d: usize, out: &mut [T]) {
        let nr = self.rows(n).len();
        out.par_chunks_mut(nr * d * ROWS)
            .zip(x.par_chunks(n * 3 * d * ROWS))
            .for_each(|(o, s)| self.fwd_rows(s, n, d, o));
    }

    /// The forward pass on this thread (the fused engine's shards).
    #[inline(always)]
    pub(crate) fn fwd_rows<T: WithDType>(&self, x: &[T], n: usize, d: usize, out: &mut [T]) {
        let nr = self.rows(n).len();
        out.fill(T::zero());
        let mut p = Vec::with_capacity(n);
        for (o, s) in out.chunks_exact_mut(nr * d).zip(x.chunks_exact(n * 3 * d)) {
            self.fwd_sample(s, n, d, o, &mut p);
        }
    }

    /// One sample's output rows `o` (zeroed) from its Q|K|V rows `s`.
    #[inline(always)]
    fn fwd_sample<T: WithDType>(&self, s: &[T], n: usize, d: usize, o: &mut [T], p: &mut Vec<f64>) {
        let (h, dh) = (self.heads, d / self.heads);
        for (ri, r) in self.rows(n).enumerate() {
            let o = &mut o[ri * d..(ri + 1) * d];
            for j in 0..h {
                self.probs(s, r, j, d, p);
                let (_, _, values) = self.heads(r, j, d);
                softmax_rows::mix(p, s, values, &mut o[j * dh..(j + 1) * dh]);
            }
        }
    }

    fn bwd<T: WithDType>(&self, x: &[T], g: &[T], n: usize, d: usize) -> Vec<T> {
        let mut dx = vec![T::zero(); x.len()];
        self.bwd_into(x, g, n, d, &mut dx);
        dx
    }

    /// The backward pass into `dx` (the shape of x; overwritten).
    pub(crate) fn bwd_into<T: WithDType>(
        &self,
        x: &[T],
        g: &[T],
        n: usize,
        d: usize,
        dx: &mut [T],
    ) {
        let nr = self.rows(n).len();
        dx.par_chunks_mut(n * 3 * d * ROWS)
            .zip(x.par_chunks(n * 3 * d * ROWS))
            .zip(g.par_chunks(nr * d * ROWS))
            .for_each(|((dx, s), gb)| self.bwd_rows(s, gb, n, d, dx));
    }

    /// The backward pass on this thread (the fused engine's shards).
    #[inline(always)]
    pub(crate) fn bwd_rows<T: WithDType>(
        &self,
        x: &[T],
        g: &[T],
        n: usize,
        d: usize,
        dx: &mut [T],
    ) {
        let nr = self.rows(n).len();
        dx.fill(T::zero());
        let (mut p, mut ds) = (Vec::with_capacity(n), vec![0.0; n]);
        for ((dx, s), gb) in dx
            .chunks_exact_mut(n * 3 * d)
            .zip(x.chunks_exact(n * 3 * d))
            .zip(g.chunks_exact(nr * d))
        {
            self.bwd_sample(s, gb, n, d, dx, &mut p, &mut ds);
        }
    }

    /// One sample's d(Q|K|V) rows `dx` (zeroed) from its rows `s` and the
    /// gradient `gb` of its output rows.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn bwd_sample<T: WithDType>(
        &self,
        s: &[T],
        gb: &[T],
        n: usize,
        d: usize,
        dx: &mut [T],
        p: &mut Vec<f64>,
        ds: &mut [f64],
    ) {
        let (h, dh) = (self.heads, d / self.heads);
        let scale = 1.0 / (dh as f64).sqrt();
        let mut dq = vec![T::zero(); dh];
        for (ri, r) in self.rows(n).enumerate() {
            let gr = &gb[ri * d..(ri + 1) * d];
            for j in 0..h {
                self.probs(s, r, j, d, p);
                let (q, keys, values) = self.heads(r, j, d);
                let ds = &mut ds[..=r];
                softmax_rows::value_grads(p, &gr[j * dh..(j + 1) * dh], s, values, scale, dx, ds);
                // This (row, head)'s query gradient is written once: its
                // region of dx is still zero.
                dq.fill(T::zero());
                softmax_rows::key_query_grads(ds, &s[q.clone()], s, keys, &mut dq, dx);
                dx[q].copy_from_slice(&dq);
            }
        }
    }
}

impl CustomOp1 for CausalAttention {
    fn name(&self) -> &'static str {
        "grok-causal-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, n, d) = self.dims(l.shape())?;
        let shape: Shape = if self.last {
            (b, d).into()
        } else {
            (b, n, d).into()
        };
        let st = match s.dtype() {
            DType::F32 => CpuStorage::F32(self.fwd(values::<f32>(s, l)?, b, n, d)),
            DType::F64 => CpuStorage::F64(self.fwd(values::<f64>(s, l)?, b, n, d)),
            dt => candle_core::bail!("attention supports f32 and f64, got {dt:?}"),
        };
        Ok((st, shape))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (_, n, d) = self.dims(x.shape())?;
        let dx = match x.dtype() {
            DType::F32 => Tensor::from_vec(
                self.bwd(&tensor_values::<f32>(x)?, &tensor_values::<f32>(g)?, n, d),
                x.shape(),
                x.device(),
            )?,
            DType::F64 => Tensor::from_vec(
                self.bwd(&tensor_values::<f64>(x)?, &tensor_values::<f64>(g)?, n, d),
                x.shape(),
                x.device(),
            )?,
            dt => candle_core::bail!("attention supports f32 and f64, got {dt:?}"),
        };
        Ok(Some(dx))
    }
}

/// Fused causal attention on `qkv` (B×n×3D): B×n×D, or B×D with `last`.
pub fn causal_attention(qkv: &Tensor, heads: usize, last: bool) -> Result<Tensor> {
    qkv.contiguous()?.apply_op1(CausalAttention { heads, last })
}
