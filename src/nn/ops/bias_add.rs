//! Bias addition over rows, with a sequential column sum for its backward pass.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor, WithDType};

use super::{tensor_values, values};

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
