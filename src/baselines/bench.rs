//! Training steps per second of the baselines (`convexformer bench --training`),
//! on one fixed size matching `scripts/bench_pytorch.py`: N = 1000 samples,
//! n = 16 tokens, d = 32 features, h = 8 heads, c = 1 output, squared loss,
//! full-batch Adam, f32 and f64. A step is one forward pass, one backward pass
//! and one optimizer update (and, for projected simplex attention, the
//! projection of the attention rows). Each case runs for a time budget split
//! into windows; the best and the median window are reported (on a shared
//! machine the best is the least disturbed).

use super::{
    train, Baseline, Decay, Flow, ModelKind, Objective, OptimizerKind, Parametrization, Precision,
};
use crate::data::synthetic::{generate, SyntheticSpec, TargetKind};
use crate::error::Result;
use crate::loss::Loss;
use crate::recovery::OutputNorm;

/// The benchmark size.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TrainingSize {
    pub n_samples: usize,
    pub n_tokens: usize,
    pub n_features: usize,
    pub heads: usize,
    pub n_outputs: usize,
}

/// N=1000, n=16, d=32, h=8, c=1.
pub const TRAINING_SIZE: TrainingSize = TrainingSize {
    n_samples: 1000,
    n_tokens: 16,
    n_features: 32,
    heads: 8,
    n_outputs: 1,
};

/// One measured case.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainingBench {
    /// simplex-logits, simplex-projected or softmax.
    pub method: String,
    pub dtype: &'static str,
    pub steps: usize,
    /// Training seconds (evaluation excluded).
    pub seconds: f64,
    /// The best of the windows' steps per second (the least disturbed, on a
    /// shared machine).
    pub best_steps_per_second: f64,
    /// Their median.
    pub median_steps_per_second: f64,
}

/// Times every model and dtype for about `seconds` each, split into
/// `windows` windows of equal time whose steps per second are reported as
/// best and median.
pub fn training_benchmark(
    size: &TrainingSize,
    seconds: f64,
    windows: usize,
) -> Result<Vec<TrainingBench>> {
    let spec = SyntheticSpec {
        n_samples: size.n_samples,
        n_tokens: size.n_tokens,
        n_features: size.n_features,
        n_outputs: size.n_outputs,
        active: 4.min(size.n_tokens),
        noise: 0.1,
        seed: 0,
        kind: TargetKind::Real,
        rho: 0.0,
        decay: 0.0,
    };
    let (data, _) = generate(&spec)?;
    let obj = Objective {
        loss: Loss::Squared,
        beta: 1.0,
        output_norm: OutputNorm::L1,
        intercept: false,
    };
    let windows = windows.max(1);
    let mut out = Vec::new();
    for (model, par) in [
        (ModelKind::Simplex, Parametrization::Logits),
        (ModelKind::Simplex, Parametrization::Projected),
        (ModelKind::Softmax, Parametrization::Logits),
    ] {
        for precision in [Precision::F32, Precision::F64] {
            let cfg = Baseline {
                model,
                heads: size.heads,
                parametrization: par,
                precision,
                optimizer: OptimizerKind::Adam,
                lr: 1e-3,
                warmup_steps: 0,
                decay: Decay::Constant,
                max_steps: None,
                budget_seconds: Some(seconds),
                record_points: 8 * windows,
                ..Baseline::default()
            };
            // A few untimed steps first (allocation, caches).
            let warm = Baseline {
                max_steps: Some(3),
                budget_seconds: None,
                ..cfg.clone()
            };
            train(&warm, &obj, &data, None, |_| Ok(Flow::Continue))?;
            let r = train(&cfg, &obj, &data, None, |_| Ok(Flow::Continue))?;
            // Steps per second between the recorded points nearest to the
            // window boundaries.
            let at = |t: f64| {
                r.points
                    .iter()
                    .find(|p| p.seconds >= t)
                    .or(r.points.last())
                    .map(|p| (p.step, p.seconds))
                    .unwrap_or((0, 0.0))
            };
            let mut rates: Vec<f64> = (0..windows)
                .filter_map(|w| {
                    let (s0, t0) = at(seconds * w as f64 / windows as f64);
                    let (s1, t1) = at(seconds * (w + 1) as f64 / windows as f64);
                    (s1 > s0 && t1 > t0).then(|| (s1 - s0) as f64 / (t1 - t0))
                })
                .collect();
            if rates.is_empty() {
                rates.push(r.steps as f64 / r.seconds.max(1e-12));
            }
            rates.sort_by(f64::total_cmp);
            out.push(TrainingBench {
                method: cfg.method_name(),
                dtype: precision.name(),
                steps: r.steps,
                seconds: r.seconds,
                best_steps_per_second: rates[rates.len() - 1],
                median_steps_per_second: rates[rates.len() / 2],
            });
        }
    }
    Ok(out)
}

/// The results as a table, one line per case.
pub fn training_table(size: &TrainingSize, results: &[TrainingBench]) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "training benchmark: N={}, n={}, d={}, h={}, c={}, squared loss, full-batch Adam, {} threads\n{:<18} {:>5} {:>8} {:>9} {:>13} {:>10}\n",
        size.n_samples,
        size.n_tokens,
        size.n_features,
        size.heads,
        size.n_outputs,
        candle_core::utils::get_num_threads(),
        "model",
        "dtype",
        "steps",
        "seconds",
        "best steps/s",
        "median"
    );
    for r in results {
        let _ = writeln!(
            s,
            "{:<18} {:>5} {:>8} {:>9.3} {:>13.1} {:>10.1}",
            r.method,
            r.dtype,
            r.steps,
            r.seconds,
            r.best_steps_per_second,
            r.median_steps_per_second
        );
    }
    s
}
