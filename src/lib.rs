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
//! - [`solver`]: FISTA, working sets, gap-safe screening, certificates, paths;
//! - [`recovery`]: attention heads from a convex solution, and the nonconvex objective;
//! - [`sequence`]: the sequence-output program (SPEC §4c), certified, with its heads;
//! - [`baselines`], [`layer`], [`grok`], [`teacher`]: nonconvex baselines, the
//!   convex-attention layer, and the paper's two experiments;
//! - [`model`], [`report`], [`plot`]: saving, reporting and drawing results.

pub mod baselines;
pub mod bench;
pub mod cli;
pub mod data;
pub mod error;
pub mod grok;
pub mod layer;
pub mod loss;
pub mod model;
pub mod operator;
pub mod penalty;
pub mod plot;
pub mod problem;
pub mod recovery;
pub mod report;
pub mod sequence;
pub mod solver;
pub mod teacher;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{Error, Result};
