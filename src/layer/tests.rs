use super::*;
use candle_core::{DType, Device, Module, Tensor, Var};
use rand::SeedableRng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn cfg(causal: bool) -> ConvexAttentionConfig {
    ConvexAttentionConfig {
        heads: 2,
        n_tokens: 4,
        dim: 6,
        causal,
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut r = rng(seed);
    let len: usize = shape.iter().product();
    let v: Vec<f64> = (0..len)
        .map(|_| r.sample::<f64, _>(StandardNormal))
        .collect();
    Tensor::from_slice(&v, shape, &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    scalar(&(a - b).unwrap().abs().unwrap().max_all().unwrap())
}

#[test]
fn output_shapes_and_last_row() {
    for causal in [true, false] {
        let (layer, _) =
            ConvexAttention::init(cfg(causal), DType::F64, &Device::Cpu, &mut rng(1)).unwrap();
        let x = randn(&[3, 4, 6], 2);
        let y = layer.forward(&x).unwrap();
        assert_eq!(y.dims(), &[3, 4, 6]);
        let last = layer.forward_last(&x).unwrap();
        assert_eq!(last.dims(), &[3, 6]);
        let row = y.narrow(1, 3, 1).unwrap().squeeze(1).unwrap();
        assert!(max_abs_diff(&row, &last) < 1e-12);
        // f32 too.
        let (l32, _) =
            ConvexAttention::init(cfg(causal), DType::F32, &Device::Cpu, &mut rng(1)).unwrap();
        let y32 = l32.forward(&x.to_dtype(DType::F32).unwrap()).unwrap();
        assert_eq!(y32.dims(), &[3, 4, 6]);
        assert_eq!(y32.dtype(), DType::F32);
    }
    // Wrong input shapes are errors that say what was expected.
    let (layer, _) =
        ConvexAttention::init(cfg(true), DType::F64, &Device::Cpu, &mut rng(1)).unwrap();
    let e = layer
        .forward(&randn(&[2, 5, 6], 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("4 tokens of width 6"), "{e}");
    let bad = ConvexAttentionConfig {
        heads: 4,
        ..cfg(true)
    };
    assert!(bad.validate().unwrap_err().to_string().contains("multiple"));
}

#[test]
fn causal_mask_hides_later_tokens() {
    let (layer, _) =
        ConvexAttention::init(cfg(true), DType::F64, &Device::Cpu, &mut rng(3)).unwrap();
    let x = randn(&[2, 4, 6], 4);
    // Change token 2 of every sample.
    let delta = randn(&[2, 1, 6], 5);
    let x2 = Tensor::cat(
        &[
            x.narrow(1, 0, 2).unwrap(),
            (x.narrow(1, 2, 1).unwrap() + delta).unwrap(),
            x.narrow(1, 3, 1).unwrap(),
        ],
        1,
    )
    .unwrap();
    let (y, y2) = (layer.forward(&x).unwrap(), layer.forward(&x2).unwrap());
    for r in 0..4 {
        let d = max_abs_diff(&y.narrow(1, r, 1).unwrap(), &y2.narrow(1, r, 1).unwrap());
        if r < 2 {
            assert!(d == 0.0, "output {r} changed by {d} when token 2 changed");
        } else {
            assert!(d > 1e-6, "output {r} should depend on token 2");
        }
    }
    // Without the mask, every output depends on every token.
    let (open, _) =
        ConvexAttention::init(cfg(false), DType::F64, &Device::Cpu, &mut rng(3)).unwrap();
    let d0 = max_abs_diff(
        &open.forward(&x).unwrap().narrow(1, 0, 1).unwrap(),
        &open.forward(&x2).unwrap().narrow(1, 0, 1).unwrap(),
    );
    assert!(d0 > 1e-6);
    // The causal mixing matrices hold zeros above the diagonal.
    let w = layer.mixing.to_vec3::<f64>().unwrap();
    for wj in &w {
        for (r, row) in wj.iter().enumerate() {
            for (k, &v) in row.iter().enumerate() {
                assert_eq!(v == 0.0, k > r);
            }
        }
    }
}

#[test]
fn penalty_is_nonnegative_and_zero_only_at_zero() {
    let c = cfg(true);
    let zeros = |s: &[usize]| Tensor::zeros(s, DType::F64, &Device::Cpu).unwrap();
    let z = ConvexAttention::from_tensors(c, zeros(&[2, 4, 4]), zeros(&[6, 6]), zeros(&[6, 6]))
        .unwrap();
    assert_eq!(scalar(&z.penalty().unwrap()), 0.0);
    assert_eq!(scalar(&z.convex_penalty().unwrap()), 0.0);
    // Any one nonzero parameter block makes it positive.
    let mut w = vec![0.0; 32];
    w[16 + 4 + 1] = -0.3; // head 1, row 1, column 1
    let one_w = ConvexAttention::from_tensors(
        c,
        Tensor::from_slice(&w, (2, 4, 4), &Device::Cpu).unwrap(),
        zeros(&[6, 6]),
        zeros(&[6, 6]),
    )
    .unwrap();
    assert!((scalar(&one_w.penalty().unwrap()) - 0.5 * 0.09).abs() < 1e-15);
    let mut v = vec![0.0; 36];
    v[7] = 2.0;
    let one_v = ConvexAttention::from_tensors(
        c,
        zeros(&[2, 4, 4]),
        Tensor::from_slice(&v, (6, 6), &Device::Cpu).unwrap(),
        zeros(&[6, 6]),
    )
    .unwrap();
    assert!((scalar(&one_v.penalty().unwrap()) - 2.0).abs() < 1e-15);
    let one_o = ConvexAttention::from_tensors(
        c,
        zeros(&[2, 4, 4]),
        zeros(&[6, 6]),
        Tensor::from_slice(&v, (6, 6), &Device::Cpu).unwrap(),
    )
    .unwrap();
    assert!(scalar(&one_o.penalty().unwrap()) > 0.0);
    for seed in 0..5 {
        let (l, _) = ConvexAttention::init(c, DType::F64, &Device::Cpu, &mut rng(seed)).unwrap();
        let p = scalar(&l.penalty().unwrap());
        assert!(p > 0.0 && p.is_finite());
        // By hand: ½ Σ_j (max_r Σ_k |W̃|)² + ½‖V‖² + ½‖O‖².
        let w = l.masked_mixing().unwrap().to_vec3::<f64>().unwrap();
        let a: f64 = w
            .iter()
            .map(|wj| {
                let m = wj
                    .iter()
                    .map(|row| row.iter().map(|v| v.abs()).sum::<f64>())
                    .fold(0.0, f64::max);
                m * m
            })
            .sum();
        let sq = |t: &Tensor| scalar(&t.sqr().unwrap().sum_all().unwrap());
        let expect = 0.5 * (a + sq(&l.value) + sq(&l.output));
        assert!((p - expect).abs() < 1e-12 * expect, "{p} vs {expect}");
    }
}

#[test]
fn convex_variables_reproduce_the_layer_and_bound_the_penalty() {
    for causal in [true, false] {
        let (l, _) =
            ConvexAttention::init(cfg(causal), DType::F64, &Device::Cpu, &mut rng(7)).unwrap();
        let x = randn(&[3, 4, 6], 8);
        let y = l.forward(&x).unwrap().to_vec3::<f64>().unwrap();
        let c = l.convex_variables().unwrap();
        assert_eq!(c.dims(), &[4, 4, 6, 6]);
        let cv = c.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let xv = x.to_vec3::<f64>().unwrap();
        // out[r, l] = Σ_{k,q} C[r, k, q, l] X[k, q]  (SPEC §4c).
        for b in 0..3 {
            for r in 0..4 {
                for o in 0..6 {
                    let mut s = 0.0;
                    for k in 0..4 {
                        for q in 0..6 {
                            s += cv[((r * 4 + k) * 6 + q) * 6 + o] * xv[b][k][q];
                        }
                    }
                    assert!((s - y[b][r][o]).abs() < 1e-12, "{s} vs {}", y[b][r][o]);
                }
            }
        }
        // Σ_{q,l} ‖C_{ql}‖_{∞,1} ≤ Σ_j ‖W̃_j‖_{∞,1} ‖V_j O_j‖₁.
        let cp = scalar(&l.convex_penalty().unwrap());
        let m = l.head_maps().unwrap();
        let m1 = m.abs().unwrap().sum((1, 2)).unwrap();
        let wn = l
            .masked_mixing()
            .unwrap()
            .abs()
            .unwrap()
            .sum(2)
            .unwrap()
            .max(1)
            .unwrap();
        let bound = scalar(&(wn * m1).unwrap().sum_all().unwrap());
        assert!(cp > 0.0 && cp <= bound * (1.0 + 1e-12), "{cp} vs {bound}");
        // By hand, for C_{ql} from the full tensor.
        let mut by_hand = 0.0;
        for q in 0..6 {
            for o in 0..6 {
                let mut mx: f64 = 0.0;
                for r in 0..4 {
                    let s: f64 = (0..4)
                        .map(|k| cv[((r * 4 + k) * 6 + q) * 6 + o].abs())
                        .sum();
                    mx = mx.max(s);
                }
                by_hand += mx;
            }
        }
        assert!((cp - by_hand).abs() < 1e-12 * by_hand);
    }
}

/// loss(θ) = Σ G ∘ forward(X) + λ·penalty, with its gradient from candle's
/// backward pass against central differences, every parameter entry.
#[test]
fn gradients_match_finite_differences() {
    for causal in [true, false] {
        let c = ConvexAttentionConfig {
            heads: 2,
            n_tokens: 3,
            dim: 4,
            causal,
        };
        let (_, vars) = ConvexAttention::init(c, DType::F64, &Device::Cpu, &mut rng(11)).unwrap();
        let x = randn(&[2, 3, 4], 12);
        let g = randn(&[2, 3, 4], 13);
        let gl = randn(&[2, 4], 14);
        let lam = 0.7;
        let loss = |vars: &[Var; 3]| -> Tensor {
            let l = ConvexAttention::from_tensors(
                c,
                vars[0].as_tensor().clone(),
                vars[1].as_tensor().clone(),
                vars[2].as_tensor().clone(),
            )
            .unwrap();
            let a = (l.forward(&x).unwrap() * &g).unwrap().sum_all().unwrap();
            let b = (l.forward_last(&x).unwrap() * &gl)
                .unwrap()
                .sum_all()
                .unwrap();
            let p = (l.penalty().unwrap() * lam).unwrap();
            ((a + b).unwrap() + p).unwrap()
        };
        let grads = loss(&vars).backward().unwrap();
        let h = 1e-6;
        let mut checked = 0;
        for (vi, var) in vars.iter().enumerate() {
            let analytic = grads
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let base = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let shape = var.shape().clone();
            for e in 0..base.len() {
                if vi == 0 && base[e] == 0.0 {
                    // A masked entry: no effect on the output or the penalty.
                    assert_eq!(analytic[e], 0.0);
                    continue;
                }
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[e] += delta;
                    var.set(&Tensor::from_slice(&v, &shape, &Device::Cpu).unwrap())
                        .unwrap();
                    let f = scalar(&loss(&vars));
                    var.set(&Tensor::from_slice(&base, &shape, &Device::Cpu).unwrap())
                        .unwrap();
                    f
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                let tol = 1e-6 * (1.0 + fd.abs());
                assert!(
                    (fd - analytic[e]).abs() < tol,
                    "param {vi} entry {e}: finite difference {fd}, backward {}",
                    analytic[e]
                );
                checked += 1;
            }
        }
        assert!(checked > 30);
    }
}

#[test]
fn builds_from_a_varmap() {
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let l = ConvexAttention::new(cfg(true), vb.pp("attn")).unwrap();
    assert_eq!(vm.all_vars().len(), 3);
    let y = l
        .forward(&Tensor::ones((2, 4, 6), DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(y.dims(), &[2, 4, 6]);
    let grads = l.penalty().unwrap().backward().unwrap();
    for v in vm.all_vars() {
        assert!(grads.get(&v).is_some());
    }
    assert_eq!(l.n_params(), 2 * 10 + 2 * 36);
}

#[test]
fn fused_mixing_matches_the_composed_ops() {
    for causal in [true, false] {
        let (l, vars) =
            ConvexAttention::init(cfg(causal), DType::F64, &Device::Cpu, &mut rng(21)).unwrap();
        let xv = Var::from_tensor(&randn(&[3, 4, 6], 22)).unwrap();
        for last in [false, true] {
            let a = l.mix(xv.as_tensor(), last).unwrap();
            let b = l.mix_composed(xv.as_tensor(), last).unwrap();
            assert_eq!(a.dims(), b.dims());
            assert!(max_abs_diff(&a, &b) < 1e-13);
            let g = randn(a.dims(), 23);
            let ga = (a * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &g).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&xv, &vars[0]] {
                let d = max_abs_diff(ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(
                    d < 1e-12,
                    "causal={causal} last={last}: gradient differs by {d}"
                );
            }
        }
    }
}
