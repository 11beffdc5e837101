//! Naive index loops here are the reference the fast code is checked against.
#![allow(clippy::needless_range_loop)]

use super::*;
use proptest::prelude::*;

fn losses() -> Vec<(Loss, usize)> {
    vec![
        (Loss::Squared, 3),
        (Loss::Logistic, 1),
        (Loss::CrossEntropy, 4),
        (Loss::Huber(0.7), 3),
    ]
}

fn target(loss: Loss, c: usize, seed: f64) -> Vec<f64> {
    match loss {
        Loss::Logistic => vec![if seed > 0.0 { 1.0 } else { -1.0 }],
        Loss::CrossEntropy => {
            let k = ((seed.abs() * 1000.0) as usize) % c;
            (0..c).map(|l| if l == k { 1.0 } else { 0.0 }).collect()
        }
        _ => (0..c).map(|l| seed * (l as f64 + 1.0)).collect(),
    }
}

proptest! {
    /// ∇²L·u against central differences of ∇L (Huber away from its kinks).
    #[test]
    fn hessian_times_matches_finite_differences(v in prop::collection::vec(-4.0f64..4.0, 4),
                                                u in prop::collection::vec(-1.0f64..1.0, 4),
                                                s in -2.0f64..2.0) {
        for (loss, c) in losses() {
            let (yhat, u) = (&v[..c], &u[..c]);
            let y = target(loss, c, s);
            if let Loss::Huber(delta) = loss {
                if yhat.iter().zip(&y).any(|(p, t)| ((p - t).abs() - delta).abs() < 1e-3) {
                    continue;
                }
            }
            let mut g = vec![0.0; c];
            loss.value_grad(yhat, &y, &mut g);
            let mut hu = vec![0.0; c];
            loss.hessian_times(yhat, &y, &g, u, &mut hu);
            let h = 1e-6;
            let (mut up, mut dn) = (vec![0.0; c], vec![0.0; c]);
            let plus: Vec<f64> = yhat.iter().zip(u).map(|(a, b)| a + h * b).collect();
            let minus: Vec<f64> = yhat.iter().zip(u).map(|(a, b)| a - h * b).collect();
            loss.value_grad(&plus, &y, &mut up);
            loss.value_grad(&minus, &y, &mut dn);
            for l in 0..c {
                let fd = (up[l] - dn[l]) / (2.0 * h);
                prop_assert!((fd - hu[l]).abs() < 1e-6, "{:?}: fd {} vs {}", loss, fd, hu[l]);
            }
        }
    }

    /// ∇L against central finite differences.
    #[test]
    fn gradient_matches_finite_differences(v in prop::collection::vec(-4.0f64..4.0, 4), s in -2.0f64..2.0) {
        for (loss, c) in losses() {
            let yhat = &v[..c];
            let y = target(loss, c, s);
            let mut g = vec![0.0; c];
            let val = loss.value_grad(yhat, &y, &mut g);
            prop_assert!((val - loss.value(yhat, &y)).abs() < 1e-12);
            for l in 0..c {
                let h = 1e-6;
                let mut p = yhat.to_vec();
                p[l] += h;
                let up = loss.value(&p, &y);
                p[l] -= 2.0 * h;
                let dn = loss.value(&p, &y);
                let fd = (up - dn) / (2.0 * h);
                prop_assert!((fd - g[l]).abs() < 1e-6, "{:?}: fd {} vs {}", loss, fd, g[l]);
            }
        }
    }

    /// Fenchel–Young: −L*(−θ) ≤ L(ŷ') + ⟨θ, ŷ'⟩ for every ŷ', with equality at
    /// θ = −∇L(ŷ), ŷ' = ŷ. This is what makes the duality gap a bound.
    #[test]
    fn conjugate_satisfies_fenchel_young(v in prop::collection::vec(-4.0f64..4.0, 4),
                                         w in prop::collection::vec(-4.0f64..4.0, 4),
                                         s in -2.0f64..2.0, alpha in 0.0f64..1.0) {
        for (loss, c) in losses() {
            let (yhat, other) = (&v[..c], &w[..c]);
            let y = target(loss, c, s);
            let mut g = vec![0.0; c];
            let val = loss.value_grad(yhat, &y, &mut g);
            let theta: Vec<f64> = g.iter().map(|x| -x).collect();
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            let dv = loss.dual_value(&theta, &y);
            prop_assert!((dv - (val + dot(&theta, yhat))).abs() < 1e-9 * (1.0 + val.abs()),
                "{:?}: equality fails {} vs {}", loss, dv, val + dot(&theta, yhat));
            // Scaled dual points stay valid lower bounds.
            let scaled: Vec<f64> = theta.iter().map(|t| alpha * t).collect();
            let lhs = loss.dual_value(&scaled, &y);
            let rhs = loss.value(other, &y) + dot(&scaled, other);
            prop_assert!(lhs <= rhs + 1e-9, "{:?}: {} > {}", loss, lhs, rhs);
        }
    }
}

