//! convexformer: attention heads trained through their convex reformulation
//! (Ergen, Neyshabur, Mehta 2022, as corrected in SPEC.md), certified by a
//! duality gap, with the heads recovered and checked against the nonconvex
//! objective.
//!
//! The pieces, as in skglm (data fit × penalty × solver) and Clarabel
//! (problem data, cones, solver core):
//! - [`data`]: data sets, `.npz`/`.safetensors` readers, the synthetic generator;
//! - [`loss`]: per-sample losses with gradients and Fenchel conjugates;
//! - [`penalty`]: group penalties with their prox and dual norm;
//! - [`operator`]: the linear map Z ↦ (⟨X_i, Z⟩)_i of each model, fused with its adjoint;
//! - [`problem`]: a convex program = operator × loss × penalty × β;
//! - [`fit`]: the short path: `Fit::scalar().beta_frac(0.1).fit(&data)?`;
//! - [`solver`]: FISTA, working sets, gap-safe screening, certificates, paths;
//! - [`comm`]: data-parallel solves, one shard of the samples per process;
//! - [`recovery`]: attention heads from a convex solution, and the nonconvex objective;
//! - [`sequence`]: the sequence-output program (SPEC §4c), certified, with its heads;
//! - `baselines`, `layer`, `grok`, `teacher`: nonconvex baselines, the
//!   convex-attention layer, and the paper's two experiments;
//! - `experiments`: the experiments as library calls, typed configuration in,
//!   typed (serializable) results out: `compare` (convex vs simplex/softmax
//!   training) and the `grok` run summaries; the command line only parses,
//!   calls them and writes files;
//! - [`model`], [`report`], `plot`: saving, reporting and drawing results.
//!
//! Cargo features: the core above builds alone (`--no-default-features`);
//! `plot` (plotters), `nn` (candle: baselines, layer, grokking), `teacher`
//! (candle-transformers, tokenizers) and `cli` (the binary, all of them; the
//! default) add the rest. The command line lives in the binary, not here.

// The certified core: builds with `--no-default-features`.
pub mod atomic;
pub mod bench;
pub mod comm;
pub mod data;
pub mod error;
pub mod fit;
pub mod loss;
pub mod memory;
pub mod model;
pub mod operator;
pub mod penalty;
pub mod problem;
pub mod recovery;
pub mod report;
pub mod sequence;
pub mod solver;

// Behind features: figures, and everything built on candle.
#[cfg(feature = "nn")]
pub mod baselines;
#[cfg(feature = "nn")]
pub mod experiments;
#[cfg(feature = "nn")]
pub mod grok;
#[cfg(feature = "nn")]
pub mod layer;
#[cfg(feature = "nn")]
pub mod nn;
#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "teacher")]
pub mod teacher;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{Error, Result};
