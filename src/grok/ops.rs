//! Fused CPU kernels of the transformer, with hand-written backward passes
//! (see [`crate::layer::ops`] for why): layer norm, causal multi-head
//! softmax attention read straight from the fused Q|K|V projection, and bias
//! addition. Work is split over rows with rayon; sums across rows are added
//! in a fixed order, so results do not depend on the number of threads.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};

use rayon::prelude::*;

use crate::layer::ops::{tensor_values, values};

/// y = (x − μ)/√(σ² + ε) · w + b over the last dimension.
pub(crate) struct LayerNormOp {
    pub eps: f64,
}

/// Rows (layer norm) or samples (attention) per parallel work unit.
const ROWS: usize = 64;

impl LayerNormOp {
    /// (mean, 1/√(σ² + ε)) of one row.
    #[inline(always)]
    fn stats<T: WithDType>(&self, x: &[T]) -> (T, T) {
        let d = T::from_f64(x.len() as f64);
        let mean = sum8(x, |v| v) / d;
        let ss = sum8(x, |v| (v - mean) * (v - mean));
        let var = (ss / d).to_f64();
        (mean, T::from_f64(1.0 / (var + self.eps).sqrt()))
    }

    fn fwd<T: WithDType>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let mut out = vec![T::zero(); x.len()];
        self.fwd_into(x, w, b, &mut out);
        out
    }

    /// The forward pass into `out` (the length of x).
    pub(crate) fn fwd_into<T: WithDType>(&self, x: &[T], w: &[T], b: &[T], out: &mut [T]) {
        let d = w.len();
        out.par_chunks_mut(d * ROWS)
            .zip(x.par_chunks(d * ROWS))
            .for_each(|(o, xs)| self.fwd_rows(xs, w, b, o));
    }

    /// The forward pass on this thread (the fused engine's shards).
    #[inline(always)]
    pub(crate) fn fwd_rows<T: WithDType>(&self, x: &[T], w: &[T], b: &[T], out: &mut [T]) {
        let d = w.len();
        for (orow, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let (mean, rstd) = self.stats(row);
            for q in 0..d {
                orow[q] = (row[q] - mean) * rstd * w[q] + b[q];
            }
        }
    }

    /// (dx, dw, db).
    fn bwd<T: WithDType>(&self, x: &[T], w: &[T], g: &[T]) -> (Vec<T>, Vec<T>, Vec<T>) {
        let mut dx = vec![T::zero(); x.len()];
        let (dw, db) = self.bwd_into(x, w, g, &mut dx);
        (dx, dw, db)
    }

    /// The backward pass: dx written into `dx` (every entry), (dw, db) returned.
    pub(crate) fn bwd_into<T: WithDType>(
        &self,
        x: &[T],
        w: &[T],
        g: &[T],
        dx: &mut [T],
    ) -> (Vec<T>, Vec<T>) {
        let d = w.len();
        // Per-chunk partial sums, added in chunk order: results do not depend
        // on the threads.
        let partials: Vec<(Vec<T>, Vec<T>)> = dx
            .par_chunks_mut(d * ROWS)
            .zip(x.par_chunks(d * ROWS))
            .zip(g.par_chunks(d * ROWS))
            .map(|((dxs, xs), gs)| {
                let mut dw = vec![T::zero(); d];
                let mut db = vec![T::zero(); d];
                self.bwd_rows(xs, w, gs, dxs, &mut dw, &mut db);
                (dw, db)
            })
            .collect();
        let mut dw = vec![T::zero(); d];
        let mut db = vec![T::zero(); d];
        for (a, b) in &partials {
            for q in 0..d {
                dw[q] += a[q];
                db[q] += b[q];
            }
        }
        (dw, db)
    }

    /// The backward pass on this thread (the fused engine's shards): dx
    /// written, the rows' (dw, db) added into `dw`, `db`.
    #[inline(always)]
    pub(crate) fn bwd_rows<T: WithDType>(
        &self,
        x: &[T],
        w: &[T],
        g: &[T],
        dx: &mut [T],
        dw: &mut [T],
        db: &mut [T],
    ) {
        let d = w.len();
        let mut xhat = vec![T::zero(); d];
        let mut gx = vec![T::zero(); d];
        let inv_d = T::from_f64(1.0 / d as f64);
        for ((dxr, row), gr) in dx
            .chunks_exact_mut(d)
            .zip(x.chunks_exact(d))
            .zip(g.chunks_exact(d))
        {
            let (mean, rstd) = self.stats(row);
            for q in 0..d {
                xhat[q] = (row[q] - mean) * rstd;
                dw[q] += gr[q] * xhat[q];
                db[q] += gr[q];
                gx[q] = gr[q] * w[q];
            }
            let m1 = sum8(&gx, |v| v) * inv_d;
            let m2 = dot8(&gx, &xhat) * inv_d;
            for q in 0..d {
                dxr[q] = rstd * (gx[q] - m1 - xhat[q] * m2);
            }
        }
    }
}

