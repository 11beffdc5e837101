//! Naive index loops here are the reference the fast code is checked against.
#![allow(clippy::needless_range_loop)]

use super::*;
use crate::loss::Loss;
use crate::operator::LinearOperator;
use crate::operator::TokenOperator;
use crate::penalty::Penalty;
use crate::problem::Problem;
use crate::solver::{solve, SolverOptions};
use crate::testutil::random_instance;
use rand::{Rng, SeedableRng};

fn random_heads(
    h: usize,
    t: usize,
    d: usize,
    c: usize,
    gates: usize,
    rng: &mut impl Rng,
) -> Vec<Head> {
    (0..h)
        .map(|_| {
            let raw: Vec<f64> = (0..t)
                .map(|_| rng.random_range(0.0..1.0f64).powi(3))
                .collect();
            let s: f64 = raw.iter().sum();
            Head {
                attention: raw.iter().map(|v| v / s).collect(),
                value: (0..d).map(|_| rng.random_range(-1.0..1.0)).collect(),
                output: (0..c).map(|_| rng.random_range(-1.0..1.0)).collect(),
                gate: (gates > 0).then(|| rng.random_range(0..gates)),
            }
        })
        .collect()
}

const CASES: [(Loss, Penalty, usize); 5] = [
    (Loss::Squared, Penalty::GroupL2, 1),
    (Loss::Logistic, Penalty::GroupL2, 1),
    (Loss::Squared, Penalty::GroupL2, 3),
    (Loss::CrossEntropy, Penalty::GroupL2, 3),
    (Loss::CrossEntropy, Penalty::Nuclear, 3),
];

/// Map (i): random feasible heads (dense simplex rows) give a convex point with
/// the same predictions and convex objective ≤ nonconvex objective.
#[test]
fn heads_map_to_a_convex_point_no_worse() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for seed in 0..10 {
        for (loss, penalty, c) in CASES {
            let ds = random_instance(40, 5, 3, c, loss, seed);
            let op = TokenOperator::new(&ds, None);
            let heads = random_heads(1 + seed as usize % 6, 5, 3, ds.n_outputs, 0, &mut rng);
            let b = vec![0.1; ds.n_outputs];
            let coef = heads_to_coef(&heads, op.n_blocks(), 5, ds.n_outputs, 3);
            let pc = op.predict(&coef, &b);
            let ph = head_predictions(&heads, &ds, None, &b);
            for (a, e) in pc.iter().zip(&ph) {
                assert!((a - e).abs() < 1e-12);
            }
            let beta = 0.3;
            let prob = Problem::new(op, loss, penalty, beta, true).unwrap();
            let convex = prob.objective(&coef, &b);
            let nonconvex = nonconvex_objective(&heads, &ds, None, &b, loss, beta, penalty.into());
            assert!(
                convex <= nonconvex + 1e-12,
                "{loss:?} {penalty:?}: {convex} > {nonconvex}"
            );
        }
    }
}

/// Map (ii): heads recovered from solved convex programs reproduce the convex
/// objective to 1e-9 relative, and their attention rows are one-hot.
#[test]
fn recovered_heads_reproduce_the_convex_objective() {
    for seed in 0..6 {
        for (loss, penalty, c) in CASES {
            let ds = random_instance(60, 6, 4, c, loss, seed);
            let op = TokenOperator::new(&ds, None);
            let mut prob = Problem::new(op, loss, penalty, 1.0, seed % 2 == 0).unwrap();
            prob.beta = 0.2 * crate::solver::beta_max(&prob);
            let sol = solve(&prob, &SolverOptions::default(), None).unwrap();
            assert!(sol.converged());
            let heads = recover_heads(&sol.coef, penalty, 6, ds.n_outputs, 4, false);
            assert!(!heads.is_empty());
            for h in &heads {
                assert_eq!(h.attention.iter().filter(|&&a| a == 1.0).count(), 1);
                assert_eq!(h.attention.iter().filter(|&&a| a == 0.0).count(), 5);
            }
            let convex = prob.objective(&sol.coef, &sol.intercept);
            let nonconvex = nonconvex_objective(
                &heads,
                &ds,
                None,
                &sol.intercept,
                loss,
                prob.beta,
                penalty.into(),
            );
            assert!(
                (convex - nonconvex).abs() <= 1e-9 * convex.abs().max(1.0),
                "{loss:?} {penalty:?}: convex {convex} vs heads {nonconvex}"
            );
            // And the certificate's primal is this objective.
            assert!((sol.certificate.primal - convex).abs() <= 1e-9 * convex.abs().max(1.0));
            // Map (i) of the recovered heads gives back the solution.
            let back = heads_to_coef(&heads, 6, 6, ds.n_outputs, 4);
            for (a, e) in back.iter().zip(&sol.coef) {
                assert!((a - e).abs() < 1e-10);
            }
        }
    }
}

/// With gates (SPEC §4d) the maps hold the same way.
#[test]
fn gated_maps_hold() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let ds = random_instance(50, 4, 3, 1, Loss::Squared, 1);
    let gates = GateMasks {
        n_gates: 3,
        mask: (0..50 * 3).map(|_| rng.random_bool(0.5)).collect(),
    };
    let op = TokenOperator::new(&ds, Some(&gates));
    let heads = random_heads(5, 4, 3, 1, 3, &mut rng);
    let coef = heads_to_coef(&heads, op.n_blocks(), 4, 1, 3);
    let b = vec![0.0];
    let pc = op.predict(&coef, &b);
    let ph = head_predictions(&heads, &ds, Some(&gates), &b);
    for (a, e) in pc.iter().zip(&ph) {
        assert!((a - e).abs() < 1e-12);
    }
    let prob = Problem::new(op, Loss::Squared, Penalty::GroupL2, 0.5, false).unwrap();
    let convex = prob.objective(&coef, &b);
    let nonconvex = nonconvex_objective(
        &heads,
        &ds,
        Some(&gates),
        &b,
        Loss::Squared,
        0.5,
        OutputNorm::L1,
    );
    assert!(convex <= nonconvex + 1e-12);
    let rec = recover_heads(&coef, Penalty::GroupL2, 4, 1, 3, true);
    let again = nonconvex_objective(
        &rec,
        &ds,
        Some(&gates),
        &b,
        Loss::Squared,
        0.5,
        OutputNorm::L1,
    );
    assert!((again - convex).abs() < 1e-9 * convex);
}
