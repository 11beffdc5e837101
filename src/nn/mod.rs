//! What every network the project trains shares (issue #13).
//!
//! - [`train`]: the one training loop (minibatches, learning-rate schedule,
//!   optimizer on flat parameters, evaluations, stop, checkpoints, resume),
//!   run by the `compare` baselines, the grokking transformers and the
//!   teacher's softmax student;
//! - [`attention`]: multi-head softmax attention composed of candle ops (the
//!   reference the fused kernels are checked against);
//! - [`ops`]: the fused CPU kernels with hand-written backward passes;
//! - [`matmul`]: row-major products on slices through the `gemm` crate;
//! - [`transformer`]: the grokking network's forward pass, cross-entropy and
//!   backward pass written out over buffers allocated once ([`Engine`]);
//! - [`adamw`]: AdamW over the flat parameter vector in one pass;
//! - [`checkpoint`]: the saved state a run continues from.
//!
//! What a profile of the candle training step showed (perf, 300 steps of the
//! default grokking model, 1 layer, f32): the matrix kernels were 46% of the
//! time; zeroing fresh buffers (memset) 7.5%, elementwise binary ops 7%,
//! copies for transposes and contiguity 4.4%, closures of candle's strided
//! ops ~10%, thread wake-ups 4%. Everything but the products is graph and
//! buffer overhead, which this engine does not have.
//!
//! A second profile, of this engine (session of 2026-12-03; 2 threads,
//! default grokking model): 58% of the time in the product kernels, about
//! 8% in thread wake-ups and yields (every product and kernel was split
//! across the threads), and 2 threads ran only 1.4× as fast as one. The
//! engine now cuts each batch into shards run whole on one thread each
//! ([`transformer::SHARD_SEQUENCES`]), and runs each shard's passes in an
//! AVX2 build where the processor has it (layer norms, attention and
//! elementwise loops were baseline SSE2 code).

pub mod adamw;
pub mod attention;
pub mod checkpoint;
pub mod matmul;
pub mod ops;
#[cfg(test)]
mod tests;
pub mod train;
pub mod transformer;

pub use adamw::AdamW;

/// Whether this processor runs the AVX2 builds of the fused passes (the
/// grokking engine's and the teacher student's shards): the core's kernels'
/// test, one rule for the whole crate.
#[cfg(target_arch = "x86_64")]
pub(crate) use crate::operator::kernels::wide_vectors;
pub use checkpoint::TrainState;
pub use transformer::Engine;
