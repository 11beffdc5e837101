//! The fused CPU kernels, in one place, with hand-written backward passes.
//!
//! candle's autograd differentiates the permutes, narrows and broadcasts of a
//! composed implementation through many small strided copies, which on the
//! CPU costs several times the useful arithmetic for the short sequences
//! (n = 4) of the grokking experiment. These custom ops compute the same
//! functions in one pass each, forward and backward; tests compare them with
//! the composed versions and with finite differences (f64).
//!
//! - [`layer_norm()`], [`causal_attention()`], [`bias_add()`]: the grokking
//!   transformer's;
//! - [`token_mix()`]: the convex-attention layer's mixing;
//! - [`const_matmul`]: products with the data, whose gradient nothing needs
//!   (the `compare` baselines);
//! - `softmax_rows`: one query's softmax attention, forward and backward,
//!   the arithmetic of every fused softmax attention (the causal attention
//!   above, and the teacher student's step, which reads only the positions
//!   its loss needs).
//!
//! Their serial cores (`fwd_rows`/`bwd_rows`) are also what the fused engine
//! ([`crate::nn::transformer`]) runs per shard. Inputs must be contiguous
//! (callers make them so) and f32 or f64; the ops run on the CPU only (the
//! composed path is used elsewhere). Work is split over rows with rayon; sums
//! across rows are added in a fixed order, so results do not depend on the
//! number of threads.

use candle_core::{CpuStorage, Layout, Result, Tensor, WithDType};

pub mod bias_add;
pub mod causal_attention;
pub mod const_matmul;
pub mod layer_norm;
pub(crate) mod softmax_rows;
pub mod token_mix;

pub use bias_add::bias_add;
pub use causal_attention::causal_attention;
pub(crate) use causal_attention::CausalAttention;
pub use const_matmul::{matmul_const_left, matmul_const_right};
pub use layer_norm::layer_norm;
pub(crate) use layer_norm::LayerNormOp;
pub use token_mix::token_mix;
pub(crate) use token_mix::TokenMix;

/// Rows or samples per parallel work unit.
const ROWS: usize = 64;

/// The contiguous values of a CPU storage seen through `l`.
pub(crate) fn values<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused op: input must be contiguous".into()))?;
    Ok(&s.as_slice::<T>()?[a..b])
}

/// The values of a tensor as a Vec (copied, contiguous).
pub(crate) fn tensor_values<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
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
