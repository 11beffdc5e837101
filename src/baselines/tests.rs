//! Naive index loops here are the reference the tensor code is checked against.
#![allow(clippy::needless_range_loop)]

use super::Trainable;
use super::*;
use crate::data::synthetic::{generate, SyntheticSpec, TargetKind};
use crate::operator::TokenOperator;
use crate::problem::{Problem, Program};
use crate::recovery::nonconvex_objective;
use crate::solver::{beta_max, solve, SolverOptions};
use crate::testutil::random_instance;
use candle_core::Var;
use rand::Rng;

fn planted(n_samples: usize, n: usize, d: usize, active: usize, seed: u64) -> Dataset<'static> {
    let spec = SyntheticSpec {
        n_samples,
        n_tokens: n,
        n_features: d,
        n_outputs: 1,
        active,
        noise: 0.1,
        seed,
        kind: TargetKind::Real,
        rho: 0.0,
        decay: 0.0,
    };
    generate(&spec).unwrap().0
}

/// The certified optimum of the convex program matching `obj` at β.
fn certified(
    data: &Dataset,
    program: Program,
    loss: Loss,
    frac: f64,
    intercept: bool,
) -> (f64, Certificate, usize) {
    let op = TokenOperator::new(data, None);
    let mut p = Problem::new(op, loss, program.penalty(), 1.0, intercept).unwrap();
    p.beta = frac * beta_max(&p);
    let opts = SolverOptions {
        tol: 1e-11,
        ..Default::default()
    };
    let sol = solve(&p, &opts, None).unwrap();
    let heads = crate::recovery::recover_heads(
        &sol.coef,
        p.penalty,
        data.n_tokens,
        data.n_outputs,
        data.n_features,
        false,
    );
    (p.beta, sol.certificate, heads.len())
}

// ---------------------------------------------------------------- projection

/// The projection by enumeration of supports: for each support S, the point
/// u_S − (Σu_S − 1)/|S| (0 off S) when it is ≥ 0; the closest one.
fn project_brute(u: &[f64]) -> Vec<f64> {
    let n = u.len();
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mask in 1u32..(1 << n) {
        let idx: Vec<usize> = (0..n).filter(|k| mask & (1 << k) != 0).collect();
        let s: f64 = idx.iter().map(|&k| u[k]).sum();
        let tau = (s - 1.0) / idx.len() as f64;
        let mut x = vec![0.0; n];
        let mut ok = true;
        for &k in &idx {
            x[k] = u[k] - tau;
            ok &= x[k] >= -1e-15;
        }
        if ok {
            let dist: f64 = x.iter().zip(u).map(|(a, b)| (a - b) * (a - b)).sum();
            if best.as_ref().is_none_or(|(bd, _)| dist < *bd) {
                best = Some((dist, x));
            }
        }
    }
    best.unwrap().1
}

