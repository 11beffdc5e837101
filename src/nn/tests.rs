//! The fused engine against candle's autograd on the same network.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{AdamW, Engine};
use crate::grok::model::{AttentionKind, Transformer, TransformerConfig};
use crate::nn::ops::tensor_values;

fn config(attention: AttentionKind, layers: usize) -> TransformerConfig {
    TransformerConfig {
        vocab: 11,
        n_classes: 7,
        seq_len: 4,
        width: 16,
        heads: 4,
        layers,
        mlp_ratio: 4,
        attention,
    }
}

fn batch(c: &TransformerConfig, b: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tokens = (0..b * c.seq_len)
        .map(|_| rng.random_range(0..c.vocab as u32))
        .collect();
    let labels = (0..b)
        .map(|_| rng.random_range(0..c.n_classes as u32))
        .collect();
    (tokens, labels)
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}[{i}]: engine {g}, candle {w}"
        );
    }
}

fn values(g: &GradStore, v: &Var) -> Vec<f64> {
    match g.get(v) {
        Some(t) => tensor_values::<f64>(t).unwrap(),
        None => vec![0.0; v.elem_count()],
    }
}

#[test]
fn logits_loss_and_gradients_match_candle_autograd() {
    let dev = Device::Cpu;
    for attention in [AttentionKind::Softmax, AttentionKind::Convex] {
        for layers in [1, 2] {
            let c = config(attention, layers);
            let model = Transformer::init(c, DType::F64, &dev, 3).unwrap();
            let mut e = Engine::<f64>::from_transformer(&model).unwrap();
            // Batch sizes through one engine (the workspace is resized), in
            // one shard and in several (the last one shorter).
            for (b, seed, shard) in [(9, 1, 64), (5, 2, 64), (9, 3, 2), (7, 4, 3)] {
                e.set_shard_sequences(shard);
                let (tokens, labels) = batch(&c, b, seed);
                e.forward(&tokens).unwrap();
                let (loss, correct) = e.cross_entropy(&labels).unwrap();
                e.backward();
                let t = Tensor::from_slice(&tokens, (b, c.seq_len), &dev).unwrap();
                let y = Tensor::from_slice(&labels, b, &dev).unwrap();
                let logits = model.forward(&t).unwrap();
                let what = format!("{attention:?} L={layers} b={b} shard={shard}");
                close(e.logits(), &tensor_values(&logits).unwrap(), 1e-12, &what);
                let l = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
                let want = l.to_scalar::<f64>().unwrap();
                assert!((loss - want).abs() < 1e-12, "{what}: loss {loss} vs {want}");
                let pred = tensor_values::<u32>(&logits.argmax(1).unwrap()).unwrap();
                let hits = pred.iter().zip(&labels).filter(|(p, y)| p == y).count();
                assert_eq!(correct, hits, "{what}: accuracy");
                let grads = l.backward().unwrap();
                for (p, s) in model.params.iter().zip(&e.slots) {
                    assert_eq!(p.name, s.name);
                    let w = values(&grads, &p.var);
                    close(
                        &e.grads[s.range()],
                        &w,
                        1e-10,
                        &format!("{what} {}", s.name),
                    );
                }
            }
        }
    }
}

#[test]
fn penalty_and_its_gradient_match_candle_autograd() {
    let dev = Device::Cpu;
    let c = config(AttentionKind::Convex, 2);
    let model = Transformer::init(c, DType::F64, &dev, 5).unwrap();
    let e = Engine::<f64>::from_transformer(&model).unwrap();
    let mut g = vec![0.0; e.params.len()];
    let value = e.add_penalty_grad(0.7, &mut g);
    let r = model.group_penalty().unwrap().unwrap();
    let want = r.to_scalar::<f64>().unwrap() * 0.7;
    assert!((value - want).abs() < 1e-12 * want.abs().max(1.0));
    let grads = r.backward().unwrap();
    for (p, s) in model.params.iter().zip(&e.slots) {
        let w: Vec<f64> = values(&grads, &p.var).iter().map(|v| v * 0.7).collect();
        close(&g[s.range()], &w, 1e-12, &s.name);
    }
}

#[test]
fn adamw_matches_candle_nn_over_steps() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut draw = |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    for wd in [0.0, 0.3] {
        let init = draw(50);
        let var = Var::from_tensor(&Tensor::from_slice(&init, 50, &dev).unwrap()).unwrap();
        let params = candle_nn::ParamsAdamW {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: wd,
        };
        let mut theirs = candle_nn::AdamW::new(vec![var.clone()], params).unwrap();
        let mut ours = AdamW::<f64>::new(50, 0.9, 0.98, 1e-8);
        let mut theta = init.clone();
        for step in 0..4 {
            let g = draw(50);
            let lr = 0.01 * (step + 1) as f64;
            // The gradient of Σ g∘θ is g.
            let gt = Tensor::from_slice(&g, 50, &dev).unwrap();
            let loss = (var.as_tensor() * &gt).unwrap().sum_all().unwrap();
            theirs.set_learning_rate(lr);
            theirs.step(&loss.backward().unwrap()).unwrap();
            ours.step(&mut theta, &g, &[wd; 50], lr);
            close(&theta, &tensor_values(var.as_tensor()).unwrap(), 1e-13, "θ");
        }
    }
}

#[test]
fn bad_tokens_and_labels_are_errors() {
    let c = config(AttentionKind::Softmax, 1);
    let model = Transformer::init(c, DType::F32, &Device::Cpu, 0).unwrap();
    let mut e = Engine::<f32>::from_transformer(&model).unwrap();
    e.backward();
    assert!(e.grads.iter().all(|&g| g == 0.0), "no batch: no gradient");
    assert!(e.cross_entropy(&[]).is_err(), "no forward pass yet");
    assert!(e.forward(&[0, 1, 2]).is_err(), "not a whole sequence");
    assert!(
        e.forward(&[0, 1, 2, 11]).is_err(),
        "token outside the vocabulary"
    );
    e.forward(&[0, 1, 2, 3]).unwrap();
    assert!(e.cross_entropy(&[7]).is_err(), "label outside the classes");
    assert!(e.cross_entropy(&[1, 2]).is_err(), "label count");
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let dev = Device::Cpu;
    for attention in [AttentionKind::Softmax, AttentionKind::Convex] {
        let c = config(attention, 2);
        let model = Transformer::init(c, DType::F32, &dev, 7).unwrap();
        let (tokens, labels) = batch(&c, 11, 5);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut e = Engine::<f32>::from_transformer(&model).unwrap();
                e.set_shard_sequences(3);
                e.forward(&tokens).unwrap();
                let (loss, _) = e.cross_entropy(&labels).unwrap();
                e.backward();
                (loss, e.logits().to_vec(), e.grads.clone())
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(
                run(threads) == one,
                "{attention:?}: {threads} threads differ from one"
            );
        }
    }
}
