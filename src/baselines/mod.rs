//! Nonconvex baselines (issue #3): attention heads trained directly by
//! gradient methods with candle autograd, to compare with the certified
//! convex solve on equal terms.
//!
//! - [`simplex`]: simplex attention (SPEC §3), the nonconvex side of the convex
//!   programs; its objective can never fall below the certified lower bound;
//! - [`softmax`]: standard multi-head softmax attention (SPEC §2), a different
//!   model class;
//! - [`optim`]: Adam, AdamW, SGD with momentum (the learning-rate schedule
//!   and the minibatches are [`crate::nn::train`]'s);
//! - [`loss`]: the core's losses as tensor ops;
//! - [`bench`]: training steps per second.
//!
//! [`train`] runs one configuration and records, at intervals, the step, the
//! training seconds (evaluation excluded), the objective on the full training
//! set evaluated exactly in f64, and the train and test errors.
//!
//! Scaling: the trainer differentiates P/N (for a minibatch B:
//! (1/|B|) Σ_{i∈B} L_i + (1/N)·penalty, an unbiased estimate of P/N), so that
//! learning rates do not depend on N; the minimizers are those of P.

pub mod bench;
pub mod loss;
mod network;
pub mod optim;
pub mod simplex;
pub mod softmax;

#[cfg(test)]
mod tests;

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, WithDType};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::data::Dataset;
use crate::error::{invalid, Error, Result};
use crate::loss::Loss;
use crate::nn::train::{Evaluation, Minibatches, Outcome, Plan, TrainHooks};
use crate::recovery::{Head, OutputNorm};
use crate::solver::Certificate;
use network::Flat;

pub use crate::nn::train::{Decay, Schedule};
pub use optim::OptimizerKind;
pub use simplex::{project_simplex, SimplexModel};
pub use softmax::{SoftmaxModel, SoftmaxParams};

/// Which model is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Simplex attention (SPEC §3).
    Simplex,
    /// Softmax attention (SPEC §2).
    Softmax,
}

impl ModelKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "simplex" => Ok(ModelKind::Simplex),
            "softmax" => Ok(ModelKind::Softmax),
            _ => invalid(format!("unknown model '{s}': use simplex or softmax")),
        }
    }
}

/// How simplex attention keeps a_j ∈ Δ_n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parametrization {
    /// a_j = softmax(logits_j).
    Logits,
    /// a_j a parameter, projected onto Δ_n after every step.
    Projected,
}

impl Parametrization {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "logits" | "softmax-logits" => Ok(Parametrization::Logits),
            "projected" | "projection" => Ok(Parametrization::Projected),
            _ => invalid(format!(
                "unknown parametrization '{s}': use logits (softmax of logits) or projected (projected gradient)"
            )),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Parametrization::Logits => "logits",
            Parametrization::Projected => "projected",
        }
    }
}

/// Floating-point type of the training computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "f64" => Ok(Precision::F64),
            _ => invalid(format!("unknown dtype '{s}': use f32 or f64")),
        }
    }
    pub fn dtype(&self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }
}

/// The objective a baseline minimizes: loss, β, output norm (of the convex
/// program it is compared with; unused by softmax attention), intercept.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Objective {
    pub loss: Loss,
    pub beta: f64,
    pub output_norm: OutputNorm,
    pub intercept: bool,
}

impl Objective {
    pub fn validate(&self, data: &Dataset) -> Result<()> {
        crate::problem::check_beta(self.beta)?;
        self.loss.check_targets(data)
    }
}

/// One training configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Baseline {
    pub model: ModelKind,
    /// h ≥ 1.
    pub heads: usize,
    /// Simplex attention only.
    pub parametrization: Parametrization,
    /// Softmax attention only: d_k (default d).
    pub key_dim: Option<usize>,
    /// Softmax attention only: the read-out token (default the last).
    pub read_token: Option<usize>,
    pub precision: Precision,
    pub optimizer: OptimizerKind,
    /// Peak learning rate, > 0.
    pub lr: f64,
    /// SGD momentum μ ∈ [0, 1).
    pub momentum: f64,
    pub warmup_steps: usize,
    pub decay: Decay,
    /// Final learning rate as a fraction of `lr`.
    pub min_lr_frac: f64,
    /// Cap on optimizer steps (None: the time budget alone).
    pub max_steps: Option<usize>,
    /// Minibatch size (None: full batch).
    pub batch_size: Option<usize>,
    pub seed: u64,
    /// Cap on training seconds (None: the step cap alone).
    pub budget_seconds: Option<f64>,
    /// About how many points to record (log-spaced in steps, plus evenly in time).
    pub record_points: usize,
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            model: ModelKind::Simplex,
            heads: 4,
            parametrization: Parametrization::Projected,
            key_dim: None,
            read_token: None,
            precision: Precision::F64,
            optimizer: OptimizerKind::Adam,
            lr: 0.02,
            momentum: 0.9,
            warmup_steps: 20,
            decay: Decay::Cosine,
            min_lr_frac: 0.01,
            max_steps: None,
            batch_size: None,
            seed: 0,
            budget_seconds: Some(10.0),
            record_points: 200,
        }
    }
}

