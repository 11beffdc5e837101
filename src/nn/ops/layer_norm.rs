//! Layer norm over the last dimension, fused: y = (x − μ)/√(σ² + ε)·w + b,
//! with its backward pass in one sweep per row.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::{dot8, sum8, tensor_values, values, ROWS};

/// y = (x − μ)/√(σ² + ε) · w + b over the last dimension.
pub(crate) struct LayerNormOp {
    pub eps: f64,
}

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
