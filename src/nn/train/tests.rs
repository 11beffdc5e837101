use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::nn::AdamW;

/// ½ Σ_{i ∈ batch} ‖x − a_i‖² / |batch|, with one poisoned example whose
/// loss is NaN when `poison` is set.
struct Quadratic {
    targets: Vec<[f64; 2]>,
    x: Vec<f64>,
    grad: Vec<f64>,
    poison: Option<u32>,
    after: usize,
}

impl Network<f64> for Quadratic {
    fn layout(&self) -> Vec<(String, usize, usize)> {
        vec![("x".into(), 0, 2)]
    }
    fn loss_and_grad(&mut self, batch: &[u32]) -> Result<f64> {
        self.grad = vec![0.0; 2];
        let mut loss = 0.0;
        for &i in batch {
            if Some(i) == self.poison {
                return Ok(f64::NAN);
            }
            let a = self.targets[i as usize];
            for ((x, a), g) in self.x.iter().zip(a).zip(&mut self.grad) {
                let r = x - a;
                loss += 0.5 * r * r / batch.len() as f64;
                *g += r / batch.len() as f64;
            }
        }
        Ok(loss)
    }
    fn params_and_grad(&mut self) -> (&mut [f64], &[f64]) {
        (&mut self.x, &self.grad)
    }
    fn after_step(&mut self, _lr: f64) {
        self.after += 1;
    }
}

fn net() -> Quadratic {
    Quadratic {
        targets: (0..10).map(|i| [i as f64, (i * i) as f64 / 10.0]).collect(),
        x: vec![0.0, 0.0],
        grad: vec![0.0; 2],
        poison: None,
        after: 0,
    }
}

fn plan(steps: usize) -> Plan {
    Plan {
        max_steps: steps,
        max_seconds: f64::INFINITY,
        batch: 3,
        schedule: Schedule {
            lr: 0.1,
            warmup_steps: 4,
            decay: Decay::Cosine,
            min_lr_frac: 0.1,
        },
        evaluate_when_stopped: true,
    }
}

fn adam() -> AdamW<f64> {
    AdamW::new(2, 0.9, 0.99, 1e-8)
        .with_decay(vec![0.01; 2])
        .unwrap()
}

fn batches() -> Minibatches {
    Minibatches::new((0..10).collect(), ChaCha8Rng::seed_from_u64(7))
}

#[derive(Clone, Debug, PartialEq)]
struct Eval {
    step: usize,
    x: Vec<f64>,
}

impl Evaluation for Eval {
    fn step(&self) -> usize {
        self.step
    }
}

/// Stops before step `at` and keeps the states it is handed.
struct StopAt {
    at: usize,
    asked: std::cell::Cell<usize>,
    states: Vec<TrainState<Eval>>,
}

impl TrainHooks<Eval> for StopAt {
    fn stop(&self) -> bool {
        let k = self.asked.get();
        self.asked.set(k + 1);
        k == self.at
    }
    fn checkpoint_every(&self) -> usize {
        4
    }
    fn checkpoint(&mut self, s: &TrainState<Eval>) -> Result<()> {
        self.states.push(s.clone());
        Ok(())
    }
}

/// A run of `net` by `plan`, evaluating every 5 steps.
fn fit(
    net: &mut Quadratic,
    plan: &Plan,
    resume: Option<TrainState<Eval>>,
    hooks: &mut dyn TrainHooks<Eval>,
) -> Result<Outcome<Eval>> {
    train(
        net,
        &mut adam(),
        plan,
        batches(),
        resume,
        |s, _| s % 5 == 0,
        eval,
        hooks,
    )
}

fn eval(step: usize, _: f64, n: &mut Quadratic) -> Result<Eval> {
    Ok(Eval {
        step,
        x: n.x.clone(),
    })
}

#[test]
fn minibatches_cover_every_example_once_per_epoch_and_resume_the_same_stream() {
    let mut b = batches();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.extend_from_slice(b.next(3));
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 9, "nine distinct examples in the first epoch");
    assert!(seen.iter().all(|&i| i < 10));
    // A fourth batch would run past the epoch: a new permutation starts.
    let (order, pos, word) = b.state();
    let (order, pos) = (order.to_vec(), pos);
    let next: Vec<u32> = (0..5).flat_map(|_| b.next(3).to_vec()).collect();
    let mut c = batches();
    c.restore(order, pos, word);
    let again: Vec<u32> = (0..5).flat_map(|_| c.next(3).to_vec()).collect();
    assert_eq!(next, again);
    // A batch larger than the set is the whole set, reshuffled each time.
    let mut d = batches();
    let mut all = d.next(50).to_vec();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<u32>>());
}

#[test]
fn a_run_stopped_and_resumed_from_its_state_ends_as_an_uninterrupted_one() {
    let mut whole = net();
    let full = fit(&mut whole, &plan(13), None, &mut NoHooks).unwrap();
    assert_eq!(full.steps, 13);
    assert!(!full.diverged && !full.interrupted);
    assert_eq!(whole.after, 13);
    // Evaluations: step 0, the due steps and the last.
    let steps: Vec<usize> = full.records.iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![0, 5, 10, 13]);

    let mut first = net();
    let mut hooks = StopAt {
        at: 6,
        asked: Default::default(),
        states: Vec::new(),
    };
    let part = fit(&mut first, &plan(13), None, &mut hooks).unwrap();
    assert!(part.interrupted);
    assert_eq!(part.steps, 6);
    // A checkpoint at step 4, and the state handed out when stopped.
    let at: Vec<usize> = hooks.states.iter().map(|s| s.step).collect();
    assert_eq!(at, vec![4, 6]);
    let state = hooks.states.pop().unwrap();
    assert_eq!(state.layout, vec![("x".to_string(), 0, 2)]);
    let mut second = net();
    let rest = fit(&mut second, &plan(13), Some(state), &mut NoHooks).unwrap();
    assert_eq!(second.x, whole.x);
    assert_eq!(rest.records, full.records);
}

#[test]
fn a_non_finite_loss_ends_the_run_without_an_update() {
    let mut n = net();
    n.poison = Some(4);
    let out = fit(&mut n, &plan(50), None, &mut NoHooks).unwrap();
    assert!(out.diverged);
    assert!(out.steps < 50);
    assert_eq!(n.after, out.steps - 1);
    // The curve ends at the step that diverged, with the last good weights.
    let last = out.records.last().unwrap();
    assert_eq!(last.step, out.steps);
}

#[test]
fn the_time_budget_ends_a_run_and_bad_plans_are_errors() {
    let mut n = net();
    let mut p = plan(50);
    p.max_seconds = 0.0;
    let out = fit(&mut n, &p, None, &mut NoHooks).unwrap();
    assert_eq!(out.steps, 1);
    let e = AdamW::<f64>::new(2, 0.9, 0.99, 1e-8)
        .with_decay(vec![0.0; 3])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("3 weight-decay factors for 2 parameters"),
        "{e}"
    );
}
