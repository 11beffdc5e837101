//! One training loop for every network trained by gradient steps, on one
//! flat parameter vector: the `compare` baselines ([`crate::baselines`]), the
//! grokking transformers (on the fused engine, [`crate::nn::Engine`]) and the
//! teacher's softmax student ([`crate::teacher::fused_student::FusedStudent`]).
//!
//! Per step: the learning rate from a [`Schedule`], a minibatch from
//! [`Minibatches`], the network's loss and gradient ([`Network`]), one
//! update of an [`Optimizer`] (AdamW with decoupled weight decay,
//! [`crate::nn::AdamW`], for the fused networks; the baselines' Adam, AdamW,
//! SGD and row-wise Adam), and whatever the network does after an update (a
//! decoupled group penalty, a projection onto the simplex). The run ends at its step
//! cap, at its time budget (training seconds, evaluation excluded), when the
//! loss stops being finite, or when its [`TrainHooks`] ask; it evaluates at
//! step 0 and wherever its caller says, hands out the exact state to continue
//! from ([`TrainState`]) every K steps and when stopped, and continues from
//! such a state with the same batches, updates and results as a run that
//! was never stopped.
//!
//! The `compare` baselines run the same loop; their [`Network`] computes
//! the gradient with candle's autograd.

mod minibatches;
mod schedule;

use std::time::Instant;

use candle_core::WithDType;

pub use minibatches::Minibatches;
pub use schedule::{Decay, Schedule};

use super::TrainState;
use crate::error::{invalid, Result};

/// A network trained on one flat parameter vector.
pub trait Network<T: WithDType> {
    /// (name, offset, length) of each parameter in the flat vector, saved
    /// with the training state.
    fn layout(&self) -> Vec<(String, usize, usize)>;
    /// The loss on the examples `batch`, its gradient kept for
    /// [`Network::params_and_grad`].
    fn loss_and_grad(&mut self, batch: &[u32]) -> Result<f64>;
    /// The parameters (to update) and the last gradient.
    fn params_and_grad(&mut self) -> (&mut [T], &[T]);
    /// Runs after each optimizer step at learning rate `lr`.
    fn after_step(&mut self, _lr: f64) {}
}

/// An update rule on the flat parameters.
pub trait Optimizer<T> {
    /// One step at learning rate `lr`.
    fn step(&mut self, params: &mut [T], grads: &[T], lr: f64);
    /// (first moments, second moments, steps taken), saved with the state.
    fn state(&self) -> (&[T], &[T], i32);
    /// Continues from a saved [`Optimizer::state`] (as f64).
    fn restore(&mut self, m: &[f64], v: &[f64], steps: i32) -> Result<()>;
}

/// An evaluation, as the training state records it.
pub trait Evaluation: Clone {
    /// The step it was made at.
    fn step(&self) -> usize;
}

/// A bare step, for runs that keep no curve.
impl Evaluation for usize {
    fn step(&self) -> usize {
        *self
    }
}