/// Σ f(x_i), summed in eight lanes (which the compiler keeps in vector
/// registers; one running sum would be a chain of dependent additions).
#[inline(always)]
pub(crate) fn sum8<T: WithDType>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += f(c[i]);
        }
    }
    let mut s = T::zero();
    for a in acc {
        s += a;
    }
    for &v in rest {
        s += f(v);
    }
    s
}

/// Σ a_i b_i in eight lanes, as [`sum8`].
#[inline(always)]
pub(crate) fn dot8<T: WithDType>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = T::zero();
    for a in acc {
        s += a;
    }
    for (&x, &y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "grok-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let st = match s1.dtype() {
            DType::F32 => CpuStorage::F32(self.fwd(
                values::<f32>(s1, l1)?,
                values::<f32>(s2, l2)?,
                values::<f32>(s3, l3)?,
            )),
            DType::F64 => CpuStorage::F64(self.fwd(
                values::<f64>(s1, l1)?,
                values::<f64>(s2, l2)?,
                values::<f64>(s3, l3)?,
            )),
            dt => candle_core::bail!("layer norm supports f32 and f64, got {dt:?}"),
        };
        Ok((st, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        fn go<T: WithDType>(
            op: &LayerNormOp,
            x: &Tensor,
            w: &Tensor,
            g: &Tensor,
        ) -> Result<(Tensor, Tensor, Tensor)> {
            let (dx, dw, db) = op.bwd(
                &tensor_values::<T>(x)?,
                &tensor_values::<T>(w)?,
                &tensor_values::<T>(g)?,
            );
            Ok((
                Tensor::from_vec(dx, x.shape(), x.device())?,
                Tensor::from_vec(dw, w.shape(), w.device())?,
                Tensor::from_vec(db, w.shape(), w.device())?,
            ))
        }
        let (dx, dw, db) = match x.dtype() {
            DType::F32 => go::<f32>(self, x, w, g)?,
            DType::F64 => go::<f64>(self, x, w, g)?,
            dt => candle_core::bail!("layer norm supports f32 and f64, got {dt:?}"),
        };
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Fused layer norm of `x` (last dimension D) with weight and bias (D).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNormOp { eps })
}

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

    /// The attention probabilities of query r of head j in sample `s`
    /// (s = the sample's n×3D values), into `p` (length r + 1).
    #[inline(always)]
    fn probs<T: WithDType>(&self, s: &[T], r: usize, j: usize, d: usize, p: &mut Vec<f64>) {
        let dh = d / self.heads;
        let scale = 1.0 / (dh as f64).sqrt();
        let q = &s[r * 3 * d + j * dh..r * 3 * d + (j + 1) * dh];
        p.clear();
        let mut mx = f64::NEG_INFINITY;
        for k in 0..=r {
            let kk = &s[k * 3 * d + d + j * dh..k * 3 * d + d + (j + 1) * dh];
            let v = dot8(q, kk).to_f64() * scale;
            mx = mx.max(v);
            p.push(v);
        }
        let mut z = 0.0;
        for v in p.iter_mut() {
            *v = (*v - mx).exp();
            z += *v;
        }
        for v in p.iter_mut() {
            *v /= z;
        }
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
                let oj = &mut o[j * dh..(j + 1) * dh];
                for (k, &pk) in p.iter().enumerate() {
                    let pk = T::from_f64(pk);
                    let v = &s[k * 3 * d + 2 * d + j * dh..k * 3 * d + 2 * d + (j + 1) * dh];
                    for (oe, &ve) in oj.iter_mut().zip(v) {
                        *oe += pk * ve;
                    }
                }
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
        for (ri, r) in self.rows(n).enumerate() {
            let gr = &gb[ri * d..(ri + 1) * d];
            for j in 0..h {
                self.probs(s, r, j, d, p);
                let gj = &gr[j * dh..(j + 1) * dh];
                // dp_k = g·v_k; dv_k += p_k g; ds_k = p_k (dp_k − Σ p dp).
                let mut pdp = 0.0;
                for (k, &pk) in p.iter().enumerate() {
                    let vo = k * 3 * d + 2 * d + j * dh;
                    let pkt = T::from_f64(pk);
                    for (e, &ge) in gj.iter().enumerate() {
                        dx[vo + e] += pkt * ge;
                    }
                    ds[k] = dot8(gj, &s[vo..vo + dh]).to_f64();
                    pdp += pk * ds[k];
                }
                let qo = r * 3 * d + j * dh;
                for (k, &pk) in p.iter().enumerate() {
                    let dsk = T::from_f64(pk * (ds[k] - pdp) * scale);
                    let ko = k * 3 * d + d + j * dh;
                    for e in 0..dh {
                        // d q_r += ds_k k_k; d k_k += ds_k q_r.
                        let (qe, ke) = (s[qo + e], s[ko + e]);
                        dx[qo + e] += dsk * ke;
                        dx[ko + e] += dsk * qe;
                    }
                }
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

/// x + b with b broadcast over the rows of x (…×C); the backward pass sums
/// the gradient's rows in one sequential sweep (candle's broadcast backward
/// reduces over a strided dimension, several times slower).
struct BiasAdd;

impl BiasAdd {
    fn fwd<T: WithDType>(x: &[T], b: &[T]) -> Vec<T> {
        let c = b.len();
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(c) {
            for (o, &bv) in row.iter_mut().zip(b) {
                *o += bv;
            }
        }
        out
    }

    fn col_sums<T: WithDType>(g: &[T], c: usize) -> Vec<T> {
        let mut s = vec![T::zero(); c];
        for row in g.chunks_exact(c) {
            for (a, &v) in s.iter_mut().zip(row) {
                *a += v;
            }
        }
        s
    }
}

impl candle_core::CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "grok-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let st = match s1.dtype() {
            DType::F32 => {
                CpuStorage::F32(Self::fwd(values::<f32>(s1, l1)?, values::<f32>(s2, l2)?))
            }
            DType::F64 => {
                CpuStorage::F64(Self::fwd(values::<f64>(s1, l1)?, values::<f64>(s2, l2)?))
            }
            dt => candle_core::bail!("bias add supports f32 and f64, got {dt:?}"),
        };
        Ok((st, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let c = b.elem_count();
        let db = match g.dtype() {
            DType::F32 => Tensor::from_vec(
                Self::col_sums(&tensor_values::<f32>(g)?, c),
                b.shape(),
                b.device(),
            )?,
            DType::F64 => Tensor::from_vec(
                Self::col_sums(&tensor_values::<f64>(g)?, c),
                b.shape(),
                b.device(),
            )?,
            dt => candle_core::bail!("bias add supports f32 and f64, got {dt:?}"),
        };
        Ok((Some(g.clone()), Some(db)))
    }
}

/// x + b, b (C) broadcast over the rows of x (…×C), fused on the CPU.
pub fn bias_add(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let c = x.dims().last().copied().unwrap_or(0);
    if b.dims() != [c] {
        candle_core::bail!("bias add: bias {:?} for input {:?}", b.dims(), x.dims());
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, BiasAdd)
}
