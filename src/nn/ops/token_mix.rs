//! Token mixing per head (the convex-attention layer's learned row-stochastic
//! mixing), forward and backward.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::{dot8, tensor_values, values, ROWS};

/// Token mixing per head: out[b, r, j·dh + e] = Σ_k W[j, r, k] · xv[b, k, j·dh + e],
/// for every r (B×n×D) or only r = n − 1 (`last`, B×D).
pub(crate) struct TokenMix {
    pub heads: usize,
    pub last: bool,
}

impl TokenMix {
    fn dims(&self, xl: &Layout, wl: &Layout) -> Result<(usize, usize, usize)> {
        let (b, n, d) = xl.shape().dims3()?;
        let (h, n1, n2) = wl.shape().dims3()?;
        if h != self.heads || n1 != n || n2 != n || d % h != 0 {
            candle_core::bail!(
                "token mix: values {:?}, mixing {:?}, {} heads",
                xl.shape(),
                wl.shape(),
                self.heads
            );
        }
        Ok((b, n, d))
    }

    fn rows(&self, n: usize) -> std::ops::Range<usize> {
        if self.last {
            n - 1..n
        } else {
            0..n
        }
    }

    fn fwd<T: WithDType>(&self, x: &[T], w: &[T], b: usize, n: usize, d: usize) -> Vec<T> {
        let mut out = vec![T::zero(); b * self.rows(n).len() * d];
        self.fwd_into(x, w, n, d, &mut out);
        out
    }

    /// The forward pass into `out` (B×n×D, or B×D with `last`).
    pub(crate) fn fwd_into<T: WithDType>(
        &self,
        x: &[T],
        w: &[T],
        n: usize,
        d: usize,
        out: &mut [T],
    ) {
        let nr = self.rows(n).len();
        out.fill(T::zero());
        out.par_chunks_mut(nr * d * ROWS)
            .zip(x.par_chunks(n * d * ROWS))
            .for_each(|(o, xs)| self.fwd_rows(xs, w, n, d, o));
    }

    /// The forward pass on this thread (the fused engine's shards), added
    /// into `out`.
    #[inline(always)]
    pub(crate) fn fwd_rows<T: WithDType>(
        &self,
        x: &[T],
        w: &[T],
        n: usize,
        d: usize,
        out: &mut [T],
    ) {
        let h = self.heads;
        let dh = d / h;
        let rows = self.rows(n);
        let nr = rows.len();
        for (ob, xb) in out.chunks_exact_mut(nr * d).zip(x.chunks_exact(n * d)) {
            for (ri, r) in rows.clone().enumerate() {
                let o = &mut ob[ri * d..(ri + 1) * d];
                for j in 0..h {
                    let oj = &mut o[j * dh..(j + 1) * dh];
                    for k in 0..n {
                        let wv = w[(j * n + r) * n + k];
                        if wv == T::zero() {
                            continue;
                        }
                        let xk = &xb[k * d + j * dh..k * d + (j + 1) * dh];
                        for (oe, &xe) in oj.iter_mut().zip(xk) {
                            *oe += wv * xe;
                        }
                    }
                }
            }
        }
    }

    /// (d xv, d W).
    fn bwd<T: WithDType>(&self, x: &[T], w: &[T], g: &[T], n: usize, d: usize) -> (Vec<T>, Vec<T>) {
        let mut dx = vec![T::zero(); x.len()];
        let dw = self.bwd_into(x, w, g, n, d, &mut dx);
        (dx, dw)
    }

