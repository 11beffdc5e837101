//! Fused CPU training of the grokking transformer (issue #13).
//!
//! - [`matmul`]: row-major products on slices through the `gemm` crate;
//! - [`transformer`]: the network's forward pass, cross-entropy and backward
//!   pass written out over buffers allocated once ([`Engine`]);
//! - [`adamw`]: AdamW over the flat parameter vector in one pass.
//!
//! What a profile of the candle training step showed (perf, 300 steps of the
//! default grokking model, 1 layer, f32): the matrix kernels were 46% of the
//! time; zeroing fresh buffers (memset) 7.5%, elementwise binary ops 7%,
//! copies for transposes and contiguity 4.4%, closures of candle's strided
//! ops ~10%, thread wake-ups 4%. Everything but the products is graph and
//! buffer overhead, which this engine does not have.

pub mod adamw;
pub mod checkpoint;
pub mod matmul;
#[cfg(test)]
mod tests;
pub mod transformer;

pub use adamw::AdamW;
pub use checkpoint::TrainState;
pub use transformer::Engine;
