//! Training steps per second of the grokking transformers at their default
//! size (division mod 97, half the pairs for training, D = 128, 4 heads,
//! batch 512, AdamW, f32), for `convexformer bench --training`. The same
//! networks and computation as `scripts/grok_pytorch.py`, so the two are
//! compared by running both back to back on one machine.

use super::data::{ModOp, ModularTask, SEQ_LEN};
use super::model::{AttentionKind, TransformerConfig};
use super::train::{train, TrainConfig};
use crate::error::Result;

/// One measured model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GrokBench {
    /// standard or convex.
    pub model: &'static str,
    pub layers: usize,
    pub steps: usize,
    /// Training seconds (evaluation excluded).
    pub seconds: f64,
    pub steps_per_second: f64,
}

/// Trains each of standard and convex attention with 1 and 2 layers for
/// `steps` steps and reports the training rate.
pub fn grok_training_benchmark(steps: usize) -> Result<Vec<GrokBench>> {
    let task = ModularTask::new(ModOp::Div, 97, 0.5, 0)?;
    let mut out = Vec::new();
    for (model, attention) in [
        ("standard", AttentionKind::Softmax),
        ("convex", AttentionKind::Convex),
    ] {
        for layers in [1, 2] {
            let config = TransformerConfig {
                vocab: task.vocab(),
                n_classes: task.p as usize,
                seq_len: SEQ_LEN,
                width: 128,
                heads: 4,
                layers,
                mlp_ratio: 4,
                attention,
            };
            let cfg = TrainConfig {
                steps,
                eval_every: steps,
                ..TrainConfig::default()
            };
            let run = train(config, &cfg, &task.train, &task.val, |_| {})?;
            out.push(GrokBench {
                model,
                layers,
                steps: run.steps,
                seconds: run.seconds,
                steps_per_second: run.steps_per_second,
            });
        }
    }
    Ok(out)
}

/// The results as a table.
pub fn grok_training_table(results: &[GrokBench]) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "grokking transformers: div mod 97, D=128, 4 heads, batch 512, AdamW, f32, {} threads\n{:<10} {:>6} {:>6} {:>9} {:>8}\n",
        rayon::current_num_threads(),
        "model",
        "layers",
        "steps",
        "seconds",
        "steps/s"
    );
    for r in results {
        let _ = writeln!(
            s,
            "{:<10} {:>6} {:>6} {:>9.3} {:>8.1}",
            r.model, r.layers, r.steps, r.seconds, r.steps_per_second
        );
    }
    s
}
