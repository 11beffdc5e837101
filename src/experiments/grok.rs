//! Typed results of the grokking comparison (issue #5; `convexformer grok`).
//!
//! [`crate::grok`] trains the transformers ([`crate::grok::train`]) and
//! solves the global convex model along its β path
//! ([`crate::grok::run_global`]); this module turns each finished run into
//! its curve ([`Curve`], the rows of curves.csv) and its summary
//! ([`GrokRunSummary`], an entry of summary.json's `runs`). The summaries
//! serialize to the field names summary.json has always had, and read back
//! from it (`serde_json::from_str::<GrokRunSummary>`).

use serde::{Deserialize, Serialize};

use crate::report::nan_if_null;

use crate::grok::global::GlobalPoint;
use crate::grok::{
    milestones, run_milestones, AttentionKind, GlobalRun, Milestones, ModelChoice, ModularTask,
    Record, TrainRun,
};
use crate::solver::Certificate;

/// The program of the global model, in words.
pub const GLOBAL_PROGRAM: &str = "gated (SPEC §4d), one-hot tokens, cross-entropy, intercept";

/// One curve point of any model (a row of curves.csv).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveRow {
    /// Optimizer step; for the global model, the position on the β path.
    pub step: usize,
    /// Training seconds (evaluation excluded); global model: solver seconds.
    pub seconds: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    pub train_acc: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub val_loss: f64,
    pub val_acc: f64,
    /// Global model: β at this point.
    pub beta: Option<f64>,
    /// Global model: the certified relative duality gap at this point.
    pub relative_gap: Option<f64>,
}

/// The curve of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub model: ModelChoice,
    pub layers: usize,
    pub seed: u64,
    pub rows: Vec<CurveRow>,
}

impl Curve {
    /// `standard L1 s0`, `convex L2 s1`, `global s0`.
    pub fn label(&self) -> String {
        match self.model {
            ModelChoice::Global => format!("global s{}", self.seed),
            m => format!("{} L{} s{}", m.name(), self.layers, self.seed),
        }
    }

    /// The curve of a trained transformer.
    pub fn from_train(model: ModelChoice, layers: usize, seed: u64, run: &TrainRun) -> Curve {
        Curve {
            model,
            layers,
            seed,
            rows: run.records.iter().map(Curve::row_of).collect(),
        }
    }

    /// The curve point of one evaluation of a transformer.
    pub fn row_of(r: &Record) -> CurveRow {
        CurveRow {
            step: r.step,
            seconds: r.seconds,
            train_loss: r.train_loss,
            train_acc: r.train_acc,
            val_loss: r.val_loss,
            val_acc: r.val_acc,
            beta: None,
            relative_gap: None,
        }
    }

    /// The curve of the global model along its β path.
    pub fn from_global(seed: u64, run: &GlobalRun) -> Curve {
        Curve {
            model: ModelChoice::Global,
            layers: 1,
            seed,
            rows: run
                .points
                .iter()
                .map(|p| CurveRow {
                    step: p.step,
                    seconds: p.seconds,
                    train_loss: p.train_loss,
                    train_acc: p.train_acc,
                    val_loss: p.val_loss,
                    val_acc: p.val_acc,
                    beta: Some(p.beta),
                    relative_gap: Some(p.certificate.relative_gap),
                })
                .collect(),
        }
    }
}

/// The summary of a trained transformer, model (a) or (b).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformerSummary {
    /// standard or convex.
    pub model: ModelChoice,
    pub attention: AttentionKind,
    pub layers: usize,
    pub seed: u64,
    pub steps: usize,
    /// Training seconds, evaluation excluded.
    pub train_seconds: f64,
    pub steps_per_second: f64,
    pub n_params: usize,
    pub diverged: bool,
    pub milestones: Milestones,
    pub final_train_acc: f64,
    pub final_val_acc: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub final_train_loss: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub final_val_loss: f64,
    pub best_val_acc: f64,
}

impl TransformerSummary {
    /// The summary of `run`, model `model` (standard or convex) with `layers` blocks.
    pub fn new(model: ModelChoice, layers: usize, seed: u64, run: &TrainRun) -> Self {
        let last = run.records.last().expect("a training run records its end");
        TransformerSummary {
            model,
            attention: if model == ModelChoice::Convex {
                AttentionKind::Convex
            } else {
                AttentionKind::Softmax
            },
            layers,
            seed,
            steps: run.steps,
            train_seconds: run.seconds,
            steps_per_second: run.steps_per_second,
            n_params: run.n_params,
            diverged: run.diverged,
            milestones: run_milestones(&run.records),
            final_train_acc: last.train_acc,
            final_val_acc: last.val_acc,
            final_train_loss: last.train_loss,
            final_val_loss: last.val_loss,
            best_val_acc: run.records.iter().map(|r| r.val_acc).fold(0.0, f64::max),
        }
    }
}