impl Baseline {
    /// Checks the configuration against the data's shape.
    pub fn validate(&self, data: &Dataset) -> Result<()> {
        if self.heads == 0 {
            return invalid("heads must be at least 1, got 0");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return invalid(format!(
                "learning rate must be a positive finite number, got {}",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return invalid(format!("momentum must be in [0, 1), got {}", self.momentum));
        }
        if !(0.0..=1.0).contains(&self.min_lr_frac) {
            return invalid(format!(
                "the final learning-rate fraction must be in [0, 1], got {}",
                self.min_lr_frac
            ));
        }
        match (self.max_steps, self.budget_seconds) {
            (None, None) => return invalid("give a step cap, a time budget, or both"),
            (Some(0), _) => return invalid("the step cap must be at least 1"),
            (_, Some(b)) if b.is_nan() || b <= 0.0 => {
                return invalid(format!("the time budget must be positive seconds, got {b}"))
            }
            _ => {}
        }
        if let Some(b) = self.batch_size {
            if b == 0 || b > data.n_samples {
                return invalid(format!(
                    "batch size must be in 1..={} (the number of training samples), got {b}",
                    data.n_samples
                ));
            }
        }
        if self.key_dim == Some(0) {
            return invalid("key dimension d_k must be at least 1");
        }
        if let Some(r) = self.read_token {
            if r >= data.n_tokens {
                return invalid(format!(
                    "read-out token {r} is out of range: samples have {} tokens (0..{})",
                    data.n_tokens, data.n_tokens
                ));
            }
        }
        if self.record_points == 0 {
            return invalid("record at least 1 point");
        }
        Ok(())
    }

    /// A short name: `simplex-projected`, `simplex-logits` or `softmax`.
    pub fn method_name(&self) -> String {
        match self.model {
            ModelKind::Simplex => format!("simplex-{}", self.parametrization.name()),
            ModelKind::Softmax => "softmax".into(),
        }
    }
}

/// One recorded point of a run.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainPoint {
    pub step: usize,
    /// Training seconds so far (evaluation excluded).
    pub seconds: f64,
    /// The objective on the full training set, in f64.
    #[serde(deserialize_with = "crate::report::nan_if_null")]
    pub objective: f64,
    #[serde(deserialize_with = "crate::report::nan_if_null")]
    pub train_error: f64,
    pub test_error: Option<f64>,
}

/// What the callback of [`train`] tells the trainer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The result of one run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainOutcome {
    pub method: String,
    pub seed: u64,
    pub points: Vec<TrainPoint>,
    pub steps: usize,
    /// Training seconds (evaluation excluded).
    pub seconds: f64,
    /// Wall seconds including evaluation.
    pub wall_seconds: f64,
    #[serde(deserialize_with = "crate::report::nan_if_null")]
    pub final_objective: f64,
    /// The objective became non-finite.
    pub diverged: bool,
    /// The callback stopped the run.
    pub stopped_early: bool,
    /// h×n, row-major: the attention rows (simplex), or the read-out row's
    /// attention averaged over the training samples (softmax).
    pub attention: Vec<f64>,
    /// The learned heads (simplex attention).
    pub heads: Option<Vec<Head>>,
    pub intercept: Vec<f64>,
}

/// What a trained model reports: (attention, heads, intercept) of
/// [`TrainOutcome`].
type Learned = (Vec<f64>, Option<Vec<Head>>, Vec<f64>);

/// What [`train`] needs of a baseline model: one implementation per model,
/// so the trainer never asks which model it has.
trait Trainable {
    /// (decayed, plain, projected) parameters, as [`optim::Stepper`] takes them.
    fn vars(&self, obj: &Objective) -> (Vec<Var>, Vec<Var>, Vec<Var>);
    /// Predictions (B×c) for a batch of shape B×n×d.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor>;
    /// The part of the penalty the graph differentiates: all of it, or with
    /// `decoupled` (AdamW) what the optimizer's weight decay does not cover
    /// (None: nothing).
    fn graph_penalty(
        &self,
        obj: &Objective,
        decoupled: bool,
    ) -> candle_core::Result<Option<Tensor>>;
    /// `loss_weight`·Σ_{i in batch} L + `penalty_weight`·penalty: the graph the
    /// trainer differentiates (weights 1, 1 give the objective P on `x`).
    fn weighted_objective(
        &self,
        x: &Tensor,
        y: &Tensor,
        obj: &Objective,
        loss_weight: f64,
        penalty_weight: f64,
        decoupled: bool,
    ) -> candle_core::Result<Tensor> {
        let fit = (loss::total(obj.loss, &self.forward(x)?, y)? * loss_weight)?;
        match self.graph_penalty(obj, decoupled)? {
            Some(p) if penalty_weight != 0.0 => fit + (p * penalty_weight)?,
            _ => Ok(fit),
        }
    }
    /// (objective, train error, test error), exactly in f64.
    fn evaluate(&self, ev: &Evaluator) -> Result<(f64, f64, Option<f64>)>;
    /// (attention, heads, intercept) of the outcome.
    fn summary(&self, ev: &Evaluator) -> Result<Learned>;
}