/// What a training run reports to, and asks of, its caller.
pub trait TrainHooks<R> {
    /// Each evaluation, as it is made.
    fn record(&mut self, _r: &R) -> Result<()> {
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
    fn checkpoint(&mut self, _s: &TrainState<R>) -> Result<()> {
        Ok(())
    }
}

/// Hooks that ask nothing and watch nothing.
pub struct NoHooks;

impl<R> TrainHooks<R> for NoHooks {}

/// How long a run trains, and how.
#[derive(Clone, Debug)]
pub struct Plan {
    pub max_steps: usize,
    /// Training seconds (evaluation excluded) after which the run ends.
    pub max_seconds: f64,
    pub batch: usize,
    pub schedule: Schedule,
    /// Evaluate once more when stopped by the hooks (the curve then ends at
    /// the step it stopped at), or leave at once.
    pub evaluate_when_stopped: bool,
}

/// A finished (or stopped) run.
#[derive(Clone, Debug)]
pub struct Outcome<R> {
    pub steps: usize,
    /// Training seconds (evaluation excluded).
    pub seconds: f64,
    /// The loss became non-finite (the run ended at that step, not updated).
    pub diverged: bool,
    /// Stopped by [`TrainHooks::stop`] before its last step.
    pub interrupted: bool,
    pub records: Vec<R>,
}

/// Trains `net` with `opt` by `plan` on the minibatches of `batches`,
/// continuing from `resume` when given (a state the caller has checked
/// against this run with [`TrainState::check`]). `evaluate(step, seconds,
/// net)` runs at step 0 of a fresh run, after every step for which
/// `eval_due(step, seconds)` holds, and at the last step; its time is not
/// counted.
#[allow(clippy::too_many_arguments)]
pub fn train<T, N, R>(
    net: &mut N,
    opt: &mut dyn Optimizer<T>,
    plan: &Plan,
    mut batches: Minibatches,
    resume: Option<TrainState<R>>,
    mut eval_due: impl FnMut(usize, f64) -> bool,
    mut evaluate: impl FnMut(usize, f64, &mut N) -> Result<R>,
    hooks: &mut dyn TrainHooks<R>,
) -> Result<Outcome<R>>
where
    T: WithDType,
    N: Network<T>,
    R: Evaluation,
{
    let n_params = net.params_and_grad().0.len();
    let (mut step, mut seconds, mut records) = (0, 0.0, Vec::new());
    match resume {
        Some(s) => {
            if s.params.len() != n_params {
                return invalid(format!(
                    "the saved state holds {} parameters, the network {n_params}",
                    s.params.len()
                ));
            }
            for (p, &v) in net.params_and_grad().0.iter_mut().zip(&s.params) {
                *p = T::from_f64(v);
            }
            opt.restore(&s.adam_m, &s.adam_v, s.adam_steps)?;
            batches.restore(s.order, s.pos, s.rng_word_pos);
            (step, seconds, records) = (s.step, s.seconds, s.records);
        }
        None => {
            record(evaluate(0, 0.0, net)?, &mut records, hooks)?;
        }
    }
    let layout = net.layout();
    let snapshot = |step: usize,
                    seconds: f64,
                    net: &mut N,
                    opt: &dyn Optimizer<T>,
                    batches: &Minibatches,
                    records: &[R]| {
        let (m, v, adam_steps) = opt.state();
        let f64s = |x: &[T]| x.iter().map(|v| v.to_f64()).collect::<Vec<_>>();
        let (order, pos, rng_word_pos) = batches.state();
        TrainState {
            step,
            seconds,
            dtype: T::DTYPE,
            params: f64s(net.params_and_grad().0),
            adam_m: f64s(m),
            adam_v: f64s(v),
            adam_steps,
            layout: layout.clone(),
            order: order.to_vec(),
            pos,
            rng_word_pos,
            records: records.to_vec(),
        }
    };
    let progress = |step: usize, seconds: f64| {
        (step as f64 / plan.max_steps as f64).max(seconds / plan.max_seconds)
    };
    let every = hooks.checkpoint_every();
    let (mut diverged, mut interrupted) = (false, false);
    while step < plan.max_steps {
        if hooks.stop() {
            interrupted = true;
            hooks.checkpoint(&snapshot(step, seconds, net, &*opt, &batches, &records))?;
            break;
        }
        let t0 = Instant::now();
        let lr = plan.schedule.lr_at(step, progress(step, seconds));
        let loss = net.loss_and_grad(batches.next(plan.batch))?;
        if !loss.is_finite() {
            diverged = true;
            seconds += t0.elapsed().as_secs_f64();
            step += 1;
            break;
        }
        let (params, grad) = net.params_and_grad();
        opt.step(params, grad, lr);
        net.after_step(lr);
        seconds += t0.elapsed().as_secs_f64();
        step += 1;
        let last = step == plan.max_steps || seconds >= plan.max_seconds;
        if eval_due(step, seconds) || last {
            record(evaluate(step, seconds, net)?, &mut records, hooks)?;
        }
        if last {
            break;
        }
        if every > 0 && step % every == 0 {
            hooks.checkpoint(&snapshot(step, seconds, net, &*opt, &batches, &records))?;
        }
    }
    let evaluated = records.last().map(|r| r.step()) == Some(step);
    if !evaluated && (!interrupted || plan.evaluate_when_stopped) {
        record(evaluate(step, seconds, net)?, &mut records, hooks)?;
    }
    Ok(Outcome {
        steps: step,
        seconds,
        diverged,
        interrupted,
        records,
    })
}

/// Hands an evaluation to the hooks and keeps it.
fn record<R>(r: R, records: &mut Vec<R>, hooks: &mut dyn TrainHooks<R>) -> Result<()> {
    hooks.record(&r)?;
    records.push(r);
    Ok(())
}

#[cfg(test)]
mod tests;