/// The summary of the global convex model (c) along its β path.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlobalSummary {
    /// Always global.
    pub model: ModelChoice,
    /// [`GLOBAL_PROGRAM`].
    pub program: String,
    pub layers: usize,
    pub seed: u64,
    /// β values solved (the path without its start at β_max).
    pub steps: usize,
    pub solver_seconds: f64,
    pub wall_seconds: f64,
    pub beta_max: f64,
    pub n_blocks: usize,
    pub n_features: usize,
    pub n_coefficients: usize,
    /// Along the path (step = position on it).
    pub milestones: Milestones,
    pub final_beta: f64,
    pub final_train_acc: f64,
    pub final_val_acc: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub final_train_loss: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub final_val_loss: f64,
    pub best_val_acc: f64,
    pub final_certificate: Certificate,
    /// Every β reached the gap tolerance.
    pub all_converged: bool,
    /// The largest relative gap over the path's solved β.
    pub worst_relative_gap: f64,
    pub path: Vec<GlobalPoint>,
}

impl GlobalSummary {
    /// The summary of `run` on `task` (gates seeded with `seed`).
    pub fn new(seed: u64, run: &GlobalRun, task: &ModularTask) -> Self {
        let pts: Vec<_> = run
            .points
            .iter()
            .map(|p| (p.step, p.seconds, p.train_acc, p.val_acc))
            .collect();
        let last = run.points.last().expect("a path has its start point");
        GlobalSummary {
            model: ModelChoice::Global,
            program: GLOBAL_PROGRAM.into(),
            layers: 1,
            seed,
            steps: run.points.len() - 1,
            solver_seconds: last.seconds,
            wall_seconds: run.seconds,
            beta_max: run.beta_max,
            n_blocks: run.n_blocks,
            n_features: run.n_features,
            n_coefficients: run.n_blocks * run.n_features * task.p as usize,
            milestones: milestones(&pts),
            final_beta: last.beta,
            final_train_acc: last.train_acc,
            final_val_acc: last.val_acc,
            final_train_loss: last.train_loss,
            final_val_loss: last.val_loss,
            best_val_acc: run.points.iter().map(|p| p.val_acc).fold(0.0, f64::max),
            final_certificate: last.certificate,
            all_converged: run.points.iter().all(|p| p.converged),
            worst_relative_gap: run.points[1..]
                .iter()
                .map(|p| p.certificate.relative_gap)
                .fold(0.0, f64::max),
            path: run.points.clone(),
        }
    }
}

/// An entry of summary.json's `runs`: a transformer or the global model
/// (untagged: both carry their `model` field).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GrokRunSummary {
    Transformer(TransformerSummary),
    Global(GlobalSummary),
}

impl GrokRunSummary {
    pub fn model(&self) -> ModelChoice {
        match self {
            GrokRunSummary::Transformer(t) => t.model,
            GrokRunSummary::Global(_) => ModelChoice::Global,
        }
    }
    pub fn seed(&self) -> u64 {
        match self {
            GrokRunSummary::Transformer(t) => t.seed,
            GrokRunSummary::Global(g) => g.seed,
        }
    }
    pub fn layers(&self) -> usize {
        match self {
            GrokRunSummary::Transformer(t) => t.layers,
            GrokRunSummary::Global(g) => g.layers,
        }
    }
    pub fn milestones(&self) -> &Milestones {
        match self {
            GrokRunSummary::Transformer(t) => &t.milestones,
            GrokRunSummary::Global(g) => &g.milestones,
        }
    }
    pub fn final_train_acc(&self) -> f64 {
        match self {
            GrokRunSummary::Transformer(t) => t.final_train_acc,
            GrokRunSummary::Global(g) => g.final_train_acc,
        }
    }
    pub fn final_val_acc(&self) -> f64 {
        match self {
            GrokRunSummary::Transformer(t) => t.final_val_acc,
            GrokRunSummary::Global(g) => g.final_val_acc,
        }
    }
    /// `standard L1 s0`, `global s0`, as [`Curve::label`].
    pub fn label(&self) -> String {
        match self {
            GrokRunSummary::Transformer(t) => {
                format!("{} L{} s{}", t.model.name(), t.layers, t.seed)
            }
            GrokRunSummary::Global(g) => format!("global s{}", g.seed),
        }
    }
}

/// summary.json's `task`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub op: String,
    pub formula: String,
    pub p: u32,
    pub train_fraction: f64,
    pub split_seed: u64,
    pub train_pairs: usize,
    pub validation_pairs: usize,
    pub vocab: usize,
}

