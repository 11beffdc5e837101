//! Products with a constant (the data): candle's matmul computes the
//! gradients of both operands in the backward pass, including the data's,
//! which nothing needs and which costs as much as the useful half (a full
//! N·n×d product in simplex attention, per-sample batched products in
//! softmax attention). [`matmul_const_left`] and [`matmul_const_right`] are a
//! custom op whose backward pass computes the gradient of the parameter side
//! alone.

use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};

struct ConstMatmul {
    /// The constant operand, detached.
    c: Tensor,
    /// c·a (true) or a·c (false).
    c_on_left: bool,
}

/// The tensor of a CPU storage seen through a contiguous layout (copied).
fn tensor_of(s: &CpuStorage, l: &Layout) -> Result<Tensor> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("const-matmul needs a contiguous operand".into()))?;
    let st = match s {
        CpuStorage::F32(v) => CpuStorage::F32(v[start..end].to_vec()),
        CpuStorage::F64(v) => CpuStorage::F64(v[start..end].to_vec()),
        _ => {
            return Err(candle_core::Error::Msg(
                "const-matmul supports f32 and f64".into(),
            ))
        }
    };
    Ok(Tensor::from_storage(
        Storage::Cpu(st),
        l.shape().clone(),
        BackpropOp::none(),
        false,
    ))
}

impl CustomOp1 for ConstMatmul {
    fn name(&self) -> &'static str {
        "const-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let a = tensor_of(s, l)?;
        let out = if self.c_on_left {
            self.c.matmul(&a)?
        } else {
            a.matmul(&self.c)?
        };
        let out = out.contiguous()?;
        let shape = out.shape().clone();
        let (st, lay) = out.storage_and_layout();
        match &*st {
            Storage::Cpu(cs) => match lay.contiguous_offsets() {
                Some((0, end)) if end == cs_len(cs) => Ok((cs.clone(), shape)),
                _ => {
                    let t = tensor_of(cs, lay)?;
                    let (st2, _) = t.storage_and_layout();
                    match &*st2 {
                        Storage::Cpu(c2) => Ok((c2.clone(), shape)),
                        _ => unreachable!("a CPU tensor"),
                    }
                }
            },
            _ => Err(candle_core::Error::Msg(
                "const-matmul runs on the CPU".into(),
            )),
        }
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let ct = self.c.t()?;
        Ok(Some(if self.c_on_left {
            ct.matmul(grad)?
        } else {
            grad.matmul(&ct)?
        }))
    }
}

fn cs_len(cs: &CpuStorage) -> usize {
    match cs {
        CpuStorage::F32(v) => v.len(),
        CpuStorage::F64(v) => v.len(),
        _ => usize::MAX,
    }
}

/// c·a with the gradient flowing to `a` only.
pub fn matmul_const_left(c: &Tensor, a: &Tensor) -> Result<Tensor> {
    a.apply_op1(ConstMatmul {
        c: c.detach(),
        c_on_left: true,
    })
}

/// a·c with the gradient flowing to `a` only.
pub fn matmul_const_right(a: &Tensor, c: &Tensor) -> Result<Tensor> {
    a.apply_op1(ConstMatmul {
        c: c.detach(),
        c_on_left: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn const_matmul_matches_matmul_and_its_gradient() {
        let dev = Device::Cpu;
        let c = Tensor::arange(0.0f64, 24.0, &dev)
            .unwrap()
            .reshape((2, 3, 4))
            .unwrap();
        let a = Var::from_tensor(
            &(Tensor::arange(0.0f64, 8.0, &dev)
                .unwrap()
                .reshape((2, 1, 4))
                .unwrap()
                * 0.3)
                .unwrap(),
        )
        .unwrap();
        let ct = c.transpose(1, 2).unwrap();
        // a·cᵀ (batched, strided constant), then the plain matmul for reference.
        let y = matmul_const_right(a.as_tensor(), &ct).unwrap();
        let r = a.as_tensor().matmul(&ct).unwrap();
        let diff = (&y - &r)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(diff, 0.0);
        let w = Tensor::new(&[[[1.0f64, -2.0, 0.5]], [[0.3, 0.1, -1.0]]], &dev).unwrap();
        let g1 = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&r * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d = (g1.get(&a).unwrap() - g2.get(&a).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(d.to_scalar::<f64>().unwrap() < 1e-12);
        // c·a, 2-D.
        let c2 = Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]], &dev).unwrap();
        let a2 =
            Var::from_tensor(&Tensor::new(&[[1.0f64, 0.5], [-1.0, 2.0]], &dev).unwrap()).unwrap();
        let y2 = matmul_const_left(&c2, a2.as_tensor()).unwrap();
        assert_eq!(
            y2.to_vec2::<f64>().unwrap(),
            c2.matmul(a2.as_tensor()).unwrap().to_vec2::<f64>().unwrap()
        );
        let g = y2.sum_all().unwrap().backward().unwrap();
        // d/da Σ c·a = cᵀ·1.
        assert_eq!(
            g.get(&a2).unwrap().to_vec2::<f64>().unwrap(),
            vec![vec![9.0, 9.0], vec![12.0, 12.0]]
        );
    }
}
