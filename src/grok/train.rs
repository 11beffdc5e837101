//! Training the transformers (models a and b) with AdamW on minibatches.
//!
//! Per step (on the fused engine of [`crate::nn`]): a minibatch (a fresh
//! permutation of the training pairs every epoch, remainders dropped), the
//! mean cross-entropy of its logits, one backward pass and one AdamW update (β₁, β₂, ε = 1e-8, learning rate with a
//! linear warmup (step+1)/warmup, then constant).
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

use std::time::Instant;

use candle_core::{DType, Device, WithDType};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::data::{Examples, SEQ_LEN};
use super::model::{Transformer, TransformerConfig};
use crate::error::{invalid, Result};
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

    /// The learning rate at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            self.lr * (step + 1) as f64 / self.warmup_steps as f64
        } else {
            self.lr
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

/// What a training run reports to, and asks of, its caller.
pub trait TrainHooks {
    /// Each evaluation, as it is made.
    fn record(&mut self, _r: &Record) -> Result<()> {
        Ok(())
    }
    /// Asked before every step: true ends the run there, interrupted.
    fn stop(&self) -> bool {
        false
    }
    /// Steps between two calls of [`TrainHooks::checkpoint`] (0: only when stopped).
    fn checkpoint_every(&self) -> usize {
        0
    }
    /// The state to continue from: every [`TrainHooks::checkpoint_every`]
    /// steps, and when the run is stopped.
    fn checkpoint(&mut self, _s: &TrainState) -> Result<()> {
        Ok(())
    }
}

/// Hooks that only watch the evaluations.
struct OnRecord<F>(F);

impl<F: FnMut(&Record)> TrainHooks for OnRecord<F> {
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
    hooks: &mut dyn TrainHooks,
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

/// Where a run is: what [`TrainState`] saves besides weights and moments.
struct Progress {
    step: usize,
    seconds: f64,
    order: Vec<u32>,
    pos: usize,
    rng: ChaCha8Rng,
    records: Vec<Record>,
}

impl Progress {
    fn start(n: usize, seed: u64) -> Self {
        Progress {
            step: 0,
            seconds: 0.0,
            order: (0..n as u32).collect(),
            // At the end of an epoch: the first step shuffles.
            pos: n,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0fba_7c00),
            records: Vec::new(),
        }
    }

    fn snapshot<T: WithDType>(&self, e: &Engine<T>, opt: &AdamW<T>) -> TrainState {
        let (m, v, adam_steps) = opt.state();
        let f64s = |x: &[T]| x.iter().map(|v| v.to_f64()).collect::<Vec<_>>();
        TrainState {
            step: self.step,
            seconds: self.seconds,
            dtype: T::DTYPE,
            params: f64s(&e.params),
            adam_m: f64s(m),
            adam_v: f64s(v),
            adam_steps,
            layout: e
                .slots
                .iter()
                .map(|s| (s.name.clone(), s.offset, s.len))
                .collect(),
            order: self.order.clone(),
            pos: self.pos,
            rng_word_pos: self.rng.get_word_pos(),
            records: self.records.clone(),
        }
    }

    /// Evaluates on both sets at the current step and reports it.
    fn record<T: WithDType>(
        &mut self,
        e: &mut Engine<T>,
        data: Data,
        chunk: usize,
        hooks: &mut dyn TrainHooks,
    ) -> Result<()> {
        let (train_loss, train_acc) = evaluate(e, data.train, chunk)?;
        let (val_loss, val_acc) = evaluate(e, data.val, chunk)?;
        let r = Record {
            step: self.step,
            seconds: self.seconds,
            train_loss,
            train_acc,
            val_loss,
            val_acc,
        };
        self.records.push(r);
        hooks.record(&r)
    }
}

fn run<T: WithDType>(
    model: &Transformer,
    cfg: &TrainConfig,
    data: Data,
    resume: Option<TrainState>,
    hooks: &mut dyn TrainHooks,
) -> Result<TrainRun> {
    let mut e = Engine::<T>::from_transformer(model)?;
    let coupled = cfg.penalty_mode == PenaltyMode::Coupled;
    let convex = e.slots.iter().any(|s| s.penalized);
    // Decoupled weight decay on every parameter but the convex layers'.
    let mut decay = vec![cfg.weight_decay; e.params.len()];
    for s in e.slots.iter().filter(|s| s.penalized) {
        decay[s.range()].fill(0.0);
    }
    let mut opt = AdamW::<T>::new(e.params.len(), cfg.beta1, cfg.beta2, 1e-8);
    let mut pen = vec![T::zero(); if convex { e.params.len() } else { 0 }];

    let n = data.train.len();
    let bs = cfg.batch_size.min(n);
    let mut at = Progress::start(n, cfg.seed);
    if let Some(s) = resume {
        let all: Vec<u32> = (0..n as u32).collect();
        s.check(e.params.len(), &all, T::DTYPE, cfg.steps, |r| r.step)?;
        for (p, &v) in e.params.iter_mut().zip(&s.params) {
            *p = T::from_f64(v);
        }
        opt.restore(&s.adam_m, &s.adam_v, s.adam_steps)?;
        at.rng.set_word_pos(s.rng_word_pos);
        at = Progress {
            step: s.step,
            seconds: s.seconds,
            order: s.order,
            pos: s.pos,
            rng: at.rng,
            records: s.records,
        };
    }
    let (mut xb, mut yb) = (Vec::with_capacity(bs * SEQ_LEN), Vec::with_capacity(bs));

    if at.records.is_empty() {
        at.record(&mut e, data, bs, hooks)?;
    }
    let (mut diverged, mut interrupted) = (false, false);
    let every = hooks.checkpoint_every();
    while at.step < cfg.steps {
        if hooks.stop() {
            interrupted = true;
            hooks.checkpoint(&at.snapshot(&e, &opt))?;
            break;
        }
        let t0 = Instant::now();
        if at.pos + bs > n {
            at.order.shuffle(&mut at.rng);
            at.pos = 0;
        }
        xb.clear();
        yb.clear();
        for &i in &at.order[at.pos..at.pos + bs] {
            let i = i as usize;
            xb.extend_from_slice(&data.train.tokens[i * SEQ_LEN..(i + 1) * SEQ_LEN]);
            yb.push(data.train.answers[i]);
        }
        at.pos += bs;
        let lr = cfg.lr_at(at.step);
        e.forward(&xb)?;
        let (mut lv, _) = e.cross_entropy(&yb)?;
        let penalize = convex && cfg.penalty > 0.0;
        if coupled && penalize {
            pen.fill(T::zero());
            lv += e.add_penalty_grad(cfg.penalty, &mut pen);
        }
        if !lv.is_finite() {
            diverged = true;
            at.seconds += t0.elapsed().as_secs_f64();
            at.step += 1;
            break;
        }
        e.backward();
        if coupled && penalize {
            for (g, &p) in e.grads.iter_mut().zip(&pen) {
                *g += p;
            }
        }
        opt.step(&mut e.params, &e.grads, &decay, lr);
        if !coupled && penalize {
            // θ ← θ − η_t·λ·∇R(θ) at the updated point (∇R is zero off the
            // convex layers).
            pen.fill(T::zero());
            e.add_penalty_grad(lr * cfg.penalty, &mut pen);
            for (p, &g) in e.params.iter_mut().zip(&pen) {
                *p -= g;
            }
        }
        at.seconds += t0.elapsed().as_secs_f64();
        at.step += 1;
        if is_eval_step(at.step, cfg.eval_every, cfg.steps) {
            at.record(&mut e, data, bs, hooks)?;
        }
        if every > 0 && at.step % every == 0 && at.step < cfg.steps {
            hooks.checkpoint(&at.snapshot(&e, &opt))?;
        }
    }
    if at.records.last().map(|r| r.step) != Some(at.step) {
        at.record(&mut e, data, bs, hooks)?;
    }
    Ok(TrainRun {
        steps: at.step,
        seconds: at.seconds,
        steps_per_second: at.step as f64 / at.seconds.max(1e-12),
        n_params: e.n_params(),
        diverged,
        interrupted,
        records: at.records,
    })
}