impl TaskSummary {
    pub fn new(task: &ModularTask) -> Self {
        TaskSummary {
            op: task.op.name().into(),
            formula: task.op.formula().into(),
            p: task.p,
            train_fraction: task.train_frac,
            split_seed: task.split_seed,
            train_pairs: task.train.len(),
            validation_pairs: task.val.len(),
            vocab: task.vocab(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grok::train::Record;
    use crate::grok::{run_global, GlobalConfig, ModOp};

    fn record(step: usize, train_acc: f64, val_acc: f64, loss: f64) -> Record {
        Record {
            step,
            seconds: step as f64 * 0.01,
            train_loss: loss,
            train_acc,
            val_loss: loss,
            val_acc,
        }
    }

    #[test]
    fn transformer_summary_round_trips_with_the_old_field_names() {
        let run = TrainRun {
            records: vec![
                record(0, 0.1, 0.1, 2.0),
                record(10, 1.0, 0.5, 0.1),
                record(20, 1.0, 1.0, f64::NAN),
            ],
            steps: 20,
            seconds: 0.2,
            steps_per_second: 100.0,
            n_params: 1234,
            diverged: true,
            interrupted: false,
        };
        let s = TransformerSummary::new(ModelChoice::Convex, 2, 3, &run);
        assert_eq!(s.milestones.train99_step, Some(10));
        assert_eq!(s.milestones.val99_step, Some(20));
        assert_eq!(s.milestones.grok_gap_steps, Some(10));
        assert_eq!(s.best_val_acc, 1.0);
        let run_summary = GrokRunSummary::Transformer(s.clone());
        assert_eq!(run_summary.label(), "convex L2 s3");
        let v = serde_json::to_value(&run_summary).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "attention",
                "best_val_acc",
                "diverged",
                "final_train_acc",
                "final_train_loss",
                "final_val_acc",
                "final_val_loss",
                "layers",
                "milestones",
                "model",
                "n_params",
                "seed",
                "steps",
                "steps_per_second",
                "train_seconds",
            ]
        );
        assert_eq!(v["model"], "convex");
        assert_eq!(v["attention"], "convex");
        assert!(v["final_val_loss"].is_null());
        assert_eq!(v["milestones"]["val99_step"], 20);
        // Reads back, NaN written as null included.
        let back: GrokRunSummary = serde_json::from_value(v).unwrap();
        let GrokRunSummary::Transformer(t) = back else {
            panic!("a transformer summary read back as the global model")
        };
        assert!(t.final_val_loss.is_nan());
        assert_eq!(
            TransformerSummary {
                final_val_loss: 0.0,
                final_train_loss: 0.0,
                ..t
            },
            TransformerSummary {
                final_val_loss: 0.0,
                final_train_loss: 0.0,
                ..s
            }
        );
        let c = Curve::from_train(ModelChoice::Convex, 2, 3, &run);
        assert_eq!(c.rows.len(), 3);
        assert_eq!(c.label(), "convex L2 s3");
        assert!(c.rows.iter().all(|r| r.beta.is_none()));
    }

    #[test]
    fn global_summary_is_certified_and_round_trips() {
        let task = ModularTask::new(ModOp::Sub, 7, 0.6, 0).unwrap();
        let cfg = GlobalConfig {
            gates: 4,
            n_betas: 2,
            ..Default::default()
        };
        let run = run_global(&task, &cfg, 0, |_| {}).unwrap();
        let s = GlobalSummary::new(0, &run, &task);
        assert_eq!(s.steps, 2);
        assert_eq!(s.path.len(), 3);
        assert_eq!(s.n_coefficients, s.n_blocks * s.n_features * 7);
        assert!(s.final_certificate.relative_gap.is_finite());
        let v = serde_json::to_value(GrokRunSummary::Global(s.clone())).unwrap();
        assert_eq!(v["model"], "global");
        assert_eq!(v["program"], GLOBAL_PROGRAM);
        assert!(v["final_certificate"]["relative_gap"].is_f64());
        for k in [
            "solver_seconds",
            "wall_seconds",
            "beta_max",
            "n_blocks",
            "final_beta",
            "all_converged",
            "worst_relative_gap",
            "path",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        let back: GrokRunSummary = serde_json::from_value(v).unwrap();
        let GrokRunSummary::Global(g) = back else {
            panic!("the global summary read back as a transformer")
        };
        assert_eq!(g.path.len(), 3);
        assert_eq!(g.final_beta, s.final_beta);
        assert_eq!(g.all_converged, s.all_converged);
        let c = Curve::from_global(0, &run);
        assert_eq!(c.label(), "global s0");
        assert!(c.rows.iter().all(|r| r.relative_gap.is_some()));
        let t = TaskSummary::new(&task);
        assert_eq!((t.op.as_str(), t.train_pairs), ("sub", 29));
    }
}
