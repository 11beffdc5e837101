use super::*;
use proptest::prelude::*;

/// prox_{τΩ}(v) minimises ½‖x − v‖² + τΩ(x): compare against random
/// perturbations of the returned point (no perturbation may do better).
fn check_prox_optimal(p: Penalty, v: &[f64], c: usize, d: usize, tau: f64, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut x = v.to_vec();
    p.prox(&mut x, c, d, tau);
    let obj = |z: &[f64]| {
        0.5 * z.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() + tau * p.value(z, c, d)
    };
    let best = obj(&x);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for k in 0..300 {
        let scale = 10f64.powi(-(k % 6));
        let z: Vec<f64> = x
            .iter()
            .map(|a| a + scale * rng.random_range(-1.0..1.0))
            .collect();
        assert!(
            obj(&z) >= best - 1e-12,
            "{p:?}: perturbation beats prox: {} < {best}",
            obj(&z)
        );
    }
    // The zero block too (prox may or may not be zero).
    assert!(obj(&vec![0.0; v.len()]) >= best - 1e-12);
}

proptest! {
    #[test]
    fn prox_is_the_minimiser(v in prop::collection::vec(-3.0f64..3.0, 12), tau in 0.0f64..4.0, seed in 0u64..1000) {
        for (c, d) in [(1, 12), (3, 4), (2, 6)] {
            check_prox_optimal(Penalty::GroupL2, &v, c, d, tau, seed);
            check_prox_optimal(Penalty::Nuclear, &v, c, d, tau, seed);
        }
    }

    /// Dual norm: Ω^D(g) = max over Ω(z) ≤ 1 of ⟨g, z⟩; attained, and never exceeded.
    #[test]
    fn dual_norm_bounds_inner_products(g in prop::collection::vec(-3.0f64..3.0, 12),
                                       z in prop::collection::vec(-3.0f64..3.0, 12)) {
        for (c, d) in [(1, 12), (3, 4), (2, 6)] {
            for p in [Penalty::GroupL2, Penalty::Nuclear] {
                let dot: f64 = g.iter().zip(&z).map(|(a, b)| a * b).sum();
                prop_assert!(dot <= p.dual_norm(&g, c, d) * p.value(&z, c, d) + 1e-9);
            }
        }
    }
}

#[test]
fn nuclear_equals_group_for_one_output_and_sums_singular_values() {
    let v = [3.0, 4.0, 0.0];
    assert!((Penalty::Nuclear.value(&v, 1, 3) - 5.0).abs() < 1e-12);
    // diag(3, 2) as a 2×2 block: nuclear norm 5, spectral norm 3.
    let b = [3.0, 0.0, 0.0, 2.0];
    assert!((Penalty::Nuclear.value(&b, 2, 2) - 5.0).abs() < 1e-12);
    assert!((Penalty::Nuclear.dual_norm(&b, 2, 2) - 3.0).abs() < 1e-12);
    assert_eq!(Penalty::Nuclear.heads(&b, 2, 2), 2);
    // Rank one: the outer product of (1,2) and (1,1).
    let r1 = [1.0, 2.0, 1.0, 2.0];
    assert_eq!(Penalty::Nuclear.heads(&r1, 2, 2), 1);
    assert_eq!(Penalty::GroupL2.heads(&r1, 2, 2), 2);
}

#[test]
fn dual_norm_is_attained() {
    // For the group norm the maximiser is g_l*/‖g_l*‖ on the largest row.
    let g = [1.0, 2.0, 2.0, 0.5, 0.5, 0.0];
    assert!((Penalty::GroupL2.dual_norm(&g, 2, 3) - 3.0).abs() < 1e-12);
}
