//! Training the transformers (models a and b) with AdamW on minibatches.
//!
//! Per step (the training loop of [`crate::nn::train`], on the fused engine
//! of [`crate::nn`]): a minibatch (a fresh permutation of the training pairs
//! every epoch, remainders dropped), the mean cross-entropy of its logits,
//! one backward pass and one AdamW update (β₁, β₂, ε = 1e-8, learning rate
//! with a linear warmup (step+1)/warmup, then constant).
//!
//! Weight decay: decoupled (AdamW) on every parameter of model (a). In model
//! (b) the convex layers' parameters are under their group penalty R
//! ([`crate::layer`]) instead: by default also decoupled, θ ← θ − η_t·λ·∇R(θ)
//! after the Adam update, which for the ½‖V‖² + ½‖O‖² part is exactly AdamW's
//! weight decay with λ, so the two models differ only in the attention and
//! in ½Σ_j‖W_j‖²_{∞,1} replacing ½‖Q‖² + ½‖K‖²; or coupled, λ·R added to the
//! loss (`PenaltyMode::Coupled`).
//!
//! Long runs: [`train_with`] stops between steps when its [`TrainHooks`] ask
//! (Ctrl-C), hands out the exact state to continue from ([`TrainState`]) every
//! K steps and when stopped, and continues from such a state with the same
//! steps, batches and results as a run that was never stopped.
//!
//! Evaluation (not timed): loss and accuracy on the whole training and
//! validation sets at step 0, at steps 1, 2, 4, …, 2^k below `eval_every`,
//! at every multiple of `eval_every`, and at the last step. A "first step at
//! which accuracy reaches 99%" is therefore known to within `eval_every` steps.

use candle_core::{DType, Device, WithDType};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::data::{Examples, SEQ_LEN};
use super::model::{Transformer, TransformerConfig};
use crate::error::{invalid, Result};
pub use crate::nn::train::TrainHooks;
use crate::nn::train::{Decay, Evaluation, Minibatches, Network, Plan, Schedule};
use crate::nn::{AdamW, Engine};

/// The saved state of a grokking run.
pub type TrainState = crate::nn::TrainState<Record>;

/// How the convex layers' group penalty enters training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PenaltyMode {
    /// θ ← θ − η_t·λ·∇R(θ) after each Adam step (like AdamW's weight decay).
    Decoupled,
    /// λ·R added to the loss (through Adam's preconditioner).
    Coupled,
}

impl PenaltyMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "decoupled" => Ok(PenaltyMode::Decoupled),
            "coupled" => Ok(PenaltyMode::Coupled),
            _ => invalid(format!(
                "unknown penalty mode '{s}': use decoupled or coupled"
            )),
        }
    }
}

/// Optimizer and schedule.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    /// λ of the convex layers' group penalty.
    pub penalty: f64,
    pub penalty_mode: PenaltyMode,
    pub eval_every: usize,
    pub seed: u64,
    /// f32 (default) or f64.
    #[serde(skip)]
    pub dtype: DType,
}

impl Default for TrainConfig {
    /// The common grokking setup: AdamW, lr 1e-3, betas (0.9, 0.98), weight
    /// decay 1, batch 512, 10 warmup steps; the convex penalty λ = 1.
    fn default() -> Self {
        TrainConfig {
            steps: 5000,
            batch_size: 512,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.98,
            weight_decay: 1.0,
            warmup_steps: 10,
            penalty: 1.0,
            penalty_mode: PenaltyMode::Decoupled,
            eval_every: 100,
            seed: 0,
            dtype: DType::F32,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.batch_size == 0 || self.eval_every == 0 {
            return invalid("steps, batch size and eval-every must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return invalid(format!(
                "the learning rate must be positive, got {}",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return invalid(format!(
                "Adam betas must be in [0, 1), got ({}, {})",
                self.beta1, self.beta2
            ));
        }
        if !(self.weight_decay >= 0.0 && self.penalty >= 0.0) {
            return invalid("weight decay and penalty must be ≥ 0");
        }
        Ok(())
    }

    /// The learning rate: linear warmup (step+1)/warmup, then constant.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            decay: Decay::Constant,
            min_lr_frac: 1.0,
        }
    }
}

