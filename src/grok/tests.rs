use super::data::*;
use super::*;
use candle_core::{DType, Device, Tensor};
use std::collections::HashSet;

#[test]
fn every_pair_appears_once_with_the_right_answer() {
    for op in ModOp::ALL {
        for p in [7u32, 97] {
            let e = all_examples(op, p);
            let expect = if op == ModOp::Div { p * (p - 1) } else { p * p } as usize;
            assert_eq!(e.len(), expect, "{op:?} mod {p}");
            let pairs: HashSet<(u32, u32)> = e.pairs.iter().copied().collect();
            assert_eq!(pairs.len(), expect, "a pair repeats");
            for (i, &(x, y)) in e.pairs.iter().enumerate() {
                let t = &e.tokens[i * SEQ_LEN..(i + 1) * SEQ_LEN];
                assert_eq!(t, &[x, p + op.index() as u32, y, eq_token(p)]);
                let (xu, yu, a, pu) = (x as u64, y as u64, e.answers[i] as u64, p as u64);
                assert!(a < pu);
                let ok = match op {
                    ModOp::Add => (xu + yu) % pu == a,
                    ModOp::Sub => (a + yu) % pu == xu,
                    ModOp::Mul => xu * yu % pu == a,
                    // a = x·y⁻¹  ⇔  a·y ≡ x (y ≠ 0).
                    ModOp::Div => yu != 0 && a * yu % pu == xu,
                    ModOp::Poly => (xu * xu + xu * yu + yu * yu) % pu == a,
                    ModOp::Poly2 => (xu * xu * xu + xu * yu) % pu == a,
                };
                assert!(ok, "{op:?}: {x} ∘ {y} mod {p} gave {a}");
            }
        }
    }
    // Spot values mod 97: 1/2 = 49 (2·49 = 98 ≡ 1); 5/3 = 5·65 = 325 ≡ 34.
    assert_eq!(ModOp::Div.apply(1, 2, 97), Some(49));
    assert_eq!(ModOp::Div.apply(5, 3, 97), Some(34));
    assert_eq!(ModOp::Div.apply(5, 0, 97), None);
    assert_eq!(ModOp::Poly.apply(3, 4, 97), Some(37));
    assert_eq!(ModOp::Poly2.apply(3, 4, 97), Some(39));
    assert_ne!(ModOp::Poly2.apply(4, 3, 97), ModOp::Poly2.apply(3, 4, 97));
    assert_eq!(ModOp::Sub.apply(2, 5, 7), Some(4));
    assert!(is_prime(97) && !is_prime(91) && !is_prime(1));
    assert_eq!(mod_pow(3, 96, 97), 1);
}

#[test]
fn split_sizes_are_exact_disjoint_and_seeded() {
    let t = ModularTask::new(ModOp::Div, 97, 0.5, 3).unwrap();
    assert_eq!(t.train.len() + t.val.len(), 97 * 96);
    assert_eq!(t.train.len(), 4656);
    let a: HashSet<_> = t.train.pairs.iter().collect();
    let b: HashSet<_> = t.val.pairs.iter().collect();
    assert!(a.is_disjoint(&b));
    let t2 = ModularTask::new(ModOp::Div, 97, 0.5, 3).unwrap();
    assert_eq!(t.train, t2.train);
    let t3 = ModularTask::new(ModOp::Div, 97, 0.5, 4).unwrap();
    assert_ne!(t.train, t3.train);
    let t4 = ModularTask::new(ModOp::Add, 7, 0.3, 0).unwrap();
    assert_eq!(t4.train.len(), (49.0f64 * 0.3).round() as usize);
    assert_eq!(t4.vocab(), 14);
    // Errors.
    assert!(ModularTask::new(ModOp::Add, 91, 0.5, 0)
        .unwrap_err()
        .to_string()
        .contains("prime"));
    assert!(ModularTask::new(ModOp::Add, 7, 1.0, 0).is_err());
    assert!(ModOp::parse("pow").is_err());
    assert_eq!(ModOp::parse("/").unwrap(), ModOp::Div);
    // One-hot data for the core solver.
    let ds = one_hot_dataset(&t4.train, 7).unwrap();
    assert_eq!(ds.shape(), (t4.train.len(), 4, 14, 7));
    assert_eq!(ds.x.iter().sum::<f64>(), 4.0 * t4.train.len() as f64);
    assert_eq!(ds.labels.as_ref().unwrap()[0], t4.train.answers[0] as usize);
}