/// The f64 evaluation of a model on the training and test data.
struct Evaluator<'a> {
    obj: Objective,
    train: &'a Dataset<'a>,
    test: Option<&'a Dataset<'a>>,
    x_train: Tensor,
    x_test: Option<Tensor>,
}

impl<'a> Evaluator<'a> {
    fn new(obj: Objective, train: &'a Dataset<'a>, test: Option<&'a Dataset<'a>>) -> Result<Self> {
        Ok(Evaluator {
            obj,
            train,
            test,
            x_train: data_x(train, DType::F64)?,
            x_test: match test {
                Some(t) => Some(data_x(t, DType::F64)?),
                None => None,
            },
        })
    }
}

impl Evaluation for TrainPoint {
    fn step(&self) -> usize {
        self.step
    }
}

/// Stops the loop when a recorded point asked for it ([`Flow::Stop`]).
struct StopFlag(std::cell::Cell<bool>);

impl TrainHooks<TrainPoint> for &StopFlag {
    fn stop(&self) -> bool {
        self.0.get()
    }
}

/// One baseline run on the training loop of [`crate::nn::train`].
struct Run<'a> {
    cfg: &'a Baseline,
    plan: &'a Plan,
    n_samples: usize,
    /// AdamW's decoupled λ = β/N.
    weight_decay: f64,
    eval: &'a Evaluator<'a>,
}

impl Run<'_> {
    fn go<T: WithDType>(
        &self,
        mut net: Flat<'_, T>,
        on_point: &mut dyn FnMut(&TrainPoint) -> Result<Flow>,
    ) -> Result<Outcome<TrainPoint>> {
        let cfg = self.cfg;
        let (decayed, plain, projected) = net.split();
        let mut opt = optim::Stepper::<T>::new(
            cfg.optimizer,
            (decayed, plain),
            projected,
            cfg.momentum,
            self.weight_decay,
        )?;
        // Full-batch steps read the data as it is: no order to draw.
        let full = self.plan.batch == self.n_samples;
        let items = if full {
            Vec::new()
        } else {
            (0..self.n_samples as u32).collect()
        };
        let batches = Minibatches::new(
            items,
            ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x9e37_79b9_7f4a_7c15),
        );
        // Points at steps growing by 10%, every max_steps/record_points steps
        // and every budget/record_points seconds.
        let time_every = self.plan.max_seconds / cfg.record_points as f64;
        let step_every = cfg
            .max_steps
            .map_or(usize::MAX, |s| (s / cfg.record_points).max(1));
        let (mut next_log_step, mut last_time_record) = (1usize, 0.0);
        let due = |step: usize, secs: f64| {
            let due = step >= next_log_step
                || step % step_every == 0
                || secs - last_time_record >= time_every;
            if due {
                next_log_step = next_log_step
                    .max(((step as f64) * 1.1).ceil() as usize)
                    .max(step + 1);
                last_time_record = secs;
            }
            due
        };
        let stop = StopFlag(std::cell::Cell::new(false));
        let evaluate = |step: usize, seconds: f64, net: &mut Flat<'_, T>| -> Result<TrainPoint> {
            net.sync()?;
            let (objective, train_error, test_error) = net.model.evaluate(self.eval)?;
            let p = TrainPoint {
                step,
                seconds,
                objective,
                train_error,
                test_error,
            };
            if on_point(&p)? == Flow::Stop {
                stop.0.set(true);
            }
            Ok(p)
        };
        let out = crate::nn::train::train(
            &mut net, &mut opt, self.plan, batches, None, due, evaluate, &mut &stop,
        )?;
        net.sync()?;
        Ok(out)
    }
}

