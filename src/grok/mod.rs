//! The grokking experiment (issue #5): modular arithmetic (Power et al.
//! 2022) learned by (a) a standard decoder-only transformer, (b) the same
//! network with convex attention ([`crate::layer`]), and (c) the one-layer
//! global convex model of SPEC §4d solved to a certified gap.
//!
//! - [`data`]: every pair x ∘ y mod p, the split, one-hot encodings;
//! - [`model`]: the transformer (softmax or convex attention);
//! - [`train`]: AdamW training with evaluation of train/validation curves;
//! - [`global`]: model (c) along a β path, with certificates.
//!
//! [`milestones`] reads a curve: the first step (and training second) at
//! which train and validation accuracy reach 99%, and the grokking gap
//! val99 − train99 (in steps and seconds), the length of the memorization
//! plateau. `convexformer grok` (src/cli/grok.rs) runs the comparison and
//! writes curves.csv, summary.json and a plot; the typed curves and run
//! summaries it writes are in `crate::experiments::grok`.
//!
//! Models (a) and (b) are trained end to end: nonconvex, nothing certified.
//! Only model (c) is a convex program, and its x-axis is the β path (see
//! [`global`]), not optimizer steps.

pub mod bench;
pub mod data;
pub mod global;
pub mod model;
pub mod train;

#[cfg(test)]
mod tests;

pub use data::{ModOp, ModularTask};
pub use global::{run_global, GlobalConfig, GlobalRun};
pub use model::{AttentionKind, Transformer, TransformerConfig};
pub use train::{
    train, train_with, PenaltyMode, Record, TrainConfig, TrainHooks, TrainRun, TrainState,
};

use crate::error::{invalid, Result};

/// The three models of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelChoice {
    /// (a) softmax attention.
    Standard,
    /// (b) convex attention.
    Convex,
    /// (c) the global convex model (SPEC §4d).
    Global,
}

impl ModelChoice {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "standard" | "softmax" => Ok(ModelChoice::Standard),
            "convex" => Ok(ModelChoice::Convex),
            "global" => Ok(ModelChoice::Global),
            _ => invalid(format!(
                "unknown model '{s}': use standard, convex or global (or a comma list)"
            )),
        }
    }

    /// A comma list, duplicates removed, order kept.
    pub fn parse_list(s: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let m = Self::parse(part)?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
        if out.is_empty() {
            return invalid("no model given: use standard, convex or global (or a comma list)");
        }
        Ok(out)
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelChoice::Standard => "standard",
            ModelChoice::Convex => "convex",
            ModelChoice::Global => "global",
        }
    }
}

/// Where a curve first reaches 99% accuracy.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Milestones {
    pub train99_step: Option<usize>,
    pub train99_seconds: Option<f64>,
    pub val99_step: Option<usize>,
    pub val99_seconds: Option<f64>,
    /// val99 − train99 in steps (None unless both were reached).
    pub grok_gap_steps: Option<i64>,
    pub grok_gap_seconds: Option<f64>,
}

/// The accuracy threshold of the milestones.
pub const THRESHOLD: f64 = 0.99;

/// One curve point: (step, seconds, train accuracy, validation accuracy).
pub type CurvePoint = (usize, f64, f64, f64);

/// Milestones of a curve.
pub fn milestones(points: &[CurvePoint]) -> Milestones {
    let first = |f: fn(&CurvePoint) -> bool| points.iter().find(|p| f(p)).map(|p| (p.0, p.1));
    let tr = first(|p| p.2 >= THRESHOLD);
    let va = first(|p| p.3 >= THRESHOLD);
    Milestones {
        train99_step: tr.map(|t| t.0),
        train99_seconds: tr.map(|t| t.1),
        val99_step: va.map(|t| t.0),
        val99_seconds: va.map(|t| t.1),
        grok_gap_steps: tr.zip(va).map(|(t, v)| v.0 as i64 - t.0 as i64),
        grok_gap_seconds: tr.zip(va).map(|(t, v)| v.1 - t.1),
    }
}

/// Milestones of a training run.
pub fn run_milestones(records: &[Record]) -> Milestones {
    let pts: Vec<_> = records
        .iter()
        .map(|r| (r.step, r.seconds, r.train_acc, r.val_acc))
        .collect();
    milestones(&pts)
}