fn tiny_config(layers: usize, attention: AttentionKind) -> TransformerConfig {
    TransformerConfig {
        vocab: vocab_size(7),
        n_classes: 7,
        seq_len: SEQ_LEN,
        width: 16,
        heads: 4,
        layers,
        mlp_ratio: 4,
        attention,
    }
}

#[test]
fn model_shapes_and_last_position_shortcut() {
    let t = ModularTask::new(ModOp::Div, 7, 0.5, 0).unwrap();
    let tokens =
        Tensor::from_slice(&t.train.tokens[..5 * SEQ_LEN], (5, SEQ_LEN), &Device::Cpu).unwrap();
    for layers in [1, 2] {
        for kind in [AttentionKind::Softmax, AttentionKind::Convex] {
            for dtype in [DType::F32, DType::F64] {
                let m =
                    Transformer::init(tiny_config(layers, kind), dtype, &Device::Cpu, 1).unwrap();
                let y = m.forward(&tokens).unwrap();
                assert_eq!(y.dims(), &[5, 7]);
                assert_eq!(y.dtype(), dtype);
                let all = m.forward_all_positions(&tokens).unwrap();
                assert_eq!(all.dims(), &[5, SEQ_LEN, 7]);
                if dtype == DType::F64 {
                    let last = all.narrow(1, SEQ_LEN - 1, 1).unwrap().squeeze(1).unwrap();
                    let d = (&last - &y)
                        .unwrap()
                        .abs()
                        .unwrap()
                        .max_all()
                        .unwrap()
                        .to_scalar::<f64>()
                        .unwrap();
                    assert!(d < 1e-12, "L={layers} {kind:?}: {d}");
                }
                let pen = m.group_penalty().unwrap();
                assert_eq!(pen.is_some(), kind == AttentionKind::Convex);
                // Parameters: embeddings, blocks, final norm, unembedding.
                let d = 16;
                let attn = match kind {
                    AttentionKind::Softmax => 4 * d * d,
                    AttentionKind::Convex => 4 * 10 + 2 * d * d,
                };
                let block = 4 * d + attn + (d * 4 * d + 4 * d) + (4 * d * d + d);
                let expect = 14 * d + 4 * d + layers * block + 2 * d + d * 7 + 7;
                assert_eq!(m.n_params(), expect);
            }
        }
    }
    let m = Transformer::init(
        tiny_config(1, AttentionKind::Softmax),
        DType::F32,
        &Device::Cpu,
        1,
    )
    .unwrap();
    let short = Tensor::zeros((2, 3), DType::U32, &Device::Cpu).unwrap();
    assert!(m
        .forward(&short)
        .unwrap_err()
        .to_string()
        .contains("4 tokens"));
}