proptest! {
    /// Cross-entropy's shared curvature bounds the softmax Hessian
    /// diag(p) − ppᵀ from above (the model majorises its expansion) and is
    /// within 2× of its largest eigenvalue.
    #[test]
    fn cross_entropy_shared_curvature_bounds_the_hessian(
        v in prop::collection::vec(-8.0f64..8.0, 2..9),
        spread in prop::sample::select(vec![0.01, 1.0, 4.0]),
        s in 0.0f64..1.0,
    ) {
        let c = v.len();
        let yhat: Vec<f64> = v.iter().map(|x| spread * x).collect();
        let y = target(Loss::CrossEntropy, c, s);
        let mut g = vec![0.0; c];
        Loss::CrossEntropy.value_grad(&yhat, &y, &mut g);
        let p: Vec<f64> = g.iter().zip(&y).map(|(g, t)| g + t).collect();
        let h: Vec<f64> = (0..c * c)
            .map(|k| {
                let (i, j) = (k / c, k % c);
                let diagonal = if i == j { p[i] } else { 0.0 };
                diagonal - p[i] * p[j]
            })
            .collect();
        let top = crate::penalty::SymEigen::new(&h, c, c).unwrap().max();
        let w = Loss::CrossEntropy.shared_curvature(&yhat, &y, &g, &mut vec![0.0; c]);
        prop_assert!(w >= top * (1.0 - 1e-12) - 1e-15, "{} < λ_max {}", w, top);
        prop_assert!(w <= 2.0 * top * (1.0 + 1e-12) + 1e-15, "{} > 2 λ_max {}", w, top);
        // The default, for a diagonal Hessian: the largest weight.
        let y = target(Loss::Huber(0.7), c, s);
        let mut d = vec![0.0; c];
        Loss::Huber(0.7).value_grad(&yhat, &y, &mut g);
        Loss::Huber(0.7).curvature(&yhat, &y, &g, &mut d);
        let w = Loss::Huber(0.7).shared_curvature(&yhat, &y, &g, &mut vec![0.0; c]);
        prop_assert_eq!(w, d.iter().copied().fold(0.0, f64::max));
    }
}

#[test]
fn parse_names_and_errors() {
    assert_eq!(Loss::parse("squared").unwrap(), Loss::Squared);
    assert_eq!(Loss::parse("cross-entropy").unwrap(), Loss::CrossEntropy);
    assert_eq!(Loss::parse("huber:0.5").unwrap(), Loss::Huber(0.5));
    let e = Loss::parse("hinge").unwrap_err().to_string();
    assert!(e.contains("unknown loss 'hinge'"), "{e}");
    assert!(Loss::parse("huber:-1").is_err());
}

#[test]
fn best_intercept_zeroes_the_intercept_gradient() {
    let x = vec![0.0; 6 * 2];
    for (loss, ds) in [
        (
            Loss::Logistic,
            Dataset::new_real(x.clone(), (6, 1, 2), vec![1., 1., 1., -1., 1., -1.], 1).unwrap(),
        ),
        (
            Loss::CrossEntropy,
            Dataset::new_classes(x.clone(), (6, 1, 2), vec![0, 1, 2, 2, 2, 1], 3).unwrap(),
        ),
        (
            Loss::Squared,
            Dataset::new_real(x, (6, 1, 2), vec![1., 2., 3., 4., 5., 9.], 1).unwrap(),
        ),
    ] {
        let b = loss.best_constant(&ds);
        let c = ds.n_outputs;
        let mut total = vec![0.0; c];
        let mut g = vec![0.0; c];
        for i in 0..ds.n_samples {
            loss.value_grad(&b, ds.target(i), &mut g);
            for l in 0..c {
                total[l] += g[l];
            }
        }
        assert!(total.iter().all(|t| t.abs() < 1e-9), "{loss:?}: {total:?}");
    }
}