/// Trains `cfg` on `train`, recording points (see the module doc); `on_point`
/// sees every recorded point and may stop the run (or fail it).
pub fn train(
    cfg: &Baseline,
    obj: &Objective,
    train: &Dataset,
    test: Option<&Dataset>,
    mut on_point: impl FnMut(&TrainPoint) -> Result<Flow>,
) -> Result<TrainOutcome> {
    cfg.validate(train)?;
    obj.validate(train)?;
    if let Some(t) = test {
        if (t.n_tokens, t.n_features, t.n_outputs)
            != (train.n_tokens, train.n_features, train.n_outputs)
        {
            return invalid(format!(
                "test data has tokens {}×{} and {} outputs, the training data {}×{} and {}",
                t.n_tokens,
                t.n_features,
                t.n_outputs,
                train.n_tokens,
                train.n_features,
                train.n_outputs
            ));
        }
    }
    let wall = Instant::now();
    let (n_samples, n, d, c) = train.shape();
    let dtype = cfg.precision.dtype();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let model: Box<dyn Trainable> = match cfg.model {
        ModelKind::Simplex => Box::new(SimplexModel::init(
            cfg.heads,
            (n, d, c),
            cfg.parametrization,
            obj.intercept,
            dtype,
            &mut rng,
        )?),
        ModelKind::Softmax => Box::new(SoftmaxModel::init(
            cfg.heads,
            cfg.key_dim.unwrap_or(d),
            cfg.read_token.unwrap_or(n - 1),
            (n, d, c),
            obj.intercept,
            dtype,
            &mut rng,
        )?),
    };
    let decoupled = cfg.optimizer == OptimizerKind::AdamW;
    let x = data_x(train, dtype)?;
    let y = Tensor::from_slice(&train.y, (n_samples, c), &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))?;
    let eval = Evaluator::new(*obj, train, test)?;
    let budget = cfg.budget_seconds.unwrap_or(f64::INFINITY);
    let plan = Plan {
        max_steps: cfg.max_steps.unwrap_or(usize::MAX),
        max_seconds: budget,
        // None: full batch.
        batch: cfg
            .batch_size
            .filter(|&b| b < n_samples)
            .unwrap_or(n_samples),
        schedule: Schedule {
            lr: cfg.lr,
            warmup_steps: cfg.warmup_steps,
            decay: cfg.decay,
            min_lr_frac: cfg.min_lr_frac,
        },
        evaluate_when_stopped: true,
    };
    let run = Run {
        cfg,
        plan: &plan,
        n_samples,
        weight_decay: obj.beta / n_samples as f64,
        eval: &eval,
    };
    let (vars, full) = (model.vars(obj), plan.batch == n_samples);
    let m = model.as_ref();
    let out = match dtype {
        DType::F32 => run.go(
            Flat::<f32>::new(m, vars, (x, y), full, *obj, decoupled)?,
            &mut on_point,
        )?,
        _ => run.go(
            Flat::<f64>::new(m, vars, (x, y), full, *obj, decoupled)?,
            &mut on_point,
        )?,
    };
    let points = out.records;
    let (step, train_secs, diverged, stopped_early) =
        (out.steps, out.seconds, out.diverged, out.interrupted);
    let final_objective = points.last().map(|p| p.objective).unwrap_or(f64::NAN);
    let (attention, heads, intercept) = model.summary(&eval)?;

    Ok(TrainOutcome {
        method: cfg.method_name(),
        seed: cfg.seed,
        points,
        steps: step,
        seconds: train_secs,
        wall_seconds: wall.elapsed().as_secs_f64(),
        final_objective,
        diverged,
        stopped_early,
        attention,
        heads,
        intercept,
    })
}

/// The point-4 check of issue #3: a simplex-attention objective (of feasible
/// heads) can never be below the certified lower bound `cert.dual`; a value
/// below it by more than 1e-9·max(1, |P*|) means a bug in one of the two
/// computations, and is an error naming both numbers.
pub fn check_lower_bound(objective: f64, cert: &Certificate, what: &str) -> Result<()> {
    let tol = 1e-9 * cert.primal.abs().max(1.0);
    if objective.is_nan() || objective < cert.dual - tol {
        return Err(Error::Invalid(format!(
            "lower-bound check FAILED: {what} has objective {objective:.12e}, below the certified convex lower bound {:.12e} (convex primal {:.12e}, gap {:.3e}) by {:.3e}, more than the tolerance {tol:.1e}. Simplex attention cannot beat its convex program: one of the two computations has a bug",
            cert.dual,
            cert.primal,
            cert.gap,
            cert.dual - objective
        )));
    }
    Ok(())
}

/// `len` N(0, std²) values.
pub(crate) fn randn_vec(rng: &mut ChaCha8Rng, len: usize, std: f64) -> Vec<f64> {
    (0..len)
        .map(|_| std * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng))
        .collect()
}

/// All values of a tensor as f64, row-major.
pub(crate) fn to_f64_vec(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(Error::from)
}

/// The tokens of `data` as an N×n×d tensor of `dtype`.
pub fn data_x(data: &Dataset, dtype: DType) -> Result<Tensor> {
    let (n, t, d, _) = data.shape();
    Tensor::from_slice(&data.x, (n, t, d), &Device::Cpu)
        .and_then(|x| x.to_dtype(dtype))
        .map_err(Error::from)
}