    /// The backward pass: d xv into `dx` (overwritten), d W returned.
    pub(crate) fn bwd_into<T: WithDType>(
        &self,
        x: &[T],
        w: &[T],
        g: &[T],
        n: usize,
        d: usize,
        dx: &mut [T],
    ) -> Vec<T> {
        let h = self.heads;
        let nr = self.rows(n).len();
        dx.fill(T::zero());
        // Per-chunk partial sums of dW, added in chunk order (results do not
        // depend on the threads).
        let partials: Vec<Vec<T>> = dx
            .par_chunks_mut(n * d * ROWS)
            .zip(x.par_chunks(n * d * ROWS))
            .zip(g.par_chunks(nr * d * ROWS))
            .map(|((dxc, xc), gc)| {
                let mut dw = vec![T::zero(); h * n * n];
                self.bwd_rows(xc, w, gc, n, d, dxc, &mut dw);
                dw
            })
            .collect();
        let mut dw = vec![T::zero(); h * n * n];
        for part in &partials {
            for (a, &v) in dw.iter_mut().zip(part) {
                *a += v;
            }
        }
        dw
    }

    /// The backward pass on this thread (the fused engine's shards): d xv
    /// added into `dx`, d W into `dw`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn bwd_rows<T: WithDType>(
        &self,
        x: &[T],
        w: &[T],
        g: &[T],
        n: usize,
        d: usize,
        dx: &mut [T],
        dw: &mut [T],
    ) {
        let h = self.heads;
        let dh = d / h;
        let rows = self.rows(n);
        let nr = rows.len();
        for ((dxb, xb), gb) in dx
            .chunks_exact_mut(n * d)
            .zip(x.chunks_exact(n * d))
            .zip(g.chunks_exact(nr * d))
        {
            for (ri, r) in rows.clone().enumerate() {
                let gr = &gb[ri * d..(ri + 1) * d];
                for j in 0..h {
                    let gj = &gr[j * dh..(j + 1) * dh];
                    for k in 0..n {
                        let wi = (j * n + r) * n + k;
                        let xk = &xb[k * d + j * dh..k * d + (j + 1) * dh];
                        dw[wi] += dot8(gj, xk);
                        let wv = w[wi];
                        if wv != T::zero() {
                            let dxk = &mut dxb[k * d + j * dh..k * d + (j + 1) * dh];
                            for (de, &ge) in dxk.iter_mut().zip(gj) {
                                *de += wv * ge;
                            }
                        }
                    }
                }
            }
        }
    }
}

impl CustomOp2 for TokenMix {
    fn name(&self) -> &'static str {
        "convex-token-mix"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, n, d) = self.dims(l1, l2)?;
        let shape: Shape = if self.last {
            (b, d).into()
        } else {
            (b, n, d).into()
        };
        let st = match s1.dtype() {
            DType::F32 => {
                CpuStorage::F32(self.fwd(values::<f32>(s1, l1)?, values::<f32>(s2, l2)?, b, n, d))
            }
            DType::F64 => {
                CpuStorage::F64(self.fwd(values::<f64>(s1, l1)?, values::<f64>(s2, l2)?, b, n, d))
            }
            dt => candle_core::bail!("token mix supports f32 and f64, got {dt:?}"),
        };
        Ok((st, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, n, d) = x.dims3()?;
        fn go<T: WithDType>(
            op: &TokenMix,
            x: &Tensor,
            w: &Tensor,
            g: &Tensor,
            (n, d): (usize, usize),
        ) -> Result<(Tensor, Tensor)> {
            let (dx, dw) = op.bwd(
                &tensor_values::<T>(x)?,
                &tensor_values::<T>(w)?,
                &tensor_values::<T>(g)?,
                n,
                d,
            );
            Ok((
                Tensor::from_vec(dx, x.shape(), x.device())?,
                Tensor::from_vec(dw, w.shape(), w.device())?,
            ))
        }
        let (dx, dw) = match x.dtype() {
            DType::F32 => go::<f32>(self, x, w, g, (n, d))?,
            DType::F64 => go::<f64>(self, x, w, g, (n, d))?,
            dt => candle_core::bail!("token mix supports f32 and f64, got {dt:?}"),
        };
        Ok((Some(dx), Some(dw)))
    }
}

/// The fused token mixing (`TokenMix`) on `xv` (B×n×D) and `w` (h×n×n).
pub fn token_mix(xv: &Tensor, w: &Tensor, heads: usize, last: bool) -> Result<Tensor> {
    xv.contiguous()?
        .apply_op2(&w.contiguous()?, TokenMix { heads, last })
}