#[test]
fn projection_onto_the_simplex_matches_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for trial in 0..500 {
        let n = 1 + trial % 7;
        let scale = [0.1, 1.0, 10.0][trial % 3];
        let u: Vec<f64> = (0..n)
            .map(|_| scale * rng.random_range(-1.0..1.0))
            .collect();
        let mut fast = u.clone();
        project_simplex(&mut fast);
        let brute = project_brute(&u);
        for (a, b) in fast.iter().zip(&brute) {
            assert!((a - b).abs() < 1e-12, "u = {u:?}: {fast:?} vs {brute:?}");
        }
        assert!(fast.iter().all(|&v| v >= 0.0));
        assert!((fast.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    // Points already in the simplex stay.
    let mut p = vec![0.2, 0.3, 0.5];
    project_simplex(&mut p);
    assert_eq!(p, vec![0.2, 0.3, 0.5]);
}

// ------------------------------------------------- objective vs recovery code

fn random_heads(h: usize, n: usize, d: usize, c: usize, rng: &mut ChaCha8Rng) -> Vec<Head> {
    (0..h)
        .map(|_| {
            let raw: Vec<f64> = (0..n).map(|_| rng.random_range(0.05..1.0f64)).collect();
            let s: f64 = raw.iter().sum();
            Head {
                attention: raw.iter().map(|v| v / s).collect(),
                value: (0..d).map(|_| rng.random_range(-1.0..1.0)).collect(),
                output: (0..c).map(|_| rng.random_range(-1.0..1.0)).collect(),
                gate: None,
            }
        })
        .collect()
}

const CASES: [(Loss, OutputNorm, usize); 6] = [
    (Loss::Squared, OutputNorm::L1, 1),
    (Loss::Logistic, OutputNorm::L1, 1),
    (Loss::Huber(0.5), OutputNorm::L1, 1),
    (Loss::Squared, OutputNorm::L2, 2),
    (Loss::CrossEntropy, OutputNorm::L1, 3),
    (Loss::CrossEntropy, OutputNorm::L2, 3),
];

#[test]
fn simplex_objective_equals_the_recovery_codes() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (case, (loss, norm, c)) in CASES.into_iter().enumerate() {
        let data = random_instance(50, 5, 3, c, loss, case as u64);
        for par in [Parametrization::Logits, Parametrization::Projected] {
            for intercept in [false, true] {
                let heads = random_heads(4, 5, 3, data.n_outputs, &mut rng);
                let b: Vec<f64> = (0..data.n_outputs).map(|l| 0.1 * l as f64 - 0.05).collect();
                let m =
                    SimplexModel::from_heads(&heads, intercept.then_some(&b[..]), par, DType::F64)
                        .unwrap();
                let obj = Objective {
                    loss,
                    beta: 0.7,
                    output_norm: norm,
                    intercept,
                };
                let x = data_x(&data, DType::F64).unwrap();
                let y = Tensor::from_slice(&data.y, (50, data.n_outputs), &Device::Cpu).unwrap();
                let ours = m
                    .weighted_objective(&x, &y, &obj, 1.0, 1.0, false)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                let zero = vec![0.0; data.n_outputs];
                let bb = if intercept { &b[..] } else { &zero[..] };
                let reference = nonconvex_objective(&heads, &data, None, bb, loss, 0.7, norm);
                assert!(
                    (ours - reference).abs() <= 1e-10 * reference.abs().max(1.0),
                    "{} {norm:?} {par:?} intercept {intercept}: {ours} vs {reference}",
                    loss.name()
                );
                // And the conversion back to heads is exact.
                let back = m.to_heads().unwrap();
                let again = nonconvex_objective(&back, &data, None, bb, loss, 0.7, norm);
                assert!((again - reference).abs() <= 1e-12 * reference.abs().max(1.0));
            }
        }
    }
}

// ------------------------------------------------------ finite differences

/// Central differences of `f` against autograd for every entry of `vars`.
fn fd_check(what: &str, vars: &[(&str, Var)], f: &dyn Fn() -> Tensor) {
    let grads = f().backward().unwrap();
    for (name, v) in vars {
        let g = to_f64_vec(grads.get(v).expect("a gradient for every parameter")).unwrap();
        let base = to_f64_vec(v.as_tensor()).unwrap();
        let shape = v.shape().clone();
        let eval_at = |vals: &[f64]| {
            v.set(&Tensor::from_slice(vals, shape.clone(), &Device::Cpu).unwrap())
                .unwrap();
            f().to_scalar::<f64>().unwrap()
        };
        for k in 0..base.len() {
            let eps = 1e-6 * base[k].abs().max(1.0);
            let mut p = base.clone();
            p[k] += eps;
            let fp = eval_at(&p);
            p[k] -= 2.0 * eps;
            let fm = eval_at(&p);
            let fd = (fp - fm) / (2.0 * eps);
            assert!(
                (fd - g[k]).abs() <= 1e-6 * g[k].abs().max(1.0),
                "{what}: d/d{name}[{k}]: autograd {} vs finite differences {fd}",
                g[k]
            );
        }
        eval_at(&base);
    }
}

#[test]
fn simplex_gradients_match_finite_differences() {
    for (loss, norm, c) in [
        (Loss::Squared, OutputNorm::L1, 1),
        (Loss::Logistic, OutputNorm::L1, 1),
        (Loss::CrossEntropy, OutputNorm::L1, 3),
        (Loss::Squared, OutputNorm::L2, 2),
    ] {
        let data = random_instance(30, 4, 3, c, loss, 5);
        let c = data.n_outputs;
        for par in [Parametrization::Logits, Parametrization::Projected] {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let m = SimplexModel::init(3, (4, 3, c), par, true, DType::F64, &mut rng).unwrap();
            let obj = Objective {
                loss,
                beta: 0.3,
                output_norm: norm,
                intercept: true,
            };
            let x = data_x(&data, DType::F64).unwrap();
            let y = Tensor::from_slice(&data.y, (30, c), &Device::Cpu).unwrap();
            let f = || m.weighted_objective(&x, &y, &obj, 1.0, 1.0, false).unwrap();
            let vars = [
                ("attention", m.attn.clone()),
                ("value", m.value.clone()),
                ("output", m.output.clone()),
                ("intercept", m.intercept.clone().unwrap()),
            ];
            fd_check(
                &format!("simplex {} {norm:?} {par:?}", loss.name()),
                &vars,
                &f,
            );
        }
    }
}

#[test]
fn softmax_gradients_match_finite_differences() {
    for (loss, c) in [
        (Loss::Squared, 1),
        (Loss::CrossEntropy, 3),
        (Loss::Huber(0.3), 2),
    ] {
        let data = random_instance(20, 4, 3, c, loss, 9);
        let c = data.n_outputs;
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let m = SoftmaxModel::init(2, 2, 1, (4, 3, c), true, DType::F64, &mut rng).unwrap();
        let obj = Objective {
            loss,
            beta: 0.3,
            output_norm: OutputNorm::L2,
            intercept: true,
        };
        let x = data_x(&data, DType::F64).unwrap();
        let y = Tensor::from_slice(&data.y, (20, c), &Device::Cpu).unwrap();
        let f = || m.weighted_objective(&x, &y, &obj, 1.0, 1.0, false).unwrap();
        let vars = [
            ("Q", m.query.clone()),
            ("K", m.key.clone()),
            ("V", m.value.clone()),
            ("O", m.output.clone()),
            ("b", m.intercept.clone().unwrap()),
        ];
        fd_check(&format!("softmax {}", loss.name()), &vars, &f);
    }
}

/// SPEC §2 computed naively, one sample and head at a time.
fn softmax_reference(p: &SoftmaxParams, h: usize, dk: usize, r: usize, data: &Dataset) -> Vec<f64> {
    let (ns, n, d, c) = data.shape();
    let mut out = Vec::new();
    for i in 0..ns {
        let mut y = p.intercept.clone().unwrap_or_else(|| vec![0.0; c]);
        for j in 0..h {
            let w = |m: &[f64], q: usize, e: usize| m[(j * d + q) * dk + e];
            let xr = data.token(i, r);
            let qv: Vec<f64> = (0..dk)
                .map(|e| (0..d).map(|q| xr[q] * w(&p.query, q, e)).sum())
                .collect();
            let s: Vec<f64> = (0..n)
                .map(|k| {
                    let xk = data.token(i, k);
                    (0..dk)
                        .map(|e| qv[e] * (0..d).map(|q| xk[q] * w(&p.key, q, e)).sum::<f64>())
                        .sum::<f64>()
                        / (dk as f64).sqrt()
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|v| (v - mx).exp()).sum();
            let a: Vec<f64> = s.iter().map(|v| (v - mx).exp() / z).collect();
            let mixed: Vec<f64> = (0..d)
                .map(|q| (0..n).map(|k| a[k] * data.token(i, k)[q]).sum())
                .collect();
            let u: Vec<f64> = (0..dk)
                .map(|e| (0..d).map(|q| mixed[q] * w(&p.value, q, e)).sum())
                .collect();
            for l in 0..c {
                y[l] += (0..dk)
                    .map(|e| u[e] * p.output[(j * dk + e) * c + l])
                    .sum::<f64>();
            }
        }
        out.extend(y);
    }
    out
}

#[test]
fn softmax_forward_matches_the_naive_definition() {
    let data = random_instance(25, 5, 4, 2, Loss::Squared, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for (r, dk) in [(4, 3), (0, 4)] {
        let m = SoftmaxModel::init(3, dk, r, (5, 4, 2), true, DType::F64, &mut rng).unwrap();
        let mut p = m.params().unwrap();
        p.intercept = Some(vec![0.3, -0.2]);
        let m = SoftmaxModel::from_params(&p, 3, dk, r, (5, 4, 2), DType::F64).unwrap();
        let x = data_x(&data, DType::F64).unwrap();
        let got = to_f64_vec(&m.predict(&x).unwrap()).unwrap();
        let want = softmax_reference(&p, 3, dk, r, &data);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // The read-out attention rows are on the simplex.
        let att = to_f64_vec(&m.read_attention(&x).unwrap().sum(2).unwrap()).unwrap();
        assert!(att.iter().all(|s| (s - 1.0).abs() < 1e-12));
    }
}

// ------------------------------------------------------------------ training

fn squared(beta: f64) -> Objective {
    Objective {
        loss: Loss::Squared,
        beta,
        output_norm: OutputNorm::L1,
        intercept: false,
    }
}

#[test]
fn training_decreases_the_objective_on_a_planted_instance() {
    let data = planted(200, 6, 4, 2, 1);
    let (beta, _, _) = certified(&data, Program::Scalar, Loss::Squared, 0.1, false);
    let obj = squared(beta);
    let (tr, te) = data.split(0.25, 0).unwrap();
    for (model, par, opt, batch, prec) in [
        (
            ModelKind::Simplex,
            Parametrization::Projected,
            OptimizerKind::Adam,
            None,
            Precision::F64,
        ),
        (
            ModelKind::Simplex,
            Parametrization::Logits,
            OptimizerKind::Adam,
            None,
            Precision::F32,
        ),
        (
            ModelKind::Simplex,
            Parametrization::Logits,
            OptimizerKind::Sgd,
            Some(30),
            Precision::F64,
        ),
        (
            ModelKind::Softmax,
            Parametrization::Logits,
            OptimizerKind::Adam,
            None,
            Precision::F64,
        ),
        (
            ModelKind::Softmax,
            Parametrization::Logits,
            OptimizerKind::AdamW,
            Some(50),
            Precision::F32,
        ),
        (
            ModelKind::Simplex,
            Parametrization::Projected,
            OptimizerKind::AdamW,
            None,
            Precision::F64,
        ),
        (
            ModelKind::Simplex,
            Parametrization::Projected,
            OptimizerKind::Sgd,
            None,
            Precision::F64,
        ),
    ] {
        let cfg = Baseline {
            model,
            heads: 3,
            parametrization: par,
            precision: prec,
            optimizer: opt,
            lr: if opt == OptimizerKind::Sgd {
                0.05
            } else {
                0.02
            },
            batch_size: batch,
            max_steps: Some(300),
            budget_seconds: None,
            record_points: 20,
            ..Baseline::default()
        };
        let mut n_points = 0;
        let out = train(&cfg, &obj, &tr, Some(&te), |p| {
            n_points += 1;
            assert!(p.objective.is_finite() && p.test_error.is_some());
            Ok(Flow::Continue)
        })
        .unwrap();
        let first = out.points.first().unwrap().objective;
        let last = out.final_objective;
        assert_eq!(out.steps, 300);
        assert!(n_points >= 2 && n_points == out.points.len());
        // Softmax attention cannot select tokens by position (SPEC §2 has no
        // positional information) and the teacher reads fixed positions, so
        // it is asked for less.
        let factor = if model == ModelKind::Simplex {
            0.5
        } else {
            0.9
        };
        assert!(
            last < factor * first,
            "{} {opt:?}: objective {first} -> {last}",
            cfg.method_name()
        );
        assert!(!out.diverged);
        assert_eq!(out.attention.len(), 3 * 6);
        assert_eq!(out.heads.is_some(), model == ModelKind::Simplex);
    }
}

#[test]
fn simplex_training_reaches_the_certified_optimum_on_a_tiny_instance() {
    let data = planted(60, 4, 3, 2, 2);
    let (beta, cert, h_star) = certified(&data, Program::Scalar, Loss::Squared, 0.1, false);
    assert!(cert.relative_gap < 1e-10);
    let obj = squared(beta);
    let cfg = Baseline {
        heads: h_star + 2,
        parametrization: Parametrization::Projected,
        lr: 0.05,
        max_steps: Some(2000),
        budget_seconds: None,
        record_points: 30,
        ..Baseline::default()
    };
    let out = train(&cfg, &obj, &data, None, |p| {
        check_lower_bound(p.objective, &cert, "simplex attention")?;
        Ok(Flow::Continue)
    })
    .unwrap();
    let rel = (out.final_objective - cert.primal) / cert.primal.abs().max(1.0);
    assert!(
        rel < 1e-2,
        "relative suboptimality {rel}: {} vs {}",
        out.final_objective,
        cert.primal
    );
    assert!(rel > -1e-9);
}

#[test]
fn the_lower_bound_check_fails_loudly() {
    let cert = Certificate::new(10.0, 9.999);
    assert!(check_lower_bound(9.9995, &cert, "x").is_ok());
    assert!(check_lower_bound(9.999 - 1e-12, &cert, "x").is_ok());
    let e = check_lower_bound(9.5, &cert, "simplex seed 1")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("9.5") && e.contains("9.999") && e.contains("simplex seed 1"),
        "{e}"
    );
    assert!(check_lower_bound(f64::NAN, &cert, "x").is_err());
}

#[test]
fn bad_input_is_refused_with_clear_messages() {
    let data = planted(40, 4, 3, 2, 0);
    let obj = squared(1.0);
    let ok = Baseline {
        max_steps: Some(2),
        budget_seconds: None,
        ..Baseline::default()
    };
    let err = |cfg: Baseline, obj: Objective| {
        train(&cfg, &obj, &data, None, |_| Ok(Flow::Continue))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert!(err(
        Baseline {
            heads: 0,
            ..ok.clone()
        },
        obj
    )
    .contains("heads must be at least 1"));
    assert!(err(
        Baseline {
            lr: 0.0,
            ..ok.clone()
        },
        obj
    )
    .contains("learning rate"));
    assert!(err(
        Baseline {
            lr: -1.0,
            ..ok.clone()
        },
        obj
    )
    .contains("learning rate"));
    assert!(err(
        Baseline {
            lr: f64::NAN,
            ..ok.clone()
        },
        obj
    )
    .contains("learning rate"));
    assert!(err(ok.clone(), Objective { beta: 0.0, ..obj }).contains("beta"));
    assert!(err(ok.clone(), Objective { beta: -2.0, ..obj }).contains("beta"));
    assert!(err(
        Baseline {
            batch_size: Some(0),
            ..ok.clone()
        },
        obj
    )
    .contains("batch size"));
    assert!(err(
        Baseline {
            batch_size: Some(41),
            ..ok.clone()
        },
        obj
    )
    .contains("batch size"));
    assert!(err(
        Baseline {
            max_steps: None,
            ..ok.clone()
        },
        obj
    )
    .contains("step cap"));
    assert!(err(
        Baseline {
            momentum: 1.0,
            ..ok.clone()
        },
        obj
    )
    .contains("momentum"));
    assert!(err(
        Baseline {
            model: ModelKind::Softmax,
            read_token: Some(4),
            ..ok.clone()
        },
        obj
    )
    .contains("read-out token 4"));
    assert!(err(
        ok.clone(),
        Objective {
            loss: Loss::Logistic,
            ..obj
        }
    )
    .contains("logistic"));
    assert!(OptimizerKind::parse("rmsprop")
        .unwrap_err()
        .to_string()
        .contains("unknown optimizer 'rmsprop'"));
    assert!(ModelKind::parse("mlp").is_err());
    assert!(Parametrization::parse("exp").is_err());
    assert!(Precision::parse("f16").is_err());
    // And a valid configuration runs.
    assert!(train(&ok, &obj, &data, None, |_| Ok(Flow::Continue)).is_ok());
}

#[test]
fn the_callback_can_stop_a_run() {
    let data = planted(40, 4, 3, 2, 0);
    let obj = squared(1.0);
    let cfg = Baseline {
        max_steps: Some(1000),
        budget_seconds: None,
        ..Baseline::default()
    };
    let out = train(&cfg, &obj, &data, None, |p| {
        Ok(if p.step >= 5 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    })
    .unwrap();
    assert!(out.stopped_early && out.steps < 1000);
    // A failing callback fails the run.
    let e = train(&cfg, &obj, &data, None, |_| invalid("stop here")).unwrap_err();
    assert!(e.to_string().contains("stop here"));
}
