//! Multi-head scaled dot-product attention composed of candle tensor ops:
//! any device, autograd through every input. It is the one softmax attention
//! of the project's candle models (the grokking transformer's composed path,
//! the teacher's frozen BERT layer and its softmax student); the fused CPU
//! kernels ([`super::ops::causal_attention()`], the engines' shard passes) are
//! checked against it.

use candle_core::{DType, Device, Result, Tensor, D};

/// (B, n, H·d_h) → (B, H, n, d_h), contiguous.
pub fn split_heads(t: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, d) = t.dims3()?;
    if heads == 0 || d % heads != 0 {
        candle_core::bail!("attention: width {d} is not a multiple of {heads} heads");
    }
    t.reshape((b, n, heads, d / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// (B, H, n, d_h) → (B, n, H·d_h), contiguous.
pub fn merge_heads(t: &Tensor) -> Result<Tensor> {
    let (b, h, n, dh) = t.dims4()?;
    t.transpose(1, 2)?.contiguous()?.reshape((b, n, h * dh))
}

/// (softmax(q kᵀ/√d_h + bias) v, the probabilities) for q, k, v of shape
/// (B, H, n, d_h); `bias` is added to the (B, H, n, n) scores with
/// broadcasting (a causal or padding mask).
///
/// It uses `softmax`, not `softmax_last_dim`: the latter has no backward
/// pass (candle_nn applies it with `apply_op1_no_bwd`), so a graph through it
/// gives the queries and keys no gradient.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let dh = q.dim(D::Minus1)?;
    let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?;
    let scores = match bias {
        Some(b) => scores.broadcast_add(b)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
    Ok((probs.matmul(v)?, probs))
}

/// The causal mask of `n` tokens (n×n): 0 where visible, −1e9 above the
/// diagonal.
pub fn causal_bias(n: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let m: Vec<f64> = (0..n * n)
        .map(|i| if i % n > i / n { -1e9 } else { 0.0 })
        .collect();
    Tensor::from_slice(&m, (n, n), dev)?.to_dtype(dtype)
}

/// The padding mask of a key mask (B×n, 1 = token, 0 = padding) as BERT adds
/// it to the scores: 0 on tokens and −1e9 on padding, B×1×1×n, f32.
pub fn padding_bias(mask: &Tensor) -> Result<Tensor> {
    let (b, n) = mask.dims2()?;
    let m = mask.to_dtype(DType::F32)?;
    ((m - 1.0)? * 1e9)?.reshape((b, 1, 1, n))
}