/// One evaluation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub step: usize,
    /// Training seconds so far (evaluation excluded).
    pub seconds: f64,
    #[serde(deserialize_with = "crate::report::nan_if_null")]
    pub train_loss: f64,
    pub train_acc: f64,
    #[serde(deserialize_with = "crate::report::nan_if_null")]
    pub val_loss: f64,
    pub val_acc: f64,
}

/// A finished (or stopped) run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainRun {
    pub records: Vec<Record>,
    pub steps: usize,
    pub seconds: f64,
    pub steps_per_second: f64,
    pub n_params: usize,
    /// The loss became non-finite.
    pub diverged: bool,
    /// Stopped by [`TrainHooks::stop`] before its last step (the last record
    /// is an evaluation at the step it stopped at).
    pub interrupted: bool,
}

/// Hooks that only watch the evaluations.
struct OnRecord<F>(F);

impl<F: FnMut(&Record)> TrainHooks<Record> for OnRecord<F> {
    fn record(&mut self, r: &Record) -> Result<()> {
        (self.0)(r);
        Ok(())
    }
}

/// Steps at which to evaluate: 0, powers of two below `every`, multiples of
/// `every`, and the last.
pub fn is_eval_step(step: usize, every: usize, last: usize) -> bool {
    step == 0 || step == last || step % every == 0 || (step < every && step.is_power_of_two())
}

/// Mean cross-entropy and accuracy of the engine's network on all of
/// `data`, in chunks of `chunk` examples.
fn evaluate<T: WithDType>(e: &mut Engine<T>, data: &Examples, chunk: usize) -> Result<(f64, f64)> {
    let n = data.len();
    let (mut loss, mut correct) = (0.0, 0usize);
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        e.forward(&data.tokens[start * SEQ_LEN..(start + len) * SEQ_LEN])?;
        let (l, c) = e.cross_entropy(&data.answers[start..start + len])?;
        loss += l * len as f64;
        correct += c;
        start += len;
    }
    Ok((loss / n as f64, correct as f64 / n as f64))
}

/// Trains a freshly initialized `config` network; `on_record` sees each
/// evaluation as it is made. The weights are initialized by the candle
/// [`Transformer`]; the steps run on the fused engine ([`crate::nn`]).
pub fn train(
    config: TransformerConfig,
    cfg: &TrainConfig,
    train: &Examples,
    val: &Examples,
    on_record: impl FnMut(&Record),
) -> Result<TrainRun> {
    train_with(config, cfg, train, val, None, &mut OnRecord(on_record))
}

/// [`train`], continuing from `resume` when given (a state this
/// configuration saved), with `hooks` to stop it and to save its state.
pub fn train_with(
    config: TransformerConfig,
    cfg: &TrainConfig,
    train: &Examples,
    val: &Examples,
    resume: Option<TrainState>,
    hooks: &mut dyn TrainHooks<Record>,
) -> Result<TrainRun> {
    cfg.validate()?;
    if train.is_empty() || val.is_empty() {
        return invalid("the training and validation sets must not be empty");
    }
    let model = Transformer::init(config, cfg.dtype, &Device::Cpu, cfg.seed)?;
    let data = Data { train, val };
    match cfg.dtype {
        DType::F32 => run::<f32>(&model, cfg, data, resume, hooks),
        DType::F64 => run::<f64>(&model, cfg, data, resume, hooks),
        dt => invalid(format!("training runs in f32 or f64, not {dt:?}")),
    }
}

#[derive(Clone, Copy)]
struct Data<'a> {
    train: &'a Examples,
    val: &'a Examples,
}

impl Evaluation for Record {
    fn step(&self) -> usize {
        self.step
    }
}

/// The fused engine as the training loop sees it: a minibatch's mean
/// cross-entropy (plus λ·R when the convex layers' penalty is coupled) and
/// its gradient; the decoupled penalty's step after each update.
struct Grokker<'a, T: WithDType> {
    e: Engine<T>,
    data: Data<'a>,
    penalty: f64,
    mode: PenaltyMode,
    /// ∇R (zero off the convex layers), when there is a penalty.
    pen: Vec<T>,
    xb: Vec<u32>,
    yb: Vec<u32>,
}

