//! The linear maps of the convex programs and their adjoints, fused into one
//! pass over the data.
//!
//! A *block* b is a group of d coefficients per output that multiplies one d-
//! vector of each sample: token k for SPEC §4a–b (blocks = tokens), or the
//! pair (gate p, token k) for §4d, where the sample's token row is multiplied by
//! its gate indicator D_p(X_i) ∈ {0, 1}. Predictions are
//! ŷ_{i,l} = b_l + Σ_b ⟨x_{i,b}, z_{b,l}⟩.

pub mod gates;
mod kernels;
mod token;

pub use gates::{GateKind, GateSpec, Gates};
pub use token::{GateMasks, TokenOperator};

/// Buffers of one fused pass, allocated once per solve and reused: a pass
/// allocates nothing.
#[derive(Debug, Default)]
pub struct PassBuffers {
    /// ŷ, N×c.
    pub yhat: Vec<f64>,
    /// ∇_ŷ L per sample, N×c.
    pub sample_grad: Vec<f64>,
    /// Σ_i x_{i,b} ⊗ ∇L_i for each adjoint block, positional (|adj|·c·d).
    pub block_grad: Vec<f64>,
    /// Σ_i ∇L_i (the intercept gradient), c.
    pub intercept_grad: Vec<f64>,
    /// Per-chunk partial sums of `block_grad` and `intercept_grad`.
    pub(crate) partials: Vec<Vec<f64>>,
    /// Per-chunk loss sums, added in a fixed order so results do not depend
    /// on the thread count.
    pub(crate) chunk_loss: Vec<f64>,
}

#[cfg(test)]
mod tests;