#[test]
fn softmax_attention_is_causal() {
    // Changing the last token must not change the earlier positions' logits.
    let m = Transformer::init(
        tiny_config(2, AttentionKind::Softmax),
        DType::F64,
        &Device::Cpu,
        5,
    )
    .unwrap();
    let a = Tensor::new(&[[1u32, 10, 2, 13]], &Device::Cpu).unwrap();
    let b = Tensor::new(&[[1u32, 10, 2, 3]], &Device::Cpu).unwrap();
    let ya = m.forward_all_positions(&a).unwrap();
    let yb = m.forward_all_positions(&b).unwrap();
    let diff = |r: usize| {
        (ya.narrow(1, r, 1).unwrap() - yb.narrow(1, r, 1).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    assert_eq!(diff(0), 0.0);
    assert_eq!(diff(2), 0.0);
    assert!(diff(3) > 1e-9);
}

#[test]
fn a_tiny_run_fits_the_training_set() {
    let task = ModularTask::new(ModOp::Add, 7, 0.6, 0).unwrap();
    for kind in [AttentionKind::Softmax, AttentionKind::Convex] {
        let cfg = TrainConfig {
            steps: 300,
            batch_size: 32,
            lr: 3e-3,
            weight_decay: 0.1,
            penalty: 0.1,
            eval_every: 50,
            ..TrainConfig::default()
        };
        let mut seen = 0;
        let run = train(tiny_config(1, kind), &cfg, &task.train, &task.val, |_| {
            seen += 1
        })
        .unwrap();
        let last = run.records.last().unwrap();
        assert_eq!(last.step, 300);
        assert_eq!(seen, run.records.len());
        assert!(!run.diverged);
        assert_eq!(
            last.train_acc, 1.0,
            "{kind:?}: train accuracy {}",
            last.train_acc
        );
        assert!(last.train_loss < run.records[0].train_loss);
        let m = run_milestones(&run.records);
        assert!(m.train99_step.unwrap() <= 300);
        // Evaluation points: 0, 1, 2, 4, …, multiples of 50, 300.
        let steps: Vec<_> = run.records.iter().map(|r| r.step).collect();
        assert_eq!(&steps[..7], &[0, 1, 2, 4, 8, 16, 32]);
        assert!(steps.contains(&250) && steps.ends_with(&[300]));
    }
}

#[test]
fn coupled_penalty_and_two_layers_train() {
    let task = ModularTask::new(ModOp::Sub, 7, 0.6, 1).unwrap();
    let cfg = TrainConfig {
        steps: 20,
        batch_size: 16,
        penalty_mode: PenaltyMode::Coupled,
        dtype: DType::F64,
        ..TrainConfig::default()
    };
    let run = train(
        tiny_config(2, AttentionKind::Convex),
        &cfg,
        &task.train,
        &task.val,
        |_| {},
    )
    .unwrap();
    assert_eq!(run.steps, 20);
    assert!(run.records.iter().all(|r| r.train_loss.is_finite()));
    assert!(TrainConfig { steps: 0, ..cfg }.validate().is_err());
}

#[test]
fn milestones_read_the_first_crossing() {
    let pts = [
        (0, 0.0, 0.1, 0.0),
        (100, 1.0, 0.995, 0.05),
        (200, 2.0, 1.0, 0.5),
        (300, 3.0, 1.0, 0.99),
        (400, 4.0, 0.98, 1.0),
    ];
    let m = milestones(&pts);
    assert_eq!(m.train99_step, Some(100));
    assert_eq!(m.val99_step, Some(300));
    assert_eq!(m.grok_gap_steps, Some(200));
    assert_eq!(m.grok_gap_seconds, Some(2.0));
    let none = milestones(&pts[..2]);
    assert_eq!(none.val99_step, None);
    assert_eq!(none.grok_gap_steps, None);
    assert_eq!(
        ModelChoice::parse_list("standard, global,standard").unwrap(),
        vec![ModelChoice::Standard, ModelChoice::Global]
    );
    assert!(ModelChoice::parse_list("lstm").is_err());
}

#[test]
fn the_global_convex_model_is_certified() {
    let task = ModularTask::new(ModOp::Add, 7, 0.6, 0).unwrap();
    let cfg = GlobalConfig {
        gates: 8,
        n_betas: 4,
        beta_ratio: 1e-2,
        tol: 1e-6,
        max_seconds_per_beta: 30.0,
        ..GlobalConfig::default()
    };
    let mut seen = 0;
    let run = run_global(&task, &cfg, 0, |_| seen += 1).unwrap();
    assert_eq!(run.points.len(), 5);
    assert_eq!(seen, 5);
    assert!(run.beta_max > 0.0);
    assert_eq!(run.n_blocks, 8 * 4);
    for p in &run.points[1..] {
        assert!(p.converged, "β={} gap {:?}", p.beta, p.certificate);
        assert!(p.certificate.relative_gap <= 1e-6);
        assert!(p.certificate.gap >= -1e-9);
    }
    let last = run.points.last().unwrap();
    assert!(last.train_loss < run.points[0].train_loss);
    assert!(last.train_acc > run.points[0].train_acc);
    // The path is decreasing in β.
    assert!(run.points.windows(2).skip(1).all(|w| w[1].beta < w[0].beta));
}

#[test]
fn fused_kernels_match_composed_ops_and_finite_differences() {
    use candle_core::{Module, Var};
    let dev = Device::Cpu;
    let randn = |shape: &[usize], seed: u64| {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let len: usize = shape.iter().product();
        let v: Vec<f64> = (0..len)
            .map(|_| r.sample::<f64, _>(rand_distr::StandardNormal))
            .collect();
        Tensor::from_slice(&v, shape, &dev).unwrap()
    };
    let maxdiff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    // Layer norm: value and all three gradients against the composed version.
    let x = Var::from_tensor(&randn(&[3, 4, 8], 1)).unwrap();
    let w = Var::from_tensor(&randn(&[8], 2)).unwrap();
    let b = Var::from_tensor(&randn(&[8], 3)).unwrap();
    let ln = super::model::LayerNorm {
        weight: w.as_tensor().clone(),
        bias: b.as_tensor().clone(),
        eps: 1e-5,
    };
    let g = randn(&[3, 4, 8], 4);
    let yf = ln.forward(x.as_tensor()).unwrap();
    let yc = ln.forward_composed(x.as_tensor()).unwrap();
    assert!(maxdiff(&yf, &yc) < 1e-12);
    let gf = (yf * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let gc = (yc * &g).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&x, &w, &b] {
        let d = maxdiff(gf.get(v).unwrap(), gc.get(v).unwrap());
        assert!(d < 1e-10, "layer norm gradient differs by {d}");
    }
    // Bias add: value and both gradients against broadcast_add.
    let xb = Var::from_tensor(&randn(&[5, 8], 11)).unwrap();
    let bb = Var::from_tensor(&randn(&[8], 12)).unwrap();
    let gb = randn(&[5, 8], 13);
    let f = crate::nn::ops::bias_add(xb.as_tensor(), bb.as_tensor()).unwrap();
    let c = xb.as_tensor().broadcast_add(bb.as_tensor()).unwrap();
    assert!(maxdiff(&f, &c) < 1e-15);
    let gf = (f * &gb).unwrap().sum_all().unwrap().backward().unwrap();
    let gc = (c * &gb).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&xb, &bb] {
        assert!(maxdiff(gf.get(v).unwrap(), gc.get(v).unwrap()) < 1e-12);
    }
    assert!(crate::nn::ops::bias_add(xb.as_tensor(), &randn(&[7], 1)).is_err());
    // Attention: value and gradients against the composed version, all rows
    // and the last row, then a finite-difference check of the fused backward.
    let m = Transformer::init(tiny_config(1, AttentionKind::Softmax), DType::F64, &dev, 9).unwrap();
    let att = match &m.blocks[0].attn {
        super::model::Attention::Softmax(a) => a.clone(),
        _ => unreachable!(),
    };
    let xa = Var::from_tensor(&randn(&[2, 4, 16], 5)).unwrap();
    for last in [false, true] {
        let f = att.attend_fused(xa.as_tensor(), last).unwrap();
        let c = att.attend_composed(xa.as_tensor()).unwrap();
        let c = if last {
            c.narrow(1, 3, 1).unwrap().squeeze(1).unwrap()
        } else {
            c
        };
        assert!(maxdiff(&f, &c) < 1e-12);
        let g = randn(f.dims(), 6);
        let gf = (f * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gc = (c * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let d = maxdiff(gf.get(&xa).unwrap(), gc.get(&xa).unwrap());
        assert!(d < 1e-10, "attention gradient (last={last}) differs by {d}");
    }
    let qkv = Var::from_tensor(&randn(&[2, 3, 12], 7)).unwrap();
    let g = randn(&[2, 3, 4], 8);
    let f = |t: &Tensor| {
        (crate::nn::ops::causal_attention(t, 2, false).unwrap() * &g)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let an = (crate::nn::ops::causal_attention(qkv.as_tensor(), 2, false).unwrap() * &g)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let an = an
        .get(&qkv)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let base = qkv
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for e in 0..base.len() {
        let at = |h: f64| {
            let mut v = base.clone();
            v[e] += h;
            f(&Tensor::from_slice(&v, (2, 3, 12), &dev).unwrap())
        };
        let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
        assert!(
            (fd - an[e]).abs() < 1e-6 * (1.0 + fd.abs()),
            "entry {e}: {fd} vs {}",
            an[e]
        );
    }
}

/// Stops after `stop_at` steps (when given) and keeps every state it is handed.
struct Stopper {
    /// Times [`TrainHooks::stop`] was asked: once before every step.
    asked: std::cell::Cell<usize>,
    stop_at: Option<usize>,
    every: usize,
    states: Vec<TrainState>,
}

impl Stopper {
    fn new(stop_at: Option<usize>, every: usize) -> Self {
        Stopper {
            asked: Default::default(),
            stop_at,
            every,
            states: vec![],
        }
    }
}

impl TrainHooks<Record> for Stopper {
    fn stop(&self) -> bool {
        let k = self.asked.get();
        self.asked.set(k + 1);
        self.stop_at == Some(k)
    }
    fn checkpoint_every(&self) -> usize {
        self.every
    }
    fn checkpoint(&mut self, s: &TrainState) -> Result<()> {
        self.states.push(s.clone());
        Ok(())
    }
}

/// Records without their timings (which differ between runs).
fn untimed(run: &TrainRun) -> Vec<(usize, f64, f64, f64, f64)> {
    run.records
        .iter()
        .map(|r| (r.step, r.train_loss, r.train_acc, r.val_loss, r.val_acc))
        .collect()
}

#[test]
fn a_stopped_run_resumed_from_its_saved_state_ends_as_an_uninterrupted_one() {
    let task = ModularTask::new(ModOp::Add, 7, 0.6, 0).unwrap();
    for (kind, dtype) in [
        (AttentionKind::Softmax, DType::F32),
        (AttentionKind::Convex, DType::F64),
    ] {
        // Batches of 12 from 29 pairs: epochs end mid-run, so the batch
        // order and the shuffling stream must both be carried over.
        let cfg = TrainConfig {
            steps: 90,
            batch_size: 12,
            lr: 3e-3,
            eval_every: 20,
            penalty: 0.1,
            dtype,
            ..TrainConfig::default()
        };
        let config = tiny_config(1, kind);
        let run = |resume: Option<TrainState>, hooks: &mut Stopper| {
            train_with(config, &cfg, &task.train, &task.val, resume, hooks).unwrap()
        };
        let mut hooks = Stopper::new(None, 25);
        let whole = run(None, &mut hooks);
        assert!(!whole.interrupted);
        let saved: Vec<usize> = hooks.states.iter().map(|s| s.step).collect();
        assert_eq!(saved, [25, 50, 75], "{kind:?}");
        let periodic = hooks.states.swap_remove(0);

        // Stopped after 33 steps, between two evaluations: the run ends with
        // an evaluation at step 33, and hands out its state at step 33.
        let mut hooks = Stopper::new(Some(33), 0);
        let stopped = run(None, &mut hooks);
        assert!(stopped.interrupted, "{kind:?}");
        assert_eq!(stopped.steps, 33);
        let (last, before) = stopped.records.split_last().unwrap();
        assert_eq!(last.step, 33);
        assert_eq!(
            untimed(&stopped)[..before.len()],
            untimed(&whole)[..before.len()]
        );
        assert_eq!(hooks.states.len(), 1);
        let state = hooks.states.pop().unwrap();
        assert_eq!(state.step, 33);
        assert_eq!(
            state.records.len(),
            before.len(),
            "no record of the stop in the state"
        );

        // Through a file, then on to the end: the same run as never stopped.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.safetensors");
        state.save(&file).unwrap();
        let back = TrainState::load(&file).unwrap();
        assert_eq!(back, state, "{kind:?}: the state reads back exactly");
        let resumed = run(Some(back), &mut Stopper::new(None, 0));
        assert!(!resumed.interrupted);
        assert_eq!(resumed.steps, 90);
        assert_eq!(untimed(&resumed), untimed(&whole), "{kind:?}");

        // From a periodic state (a crash after step 25) too.
        let resumed = run(Some(periodic), &mut Stopper::new(None, 0));
        assert_eq!(untimed(&resumed), untimed(&whole), "{kind:?}");
    }
}

#[test]
fn a_state_of_another_run_is_refused() {
    let task = ModularTask::new(ModOp::Add, 7, 0.6, 0).unwrap();
    let cfg = TrainConfig {
        steps: 10,
        batch_size: 8,
        ..TrainConfig::default()
    };
    let config = tiny_config(1, AttentionKind::Softmax);
    let mut hooks = Stopper::new(None, 5);
    train_with(config, &cfg, &task.train, &task.val, None, &mut hooks).unwrap();
    let state = hooks.states[0].clone();
    let refused = |config: TransformerConfig, cfg: &TrainConfig, task: &ModularTask| {
        train_with(
            config,
            cfg,
            &task.train,
            &task.val,
            Some(state.clone()),
            &mut Stopper::new(None, 0),
        )
        .unwrap_err()
        .to_string()
    };
    let wider = TransformerConfig {
        layers: 2,
        ..config
    };
    let err = refused(wider, &cfg, &task);
    assert!(err.contains("parameters, the network has"), "{err}");
    let f64_cfg = TrainConfig {
        dtype: DType::F64,
        ..cfg.clone()
    };
    let err = refused(config, &f64_cfg, &task);
    assert!(err.contains("it trains in F32, this run in F64"), "{err}");
    let other = ModularTask::new(ModOp::Add, 7, 0.5, 0).unwrap();
    let err = refused(config, &cfg, &other);
    assert!(err.contains("batch order is for"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.safetensors");
    std::fs::write(&file, b"not safetensors").unwrap();
    let err = TrainState::load(&file).unwrap_err().to_string();
    assert!(
        err.contains("not a convexformer training checkpoint"),
        "{err}"
    );
}