impl<T: WithDType> Network<T> for Grokker<'_, T> {
    fn layout(&self) -> Vec<(String, usize, usize)> {
        self.e
            .slots
            .iter()
            .map(|s| (s.name.clone(), s.offset, s.len))
            .collect()
    }

    fn loss_and_grad(&mut self, batch: &[u32]) -> Result<f64> {
        let train = self.data.train;
        self.xb.clear();
        self.yb.clear();
        for &i in batch {
            let i = i as usize;
            self.xb
                .extend_from_slice(&train.tokens[i * SEQ_LEN..(i + 1) * SEQ_LEN]);
            self.yb.push(train.answers[i]);
        }
        self.e.forward(&self.xb)?;
        let (mut loss, _) = self.e.cross_entropy(&self.yb)?;
        let coupled = self.mode == PenaltyMode::Coupled && !self.pen.is_empty();
        if coupled {
            self.pen.fill(T::zero());
            loss += self.e.add_penalty_grad(self.penalty, &mut self.pen);
        }
        if loss.is_finite() {
            self.e.backward();
            if coupled {
                for (g, &p) in self.e.grads.iter_mut().zip(&self.pen) {
                    *g += p;
                }
            }
        }
        Ok(loss)
    }

    fn params_and_grad(&mut self) -> (&mut [T], &[T]) {
        (&mut self.e.params, &self.e.grads)
    }

    fn after_step(&mut self, lr: f64) {
        if self.mode == PenaltyMode::Decoupled && !self.pen.is_empty() {
            // θ ← θ − η_t·λ·∇R(θ) at the updated point.
            self.pen.fill(T::zero());
            self.e.add_penalty_grad(lr * self.penalty, &mut self.pen);
            for (p, &g) in self.e.params.iter_mut().zip(&self.pen) {
                *p -= g;
            }
        }
    }
}

fn run<T: WithDType>(
    model: &Transformer,
    cfg: &TrainConfig,
    data: Data,
    resume: Option<TrainState>,
    hooks: &mut dyn TrainHooks<Record>,
) -> Result<TrainRun> {
    let e = Engine::<T>::from_transformer(model)?;
    let penalized = cfg.penalty > 0.0 && e.slots.iter().any(|s| s.penalized);
    // Decoupled weight decay on every parameter but the convex layers'.
    let mut decay = vec![cfg.weight_decay; e.params.len()];
    for s in e.slots.iter().filter(|s| s.penalized) {
        decay[s.range()].fill(0.0);
    }
    let n = data.train.len();
    let all: Vec<u32> = (0..n as u32).collect();
    if let Some(s) = &resume {
        s.check(e.params.len(), &all, T::DTYPE, cfg.steps, |r| r.step)?;
    }
    let plan = Plan {
        max_steps: cfg.steps,
        max_seconds: f64::INFINITY,
        batch: cfg.batch_size.min(n),
        schedule: cfg.schedule(),
        evaluate_when_stopped: true,
    };
    let batches = Minibatches::new(all, ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_0fba_7c00));
    let mut net = Grokker {
        pen: vec![T::zero(); if penalized { e.params.len() } else { 0 }],
        e,
        data,
        penalty: cfg.penalty,
        mode: cfg.penalty_mode,
        xb: Vec::with_capacity(plan.batch * SEQ_LEN),
        yb: Vec::with_capacity(plan.batch),
    };
    let mut opt = AdamW::<T>::new(decay.len(), cfg.beta1, cfg.beta2, 1e-8).with_decay(decay)?;
    let chunk = plan.batch;
    let out = crate::nn::train::train(
        &mut net,
        &mut opt,
        &plan,
        batches,
        resume,
        |step, _| is_eval_step(step, cfg.eval_every, cfg.steps),
        |step, seconds, net| {
            let (train_loss, train_acc) = evaluate(&mut net.e, data.train, chunk)?;
            let (val_loss, val_acc) = evaluate(&mut net.e, data.val, chunk)?;
            Ok(Record {
                step,
                seconds,
                train_loss,
                train_acc,
                val_loss,
                val_acc,
            })
        },
        hooks,
    )?;
    Ok(TrainRun {
        steps: out.steps,
        seconds: out.seconds,
        steps_per_second: out.steps as f64 / out.seconds.max(1e-12),
        n_params: net.e.n_params(),
        diverged: out.diverged,
        interrupted: out.interrupted,
        records: out.records,
    })
}
