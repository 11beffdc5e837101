//! Naive index loops here are the references the fast code is checked against.
#![allow(clippy::needless_range_loop)]

use super::operator::{matrix_index, SequenceOperator};
use super::projection::{
    in_dual_cone, project_onto_k, sum_row_max, sum_row_max_neg, ProjectionScratch,
};
use super::recovery::equalize_rows;
use super::recovery::{
    coef_predictions, head_predictions, norm_inf1, sequence_penalty, split_matrix, EQUAL_ROWS_TOL,
};
use super::*;
use crate::data::npz::{read_npz_as, read_npz_bytes_as, write_npz};
use crate::data::synthetic::TargetKind;
use crate::data::{Dataset, Targets};
use crate::operator::LinearOperator;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The readers' layout for sequence data.
const SEQ: Option<Targets> = Some(Targets::PerPosition);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn uniform(r: &mut ChaCha8Rng, len: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..len).map(|_| r.random_range(lo..hi)).collect()
}

/// A random row-stochastic n×n matrix, sparse when `sparse`.
fn row_stochastic(r: &mut ChaCha8Rng, n: usize, sparse: bool) -> Vec<f64> {
    let mut w = vec![0.0; n * n];
    for row in w.chunks_exact_mut(n) {
        for v in row.iter_mut() {
            *v = if sparse && r.random_bool(0.5) {
                0.0
            } else {
                r.random_range(0.0..1.0)
            };
        }
        let k = r.random_range(0..n);
        row[k] += 0.1;
        let s: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    w
}

/// A random instance: N×n×d uniform tokens, targets from random planted
/// heads plus noise (real, or class labels per position).
fn instance(n_s: usize, n: usize, d: usize, c: usize, loss: Loss, seed: u64) -> Dataset<'static> {
    let mut r = rng(seed);
    let x = uniform(&mut r, n_s * n * d, -1.0, 1.0);
    let heads: Vec<SequenceHead> = (0..2)
        .map(|_| SequenceHead {
            mixing: row_stochastic(&mut r, n, true),
            value: uniform(&mut r, d * c, -1.5, 1.5),
            output: 1.0,
        })
        .collect();
    let clean = Dataset::new_real_per_position(x, (n_s, n, d), vec![0.0; n_s * n * c], c).unwrap();
    let z: Vec<f64> = head_predictions(&heads, &clean)
        .iter()
        .map(|v| v + r.random_range(-0.5..0.5))
        .collect();
    match loss {
        Loss::CrossEntropy => {
            let labels = z.chunks_exact(c).map(crate::report::argmax).collect();
            Dataset::new_classes_per_position(clean.x, (n_s, n, d), labels, c).unwrap()
        }
        Loss::Logistic => {
            let y = z
                .iter()
                .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
                .collect();
            Dataset::new_real_per_position(clean.x, (n_s, n, d), y, 1).unwrap()
        }
        _ => Dataset::new_real_per_position(clean.x, (n_s, n, d), z, c).unwrap(),
    }
}

fn opts(tol: f64, max_iter: usize) -> SolverOptions {
    SolverOptions {
        tol,
        max_iter,
        ..SolverOptions::default()
    }
}

fn row_sums(m: &[f64], n: usize) -> Vec<f64> {
    m.chunks_exact(n).map(|r| r.iter().sum()).collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |a, x| a.max(x.abs()))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1.0)
}

// ---------------------------------------------------------------------------
// Projection onto K and the dual cone
// ---------------------------------------------------------------------------

/// Sort-based projection of v onto the scaled simplex tΔ (t ≥ 0), written
/// independently of the module (bisection on τ).
fn simplex_projection(v: &[f64], t: f64) -> Vec<f64> {
    if t == 0.0 {
        return vec![0.0; v.len()];
    }
    let top = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (mut lo, mut hi) = (top - t - 1.0, top);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        let s: f64 = v.iter().map(|x| (x - mid).max(0.0)).sum();
        if s > t {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let tau = 0.5 * (lo + hi);
    v.iter().map(|x| (x - tau).max(0.0)).collect()
}

/// Φ(t) = Σ_r dist²(v_r, tΔ).
fn phi(v: &[f64], n: usize, t: f64) -> f64 {
    v.chunks_exact(n)
        .map(|row| {
            let p = simplex_projection(row, t);
            row.iter()
                .zip(&p)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
        })
        .sum()
}

fn project(v: &[f64], n: usize) -> (Vec<f64>, f64) {
    let mut p = v.to_vec();
    let mut s = ProjectionScratch::new(n);
    let t = project_onto_k(&mut p, n, &mut s);
    (p, t)
}

/// Random matrices of many kinds: Gaussian-like, shifted, with ties, and
/// with very different row scales.
fn test_matrices() -> Vec<(usize, Vec<f64>)> {
    let mut r = rng(7);
    let mut out = Vec::new();
    for n in 1..=9 {
        for kind in 0..6 {
            let mut v = uniform(&mut r, n * n, -1.0, 1.0);
            match kind {
                1 => v.iter_mut().for_each(|x| *x += 0.7),
                2 => v.iter_mut().for_each(|x| *x -= 0.7),
                3 => v.iter_mut().for_each(|x| *x = (*x * 3.0).round() / 3.0),
                4 => {
                    for (rr, row) in v.chunks_exact_mut(n).enumerate() {
                        let s = 10f64.powi(rr as i32 - 3);
                        row.iter_mut().for_each(|x| *x *= s);
                    }
                }
                5 => v.iter_mut().for_each(|x| *x *= 1e3),
                _ => {}
            }
            out.push((n, v));
        }
    }
    out
}

#[test]
fn projection_satisfies_the_optimality_conditions() {
    // Π_K(V) = P iff P ∈ K, V − P ∈ K° = −K* and ⟨V − P, P⟩ = 0.
    for (n, v) in test_matrices() {
        let (p, t) = project(&v, n);
        let scale = max_abs(&v).max(1e-300);
        assert!(p.iter().all(|&x| x >= 0.0), "n = {n}: negative entry");
        for s in row_sums(&p, n) {
            assert!(
                (s - t).abs() <= 1e-12 * scale * n as f64,
                "n = {n}: row sum {s} ≠ t = {t}"
            );
        }
        let resid: Vec<f64> = v.iter().zip(&p).map(|(a, b)| a - b).collect();
        let polar = sum_row_max(&resid, n);
        assert!(
            polar <= 1e-12 * scale * n as f64,
            "n = {n}: V − P ∉ K°: {polar}"
        );
        let comp: f64 = resid.iter().zip(&p).map(|(a, b)| a * b).sum();
        assert!(
            comp.abs() <= 1e-12 * scale * scale * (n * n) as f64,
            "n = {n}: ⟨V − P, P⟩ = {comp}"
        );
    }
}

#[test]
fn projection_is_never_beaten_by_points_of_k() {
    let mut r = rng(11);
    for (n, v) in test_matrices() {
        let (p, t) = project(&v, n);
        let best: f64 = v.iter().zip(&p).map(|(a, b)| (a - b) * (a - b)).sum();
        for trial in 0..200 {
            // Random points of K: near P (small perturbations kept in K) and far.
            let tq = if trial % 2 == 0 {
                (t * r.random_range(0.9..1.1) + r.random_range(0.0..1e-3)).max(0.0)
            } else {
                r.random_range(0.0..2.0 * t + 1.0)
            };
            let w = row_stochastic(&mut r, n, trial % 3 == 0);
            let q: Vec<f64> = if trial % 2 == 0 && t > 0.0 {
                // Convex combination of P (rescaled to tq) and tq·W.
                let a = r.random_range(0.0..0.05);
                p.iter()
                    .zip(&w)
                    .map(|(pv, wv)| (1.0 - a) * pv * tq / t + a * tq * wv)
                    .collect()
            } else {
                w.iter().map(|wv| tq * wv).collect()
            };
            let dist: f64 = v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum();
            assert!(
                dist >= best * (1.0 - 1e-12) - 1e-300,
                "n = {n}: a point of K is closer ({dist} < {best})"
            );
        }
    }
}

#[test]
fn projection_matches_a_one_dimensional_search() {
    // Golden-section search on the convex Φ(t) with the sort-free simplex
    // projection, then the same matrix: values must agree.
    for (n, v) in test_matrices().into_iter().step_by(2) {
        let (p, t) = project(&v, n);
        let ours: f64 = v.iter().zip(&p).map(|(a, b)| (a - b) * (a - b)).sum();
        let hi = v
            .chunks_exact(n)
            .map(|row| row.iter().map(|x| x.max(0.0)).sum::<f64>())
            .fold(0.0, f64::max)
            + 1.0;
        let (mut a, mut b) = (0.0, hi);
        let g = 0.5 * (5f64.sqrt() - 1.0);
        for _ in 0..200 {
            let (c1, c2) = (b - g * (b - a), a + g * (b - a));
            if phi(&v, n, c1) <= phi(&v, n, c2) {
                b = c2;
            } else {
                a = c1;
            }
        }
        let t_ref = 0.5 * (a + b);
        let brute = phi(&v, n, t_ref);
        let scale = max_abs(&v).powi(2).max(1e-300) * (n * n) as f64;
        assert!(
            ours <= brute + 1e-12 * scale,
            "n = {n}: projection value {ours} above brute force {brute}"
        );
        assert!(
            (ours - brute).abs() <= 1e-9 * scale,
            "n = {n}: {ours} vs {brute}"
        );
        assert!(
            (t - t_ref).abs() <= 1e-6 * (1.0 + t_ref),
            "n = {n}: t {t} vs {t_ref}"
        );
    }
}

#[test]
fn projection_of_the_polar_cone_is_zero_and_k_is_fixed() {
    let mut r = rng(3);
    for n in 1..6 {
        // Σ_r max_k V ≤ 0: projection 0.
        let mut v = uniform(&mut r, n * n, -1.0, 0.0);
        v[0] = 0.5;
        v[n * (n - 1)..].iter_mut().for_each(|x| *x = -1.0);
        if n > 1 {
            let (p, t) = project(&v, n);
            assert_eq!(t, 0.0);
            assert!(p.iter().all(|&x| x == 0.0));
        }
        // Points of K are their own projection.
        let w: Vec<f64> = row_stochastic(&mut r, n, true)
            .iter()
            .map(|x| 2.5 * x)
            .collect();
        let (p, t) = project(&w, n);
        assert!((t - 2.5).abs() < 1e-12);
        for (a, b) in p.iter().zip(&w) {
            assert!((a - b).abs() < 1e-12, "n = {n}: {a} vs {b}");
        }
    }
}

#[test]
fn dual_cone_is_the_one_hot_row_test() {
    // S ∈ K* ⟺ ⟨S, E⟩ ≥ 0 for every matrix E with one-hot rows (all n^n).
    let mut r = rng(5);
    for n in 1..=3 {
        for _ in 0..300 {
            let s = uniform(&mut r, n * n, -1.0, 1.5);
            let mut min_over_e = f64::INFINITY;
            for code in 0..n.pow(n as u32) {
                let mut c = code;
                let mut v = 0.0;
                for row in 0..n {
                    v += s[row * n + c % n];
                    c /= n;
                }
                min_over_e = min_over_e.min(v);
            }
            assert!((min_over_e + sum_row_max_neg(&s, n)).abs() < 1e-12);
            assert_eq!(in_dual_cone(&s, n, 0.0), min_over_e >= 0.0);
        }
    }
}

// ---------------------------------------------------------------------------
// Operator
// ---------------------------------------------------------------------------

#[test]
fn operator_matches_loops_and_is_adjoint() {
    for (n_s, n, d, c, seed) in [
        (7, 3, 2, 2, 1),
        (20, 5, 3, 1, 2),
        (3, 1, 1, 3, 3),
        (40, 6, 4, 3, 4),
    ] {
        let data = instance(n_s, n, d, c, Loss::Squared, seed);
        let op = SequenceOperator::new(&data);
        let mut r = rng(seed + 100);
        let coef = uniform(&mut r, op.n_coef(), -1.0, 1.0);
        let mut b = vec![0.0; op.n_coef()];
        op.to_product(&coef, &mut b);
        let mut back = vec![0.0; op.n_coef()];
        op.from_product(&b, &mut back);
        assert_eq!(back, coef);
        let mut f = vec![0.0; n_s * n * c];
        op.forward(&b, &mut f);
        let naive = coef_predictions(&coef, &data);
        for (a, e) in f.iter().zip(&naive) {
            assert!((a - e).abs() < 1e-12, "forward {a} vs {e}");
        }
        // Adjoint: G_{ql}[r, k] = Σ_i Θ_i[r, l] X_i[k, q].
        let theta = uniform(&mut r, n_s * n * c, -1.0, 1.0);
        let mut g = vec![0.0; op.n_coef()];
        op.adjoint(&theta, &mut b);
        op.from_product(&b, &mut g);
        for q in 0..d {
            for l in 0..c {
                for rr in 0..n {
                    for k in 0..n {
                        let mut s = 0.0;
                        for i in 0..n_s {
                            s += theta[(i * n + rr) * c + l] * data.x[(i * n + k) * d + q];
                        }
                        let got = g[matrix_index(q, l, rr, k, n, c)];
                        assert!((got - s).abs() < 1e-12, "adjoint {got} vs {s}");
                    }
                }
            }
        }
        let lhs: f64 = naive.iter().zip(&theta).map(|(a, b)| a * b).sum();
        let rhs: f64 = coef.iter().zip(&g).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0));
    }
}

#[test]
fn generic_power_iteration_bounds_the_split_operator() {
    // The generic solver's step size on the sequence program: λ_max of
    // [𝒜, −𝒜]ᵀ[𝒜, −𝒜], i.e. 2·λ_max(X̄ᵀX̄), from below, and no more than
    // 2‖X̄‖_F²; random split points stay below it.
    let data = instance(30, 4, 3, 2, Loss::Squared, 9);
    let problem = sequence_problem(&data, Loss::Squared, 1.0).unwrap();
    let (nb, bl) = (problem.op.n_blocks(), problem.block_len());
    let ws: Vec<usize> = (0..nb).collect();
    let mut v = vec![0.0; nb * bl];
    let mut vb = vec![0.0; 2];
    let mut buf = problem.op.buffers(nb);
    let (lam, passes) =
        crate::solver::lipschitz::max_eigenvalue(&problem, &ws, &mut v, &mut vb, &mut buf, 200);
    assert!(passes >= 1);
    let fro: f64 = data.x.iter().map(|x| x * x).sum();
    assert!(lam <= 2.0 * fro * (1.0 + 1e-12) && lam > 0.0);
    let mut r = rng(1);
    for _ in 0..50 {
        let z = uniform(&mut r, nb * bl, -1.0, 1.0);
        let f = problem.op.predict(&z, &[0.0, 0.0]);
        let ratio = f.iter().map(|x| x * x).sum::<f64>() / z.iter().map(|x| x * x).sum::<f64>();
        assert!(
            ratio <= lam * 1.02,
            "Rayleigh quotient {ratio} above λ = {lam}"
        );
    }
}

#[test]
fn working_set_step_bound_bounds_the_operator_on_the_set() {
    // The bound on blocks W (read off X̄ᵀX̄, no data pass) holds for points
    // supported on W, and is no larger than the bound on all blocks.
    let data = instance(30, 4, 3, 2, Loss::Squared, 9);
    let problem = sequence_problem(&data, Loss::Squared, 1.0).unwrap();
    let (nb, bl) = (problem.op.n_blocks(), problem.block_len());
    let all = problem.op.lipschitz_bound().unwrap();
    let mut r = rng(2);
    for ws in [vec![0], vec![1, 4], vec![0, 1, 5], (0..nb).collect()] {
        let bound = problem.op.lipschitz_bound_on(&ws).unwrap();
        assert!(
            bound > 0.0 && bound <= all * (1.0 + 1e-9),
            "{bound} vs {all}"
        );
        for _ in 0..50 {
            let mut z = uniform(&mut r, nb * bl, -1.0, 1.0);
            for (b, zb) in z.chunks_exact_mut(bl).enumerate() {
                if !ws.contains(&b) {
                    zb.iter_mut().for_each(|v| *v = 0.0);
                }
            }
            let f = problem.op.predict(&z, &[0.0, 0.0]);
            let ratio = f.iter().map(|x| x * x).sum::<f64>() / z.iter().map(|x| x * x).sum::<f64>();
            assert!(
                ratio <= bound,
                "Rayleigh quotient {ratio} above {bound} on {ws:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The split form and the maps
// ---------------------------------------------------------------------------

#[test]
fn split_form_is_exact() {
    let mut r = rng(21);
    for n in 1..=6 {
        for _ in 0..50 {
            // (≥): any pair in K gives equal row sums and ‖C‖∞,1 ≤ t⁺ + t⁻.
            let (tp, tm) = (r.random_range(0.0..2.0), r.random_range(0.0..2.0));
            let cp: Vec<f64> = row_stochastic(&mut r, n, true)
                .iter()
                .map(|x| tp * x)
                .collect();
            let cm: Vec<f64> = row_stochastic(&mut r, n, true)
                .iter()
                .map(|x| tm * x)
                .collect();
            let c: Vec<f64> = cp.iter().zip(&cm).map(|(a, b)| a - b).collect();
            for s in row_sums(&c, n) {
                assert!((s - (tp - tm)).abs() < 1e-12);
            }
            assert!(norm_inf1(&c, n) <= tp + tm + 1e-12);
            // (≤): the split of that C is in K with t⁺ + t⁻ = ‖C‖∞,1.
            let (sp, stp, sm, stm) = split_matrix(&c, n).unwrap();
            let m = norm_inf1(&c, n);
            assert!((stp + stm - m).abs() < 1e-12, "{} vs {m}", stp + stm);
            assert!(sp.iter().chain(&sm).all(|&v| v >= 0.0));
            for (s_p, s_m) in row_sums(&sp, n).iter().zip(row_sums(&sm, n)) {
                assert!((s_p - stp).abs() < 1e-12 && (s_m - stm).abs() < 1e-12);
            }
            for ((a, b), e) in sp.iter().zip(&sm).zip(&c) {
                assert!((a - b - e).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn map_i_random_heads_give_a_cheaper_convex_point() {
    let mut r = rng(31);
    for (case, loss) in [Loss::Squared, Loss::CrossEntropy, Loss::Huber(0.5)]
        .into_iter()
        .enumerate()
    {
        let (n_s, n, d, c) = (12, 4, 3, if loss == Loss::CrossEntropy { 3 } else { 2 });
        let data = instance(n_s, n, d, c, loss, 40 + case as u64);
        for _ in 0..20 {
            let h = r.random_range(1..6);
            let heads: Vec<SequenceHead> = (0..h)
                .map(|_| SequenceHead {
                    mixing: {
                        let sparse = r.random_bool(0.5);
                        row_stochastic(&mut r, n, sparse)
                    },
                    value: uniform(&mut r, d * c, -1.0, 1.0),
                    output: r.random_range(-2.0..2.0),
                })
                .collect();
            let coef = sequence_heads_to_coef(&heads, n, d, c).unwrap();
            for m in coef.chunks_exact(n * n) {
                let sums = row_sums(m, n);
                for s in &sums {
                    assert!((s - sums[0]).abs() < 1e-12, "unequal row sums");
                }
            }
            let hp = head_predictions(&heads, &data);
            let cp = coef_predictions(&coef, &data);
            for (a, b) in hp.iter().zip(&cp) {
                assert!((a - b).abs() < 1e-12);
            }
            let beta = r.random_range(0.01..2.0);
            let convex = sequence_objective(&coef, &data, loss, beta);
            let nonconvex = sequence_nonconvex_objective(&heads, &data, loss, beta);
            assert!(convex <= nonconvex + 1e-12, "{convex} > {nonconvex}");
        }
    }
}

#[test]
fn recovery_rejects_unequal_row_sums() {
    let n = 3;
    let mut coef = vec![0.0; n * n];
    coef[0] = 1.0; // row sums 1, 0, 0
    let err = recover_sequence_heads(&coef, n, 1, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row sums") && err.contains("q=0"), "{err}");
    // Within the tolerance: accepted.
    let mut ok = vec![1.0 / 3.0; n * n];
    ok[0] += 0.1 * EQUAL_ROWS_TOL;
    assert!(recover_sequence_heads(&ok, n, 1, 1).is_ok());
    assert!(recover_sequence_heads(&ok, n, 2, 1).is_err());
}

#[test]
fn equalize_rows_projects_onto_the_subspace() {
    let mut r = rng(2);
    let n = 5;
    let mut m = uniform(&mut r, 2 * n * n, -1.0, 1.0);
    let before = m.clone();
    equalize_rows(&mut m, n);
    for blk in m.chunks_exact(n * n) {
        let s = row_sums(blk, n);
        assert!(s.iter().all(|v| (v - s[0]).abs() < 1e-14));
    }
    // Orthogonal projection: the change is orthogonal to the subspace
    // (constant along each row), and applying it again changes nothing.
    let once = m.clone();
    equalize_rows(&mut m, n);
    assert!(m.iter().zip(&once).all(|(a, b)| (a - b).abs() < 1e-15));
    for (a, b) in before.chunks_exact(n).zip(once.chunks_exact(n)) {
        let d0 = a[0] - b[0];
        assert!(a.iter().zip(b).all(|(x, y)| (x - y - d0).abs() < 1e-14));
    }
}

// ---------------------------------------------------------------------------
// The solver: certificate, gap, recovery
// ---------------------------------------------------------------------------

#[test]
fn solver_converges_and_recovery_reproduces_the_objective() {
    for (case, (loss, c)) in [
        (Loss::Squared, 2),
        (Loss::CrossEntropy, 3),
        (Loss::Logistic, 1),
        (Loss::Huber(0.3), 1),
    ]
    .into_iter()
    .enumerate()
    {
        let data = instance(25, 4, 2, c, loss, 60 + case as u64);
        let bmax = sequence_beta_max(&data, loss).unwrap();
        for frac in [0.3, 0.05] {
            let beta = frac * bmax;
            let sol = solve_sequence(&data, loss, beta, &opts(1e-9, 200_000)).unwrap();
            let cert = sol.certificate;
            assert!(
                sol.converged(),
                "{loss:?} β = {beta}: {:?} {cert:?}",
                sol.stop
            );
            assert!(cert.relative_gap <= 1e-9 && cert.gap >= -1e-12, "{cert:?}");
            // The certificate's primal is the objective of the returned C.
            let direct = sequence_objective(&sol.coef, &data, loss, beta);
            assert!(
                rel(cert.primal, direct) < 1e-12,
                "{} vs {direct}",
                cert.primal
            );
            // Recovery: heads reproduce the objective; W row-stochastic;
            // map (i) of the heads gives C back.
            assert!(
                rel(sol.nonconvex_objective, cert.primal) < 1e-9,
                "{loss:?}: nonconvex {} vs convex {}",
                sol.nonconvex_objective,
                cert.primal
            );
            assert!(!sol.heads.is_empty());
            for h in &sol.heads {
                assert!(h.mixing.iter().all(|&v| v >= 0.0));
                for s in row_sums(&h.mixing, 4) {
                    assert!((s - 1.0).abs() < 1e-14);
                }
            }
            let back = sequence_heads_to_coef(&sol.heads, 4, 2, c).unwrap();
            let scale = max_abs(&sol.coef).max(1.0);
            for (a, b) in back.iter().zip(&sol.coef) {
                assert!((a - b).abs() < 1e-12 * scale);
            }
            let pen: f64 = sol.heads.iter().map(super::recovery::head_penalty).sum();
            assert!(rel(pen, sequence_penalty(&sol.coef, 4)) < 1e-12);
        }
    }
}

#[test]
fn dual_bounds_every_feasible_primal_and_the_gap_closes() {
    let data = instance(30, 4, 2, 2, Loss::Squared, 71);
    let loss = Loss::Squared;
    let beta = 0.1 * sequence_beta_max(&data, loss).unwrap();
    let best = solve_sequence(&data, loss, beta, &opts(1e-11, 500_000)).unwrap();
    let p_star = best.certificate.primal;
    let mut r = rng(72);
    let mut last_gap = f64::INFINITY;
    let mut gaps = Vec::new();
    for max_iter in [1, 3, 10, 30, 100, 300, 1000, 3000] {
        let sol = solve_sequence(&data, loss, beta, &opts(1e-14, max_iter)).unwrap();
        let cert = sol.certificate;
        assert!(
            cert.dual <= p_star + 1e-12 * p_star.abs(),
            "D = {} > P* = {p_star}",
            cert.dual
        );
        assert!(cert.primal >= p_star - 1e-10 * p_star.abs());
        // Random feasible points (pairs in K, and map (i) of random heads).
        for _ in 0..20 {
            let h: Vec<SequenceHead> = (0..3)
                .map(|_| SequenceHead {
                    mixing: row_stochastic(&mut r, 4, true),
                    value: uniform(&mut r, 4, -0.5, 0.5),
                    output: r.random_range(-1.0..1.0),
                })
                .collect();
            let coef = sequence_heads_to_coef(&h, 4, 2, 2).unwrap();
            let p = sequence_objective(&coef, &data, loss, beta);
            assert!(
                cert.dual <= p + 1e-12,
                "dual {} above a feasible primal {p}",
                cert.dual
            );
        }
        gaps.push(cert.gap);
        last_gap = cert.gap;
    }
    assert!(last_gap < 1e-6 * p_star.abs().max(1.0), "gaps {gaps:?}");
    assert!(
        gaps[0] > 100.0 * last_gap,
        "the gap did not shrink: {gaps:?}"
    );
    assert!(best.certificate.relative_gap <= 1e-11);
}

#[test]
fn beta_max_is_where_zero_becomes_optimal() {
    for (case, (loss, c)) in [(Loss::Squared, 2), (Loss::CrossEntropy, 3)]
        .into_iter()
        .enumerate()
    {
        let data = instance(20, 3, 2, c, loss, 80 + case as u64);
        let bmax = sequence_beta_max(&data, loss).unwrap();
        assert!(bmax > 0.0);
        let above = solve_sequence(&data, loss, bmax * 1.0001, &opts(1e-10, 1000)).unwrap();
        assert!(above.converged() && above.iterations == 0);
        assert!(above.coef.iter().all(|&v| v == 0.0) && above.heads.is_empty());
        assert!(above.certificate.gap.abs() < 1e-12);
        let below = solve_sequence(&data, loss, bmax * 0.9, &opts(1e-10, 100_000)).unwrap();
        assert!(below.converged());
        assert!(
            below.coef.iter().any(|&v| v != 0.0),
            "{loss:?}: zero below β_max"
        );
    }
}

#[test]
fn planted_heads_are_certified() {
    let spec =
        parse_sequence_synthetic("synthetic:N=200,n=8,d=3,c=2,heads=2,support=2,noise=0.05,seed=4")
            .unwrap();
    let (data, _planted) = generate_sequence(&spec).unwrap();
    let loss = Loss::Squared;
    let bmax = sequence_beta_max(&data, loss).unwrap();
    let sol = solve_sequence(&data, loss, 0.02 * bmax, &opts(1e-8, 100_000)).unwrap();
    assert!(sol.converged(), "{:?}", sol.certificate);
    assert!(sol.certificate.relative_gap <= 1e-8);
    assert!(rel(sol.nonconvex_objective, sol.certificate.primal) < 1e-9);
    let report = SequenceReport::new(&data, loss, &sol, bmax, None).unwrap();
    // Small noise: the fit explains most of the variance.
    let var: f64 = data.y.iter().map(|v| v * v).sum::<f64>() / (200 * 8) as f64;
    assert!(
        report.train_error < 0.2 * var,
        "{} vs {var}",
        report.train_error
    );
    eprintln!(
        "planted N=200 n=8 d=3 c=2: rel gap {:.2e}, {} iterations, {:.1} passes, {:.3} s",
        sol.certificate.relative_gap, sol.iterations, sol.data_passes, sol.seconds
    );
}

#[test]
fn report_serialises_the_fields_the_cli_needs() {
    let data = instance(10, 3, 2, 1, Loss::Squared, 90);
    let bmax = sequence_beta_max(&data, Loss::Squared).unwrap();
    let sol = solve_sequence(&data, Loss::Squared, 0.2 * bmax, &opts(1e-8, 50_000)).unwrap();
    let val = instance(5, 3, 2, 1, Loss::Squared, 91);
    let rep = SequenceReport::new(&data, Loss::Squared, &sol, bmax, Some(&val)).unwrap();
    let json = serde_json::to_value(&rep).unwrap();
    for key in [
        "objective",
        "dual_objective",
        "duality_gap",
        "relative_gap",
        "iterations",
        "data_passes",
        "seconds",
        "beta",
        "beta_max",
        "converged",
        "stop_reason",
        "nonconvex_objective",
        "recovery_relative_difference",
        "heads",
        "n_heads",
        "train_error",
        "validation_error",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["heads"].as_array().unwrap().len(), sol.heads.len());
    assert!(json["heads"][0].get("mixing").is_some());
    assert!(rep.recovery_relative_difference < 1e-9);
    // Heads round-trip through JSON.
    let heads: Vec<SequenceHead> = serde_json::from_value(json["heads"].clone()).unwrap();
    assert_eq!(heads, sol.heads);
    // A model of other sizes cannot predict.
    assert!(sol
        .predict(&instance(5, 4, 2, 1, Loss::Squared, 1))
        .is_err());
}

#[test]
fn inputs_are_checked() {
    let data = instance(10, 3, 2, 1, Loss::Squared, 92);
    let o = opts(1e-6, 100);
    for beta in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(solve_sequence(&data, Loss::Squared, beta, &o).is_err());
    }
    // Real targets are not labels.
    let err = solve_sequence(&data, Loss::CrossEntropy, 1.0, &o).unwrap_err();
    assert!(err.to_string().contains("cross-entropy"), "{err}");
    let err = solve_sequence(&data, Loss::Logistic, 1.0, &o).unwrap_err();
    assert!(err.to_string().contains("-1, +1"), "{err}");
    assert!(solve_sequence(&data, Loss::Squared, 1.0, &opts(0.0, 100)).is_err());
}

#[test]
fn memory_guard_refuses_before_allocating() {
    // n = 4000, d = 2: 2·n²·d = 64M parameters; X itself is tiny.
    let (n, d) = (4000, 2);
    let data =
        Dataset::new_real_per_position(vec![0.5; n * d], (1, n, d), vec![0.0; n], 1).unwrap();
    let err = solve_sequence(&data, Loss::Squared, 1.0, &opts(1e-6, 10)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, crate::Error::TooLarge(_)), "{msg}");
    let bytes = sequence_bytes(n, d, 1).unwrap();
    assert!(bytes > MAX_SEQUENCE_BYTES);
    assert!(
        msg.contains(&bytes.to_string()) && msg.contains("vector-l1"),
        "{msg}"
    );
    assert!(sequence_beta_max(&data, Loss::Squared).is_err());
    assert!(check_sequence_size(usize::MAX, 2, 2).is_err());
    assert!(check_sequence_size(64, 16, 4).is_ok());
    // The vector program per output row is available instead.
    let row = data.position_dataset(3).unwrap();
    assert_eq!(row.shape(), (1, n, d, 1));
}

// ---------------------------------------------------------------------------
// Data: npz and synthetic
// ---------------------------------------------------------------------------

#[test]
fn npz_round_trips_real_and_label_targets() {
    let dir = tempfile::tempdir().unwrap();
    let real = instance(6, 3, 2, 2, Loss::Squared, 1);
    let labels = instance(6, 3, 2, 3, Loss::CrossEntropy, 2);
    for (name, ds) in [("real", &real), ("labels", &labels)] {
        let path = dir.path().join(format!("{name}.npz"));
        write_npz(&path, ds).unwrap();
        let back = read_npz_as(&path, true, SEQ).unwrap().0;
        assert_eq!(&back, ds, "{name}");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&read_npz_bytes_as(&bytes, SEQ).unwrap(), ds);
    }
}

type Writer = ndarray_npy::NpzWriter<std::io::Cursor<Vec<u8>>>;

fn npz_with(add: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = ndarray_npy::NpzWriter::new(std::io::Cursor::new(Vec::new()));
    add(&mut w);
    w.finish().unwrap().into_inner()
}

#[test]
fn npz_shapes_and_errors() {
    use ndarray::{Array1, Array2, Array3};
    let x = Array3::<f32>::from_shape_fn((2, 3, 2), |(i, k, q)| (i + k + q) as f32);
    // 2-D float y: one real output per position.
    let b = npz_with(|w| {
        w.add_array("X", &x).unwrap();
        w.add_array("y", &Array2::<f64>::from_elem((2, 3), 0.5))
            .unwrap();
    });
    let ds = read_npz_bytes_as(&b, SEQ).unwrap();
    assert_eq!(ds.shape(), (2, 3, 2, 1));
    assert!(ds.labels.is_none());
    // Integer (N, n) labels.
    let b = npz_with(|w| {
        w.add_array("X", &x).unwrap();
        w.add_array(
            "y",
            &Array2::<i32>::from_shape_fn((2, 3), |(i, r)| ((i + r) % 3) as i32),
        )
        .unwrap();
    });
    let ds = read_npz_bytes_as(&b, SEQ).unwrap();
    assert_eq!(ds.shape(), (2, 3, 2, 3));
    assert_eq!(ds.labels.as_deref(), Some(&[0, 1, 2, 1, 2, 0][..]));
    assert_eq!(ds.position_target(1, 0), &[0.0, 1.0, 0.0]);
    let err = |add: &dyn Fn(&mut Writer)| {
        read_npz_bytes_as(&npz_with(|w| add(w)), SEQ)
            .unwrap_err()
            .to_string()
    };
    let e = err(&|w| {
        w.add_array("X", &x).unwrap();
        w.add_array("y", &Array1::<f64>::zeros(2)).unwrap();
    });
    assert!(e.contains("(N, n, c)"), "{e}");
    let e = err(&|w| {
        w.add_array("X", &x).unwrap();
        w.add_array("y", &Array2::<f64>::zeros((2, 4))).unwrap();
    });
    assert!(e.contains("(N, n, c)") && e.contains("[2, 4]"), "{e}");
    let e = err(&|w| {
        w.add_array("X", &x).unwrap();
        w.add_array("y", &Array3::<i64>::zeros((2, 3, 1))).unwrap();
    });
    assert!(e.contains("integer"), "{e}");
    let e = err(&|w| {
        w.add_array("X", &x).unwrap();
        w.add_array("y", &Array2::<i64>::from_elem((2, 3), -1))
            .unwrap();
    });
    assert!(e.contains("negative"), "{e}");
    let e = err(&|w| {
        w.add_array("X", &x).unwrap();
    });
    assert!(e.contains("no array 'y'"), "{e}");
    assert!(read_npz_bytes_as(b"not a zip", SEQ).is_err());
    let dir = tempfile::tempdir().unwrap();
    assert!(read_npz_as(dir.path(), true, SEQ).is_err());
    assert!(read_npz_as(&dir.path().join("missing.npz"), true, SEQ).is_err());
}

#[test]
fn synthetic_spec_parses_and_generates_planted_heads() {
    let s = parse_sequence_synthetic("synthetic").unwrap();
    assert_eq!(s, SequenceSyntheticSpec::default());
    let s = parse_sequence_synthetic(
        "synthetic:N=30,n=5,d=2,c=3,heads=3,support=1,noise=0,seed=9,kind=classes",
    )
    .unwrap();
    assert_eq!((s.n_samples, s.n_tokens, s.heads, s.support), (30, 5, 3, 1));
    assert_eq!(s.kind, TargetKind::Classes);
    for bad in [
        "synthetic:n=3,support=4",
        "synthetic:heads=0",
        "synthetic:kind=binary,c=2",
        "synthetic:kind=classes",
        "synthetic:foo=1",
        "synthetic:N=1,N=2",
        "synthetic:noise=-1",
        "synthetic:N",
        "synth",
    ] {
        assert!(parse_sequence_synthetic(bad).is_err(), "{bad}");
    }
    let (a, heads) = generate_sequence(&s).unwrap();
    let (b, _) = generate_sequence(&s).unwrap();
    assert_eq!(a, b);
    assert_eq!(heads.len(), 3);
    for h in &heads {
        for row in h.mixing.chunks_exact(5) {
            assert_eq!(row.iter().filter(|&&v| v > 0.0).count(), 1);
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
    assert!(a.labels.is_some() && a.n_outputs == 3);
    // Real targets without noise are the heads' predictions.
    let spec = SequenceSyntheticSpec {
        noise: 0.0,
        kind: TargetKind::Real,
        ..s
    };
    let (ds, heads) = generate_sequence(&spec).unwrap();
    assert_eq!(head_predictions(&heads, &ds), ds.y);
    let spec = SequenceSyntheticSpec {
        n_outputs: 1,
        kind: TargetKind::Binary,
        ..spec
    };
    let (ds, _) = generate_sequence(&spec).unwrap();
    assert!(ds.y.iter().all(|&v| v == 1.0 || v == -1.0));
}

#[cfg(feature = "plot")]
#[test]
fn mixing_matrices_are_plotted() {
    let dir = tempfile::tempdir().unwrap();
    let data = instance(15, 4, 2, 1, Loss::Squared, 93);
    let bmax = sequence_beta_max(&data, Loss::Squared).unwrap();
    let sol = solve_sequence(&data, Loss::Squared, 0.2 * bmax, &opts(1e-8, 50_000)).unwrap();
    let stems = plot_mixing_matrices(dir.path(), "W", &sol.heads, 4).unwrap();
    assert_eq!(stems.len(), sol.heads.len());
    for s in &stems {
        for ext in ["png", "svg"] {
            let p = s.with_extension(ext);
            assert!(
                std::fs::metadata(&p).unwrap().len() > 100,
                "{}",
                p.display()
            );
        }
    }
    assert!(plot_mixing_matrices(dir.path(), "a/b", &sol.heads, 4).is_err());
    assert!(plot_mixing_matrices(dir.path(), "W", &sol.heads, 5).is_err());
}

/// Timing on a larger planted instance (run with `-- --ignored --nocapture`;
/// the test profile is optimised).
#[test]
#[ignore]
fn planted_timing() {
    for (spec, loss) in [
        (
            "synthetic:N=2000,n=16,d=8,c=2,heads=3,support=2,noise=0.1,seed=1",
            Loss::Squared,
        ),
        (
            "synthetic:N=2000,n=16,d=8,c=3,heads=3,support=2,noise=0.1,seed=2,kind=classes",
            Loss::CrossEntropy,
        ),
    ] {
        let (data, _) = generate_sequence(&parse_sequence_synthetic(spec).unwrap()).unwrap();
        let bmax = sequence_beta_max(&data, loss).unwrap();
        for frac in [0.1, 0.01] {
            let sol = solve_sequence(&data, loss, frac * bmax, &opts(1e-8, 1_000_000)).unwrap();
            let rep = SequenceReport::new(&data, loss, &sol, bmax, None).unwrap();
            eprintln!(
                "{spec} {loss:?} β = {frac}·β_max: {:?}, rel gap {:.2e}, {} iterations, {:.0} passes, \
                 {:.3} s, {} heads, recovery diff {:.1e}, train error {:.4}",
                sol.stop,
                sol.certificate.relative_gap,
                sol.iterations,
                sol.data_passes,
                sol.seconds,
                sol.heads.len(),
                rep.recovery_relative_difference,
                rep.train_error
            );
            assert!(sol.converged());
        }
    }
}

// ---------------------------------------------------------------------------
// Warm starts and model files
// ---------------------------------------------------------------------------

#[test]
fn warm_start_reaches_the_cold_objective_with_no_more_work() {
    for (case, (loss, c)) in [(Loss::Squared, 2), (Loss::CrossEntropy, 3)]
        .into_iter()
        .enumerate()
    {
        let data = instance(30, 4, 2, c, loss, 300 + case as u64);
        let bmax = sequence_beta_max(&data, loss).unwrap();
        let o = opts(1e-9, 200_000);
        let prev = solve_sequence(&data, loss, 0.3 * bmax, &o).unwrap();
        let cold = solve_sequence(&data, loss, 0.2 * bmax, &o).unwrap();
        let warm = solve_sequence_from(&data, loss, 0.2 * bmax, &o, Some(&prev.coef)).unwrap();
        assert!(cold.converged() && warm.converged(), "{loss:?}");
        assert!(
            rel(warm.certificate.primal, cold.certificate.primal) < 1e-7,
            "{loss:?}: warm {} cold {}",
            warm.certificate.primal,
            cold.certificate.primal
        );
        assert!(rel(warm.nonconvex_objective, warm.certificate.primal) < 1e-9);
        // With working sets and restarts both solves take few iterations
        // here (counted in steps of check_every), so the warm start is held
        // to no more work; the strict saving is the restart at the optimum.
        assert!(
            warm.iterations <= cold.iterations && warm.data_passes <= cold.data_passes,
            "{loss:?}: warm {} iterations, {} passes; cold {}, {}",
            warm.iterations,
            warm.data_passes,
            cold.iterations,
            cold.data_passes
        );
        // Started at its own optimum, a solve is certified at once.
        let looser = opts(1e-7, 200_000);
        let again =
            solve_sequence_from(&data, loss, 0.2 * bmax, &looser, Some(&warm.coef)).unwrap();
        assert!(again.converged() && again.iterations == 0, "{loss:?}");
    }
}

#[test]
fn warm_start_rejects_bad_starting_points() {
    let data = instance(10, 3, 2, 1, Loss::Squared, 310);
    let o = opts(1e-6, 100);
    let short = vec![0.0; 5];
    let e = solve_sequence_from(&data, Loss::Squared, 1.0, &o, Some(&short)).unwrap_err();
    assert!(e.to_string().contains("coefficients"), "{e}");
    // Unequal row sums: no pair in K × K gives this matrix.
    let mut bad = vec![0.0; 3 * 3 * 2];
    bad[0] = 1.0;
    let e = solve_sequence_from(&data, Loss::Squared, 1.0, &o, Some(&bad)).unwrap_err();
    assert!(e.to_string().contains("row sums"), "{e}");
}

#[test]
fn sequence_model_file_round_trips_and_predicts_like_the_solution() {
    use crate::model::{Model, SavedModel, SequenceModel, SequenceModelHeader};
    let loss = Loss::Squared;
    let data = instance(12, 3, 2, 2, loss, 320);
    let bmax = sequence_beta_max(&data, loss).unwrap();
    let sol = solve_sequence(&data, loss, 0.2 * bmax, &opts(1e-8, 50_000)).unwrap();
    let model = SequenceModel {
        header: SequenceModelHeader {
            format: 1,
            program: crate::model::SEQUENCE_PROGRAM.into(),
            loss,
            beta: sol.beta,
            n_tokens: 3,
            n_features: 2,
            n_outputs: 2,
            n_heads: sol.heads.len(),
        },
        coef: sol.coef.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    model.save(&file).unwrap();
    let SavedModel::Sequence(back) = SavedModel::load(dir.path()).unwrap() else {
        panic!("a sequence model loaded as a token model");
    };
    assert_eq!(back.coef, sol.coef);
    assert_eq!(back.header.n_heads, sol.heads.len());
    assert_eq!(back.predict(&data).unwrap(), sol.predict(&data).unwrap());
    // Targets of another width do not matter; n or d do.
    let other = instance(4, 3, 2, 1, loss, 321);
    assert_eq!(back.predict(&other).unwrap().len(), 4 * 3 * 2);
    let wrong_n = instance(4, 4, 2, 2, loss, 322);
    let e = back.predict(&wrong_n).unwrap_err().to_string();
    assert!(e.contains("3×2") && e.contains("4×2"), "{e}");
    let e = Model::load(&file).unwrap_err().to_string();
    assert!(e.contains("sequence model"), "{e}");
}

#[test]
fn inputs_without_targets_are_read_for_prediction() {
    let data = instance(3, 2, 2, 1, Loss::Squared, 330);
    let dir = tempfile::tempdir().unwrap();
    let with_y = dir.path().join("d.npz");
    write_npz(&with_y, &data).unwrap();
    let (back, has_y) = read_npz_as(&with_y, false, SEQ).unwrap();
    assert!(has_y && back == data);
    let x_only = dir.path().join("x.npz");
    let mut z = ndarray_npy::NpzWriter::new(std::fs::File::create(&x_only).unwrap());
    z.add_array(
        "X",
        &ndarray::ArrayView3::from_shape((3, 2, 2), &data.x).unwrap(),
    )
    .unwrap();
    z.finish().unwrap();
    let (back, has_y) = read_npz_as(&x_only, false, SEQ).unwrap();
    assert!(!has_y && back.x == data.x && back.y.iter().all(|&v| v == 0.0));
    let e = read_npz_as(dir.path(), false, SEQ).unwrap_err().to_string();
    assert!(e.contains("directory"), "{e}");
}

#[test]
fn screening_and_working_sets_serve_the_sequence_program() {
    // The generic solver's gap-safe screening and working sets on the split
    // form: the same certified optimum as without them, with blocks screened.
    let data = instance(200, 4, 8, 2, Loss::Squared, 77);
    let bmax = sequence_beta_max(&data, Loss::Squared).unwrap();
    let on = solve_sequence(&data, Loss::Squared, 0.5 * bmax, &opts(1e-9, 100_000)).unwrap();
    let off_opts = SolverOptions {
        screening: false,
        working_sets: false,
        ..opts(1e-9, 100_000)
    };
    let off = solve_sequence(&data, Loss::Squared, 0.5 * bmax, &off_opts).unwrap();
    assert!(on.converged() && off.converged());
    assert!(
        rel(on.certificate.primal, off.certificate.primal) < 1e-7,
        "{} vs {}",
        on.certificate.primal,
        off.certificate.primal
    );
    assert!(on.screened > 0, "no block screened at β = 0.5·β_max");
    assert_eq!(off.screened, 0);
    assert!(rel(on.nonconvex_objective, on.certificate.primal) < 1e-9);
}

#[test]
fn block_passes_match_dense_passes() {
    // Passes over a working set (one small product per block, feature-major
    // data) against passes over every block (two dense products).
    for (n_s, n, d, c, seed) in [(30, 3, 4, 2, 1), (50, 5, 3, 3, 2), (40, 2, 6, 1, 3)] {
        let data = instance(n_s, n, d, c, Loss::Squared, seed);
        let problem = sequence_problem(&data, Loss::Squared, 1.0).unwrap();
        let (nb, bl) = (problem.op.n_blocks(), problem.block_len());
        let mut r = rng(seed + 50);
        let fwd: Vec<usize> = (0..nb).filter(|b| b % 2 == 0).collect();
        // Fewer than half the blocks: the per-block path.
        let adj: Vec<usize> = (0..nb).filter(|b| b % 3 == 0).collect();
        assert!(2 * adj.len() < nb);
        let coef = uniform(&mut r, fwd.len() * bl, 0.0, 1.0);
        let zero = vec![0.0; c];
        let grad = |i: usize, yh: &[f64], g: &mut [f64]| -> f64 {
            let y = problem.target(i);
            g.iter_mut()
                .zip(yh.iter().zip(y))
                .for_each(|(g, (a, b))| *g = a - b);
            0.5 * g.iter().map(|v| v * v).sum::<f64>()
        };
        let all: Vec<usize> = (0..nb).collect();
        let mut dense = problem.op.buffers(nb);
        let lv_dense = problem
            .op
            .fused_pass(&fwd, &coef, &zero, &all, grad, &mut dense);
        let mut part = problem.op.buffers(nb);
        let lv_part = problem
            .op
            .fused_pass(&fwd, &coef, &zero, &adj, grad, &mut part);
        assert!((lv_dense - lv_part).abs() <= 1e-10 * lv_dense.abs().max(1.0));
        for (a, b) in dense.yhat.iter().zip(&part.yhat) {
            assert!((a - b).abs() < 1e-10, "forward {a} vs {b}");
        }
        for (j, &blk) in adj.iter().enumerate() {
            let (p, q) = (
                &part.block_grad[j * bl..(j + 1) * bl],
                &dense.block_grad[blk * bl..(blk + 1) * bl],
            );
            for (a, b) in p.iter().zip(q) {
                assert!((a - b).abs() < 1e-10, "adjoint {a} vs {b}");
            }
        }
    }
}

#[test]
fn targets_per_sample_are_refused() {
    let (n_s, n, d) = (4, 3, 2);
    let ds = Dataset::new_real(vec![0.5; n_s * n * d], (n_s, n, d), vec![1.0; n_s], 1).unwrap();
    let e = solve_sequence(&ds, Loss::Squared, 1.0, &opts(1e-6, 10))
        .unwrap_err()
        .to_string();
    assert!(e.contains("per position"), "{e}");
}

/// The sequence operator has no per-output Gram and no per-block products:
/// an explicit prox-Newton or cd is refused with a message that names the
/// way out; `auto` solves it.
#[test]
fn prox_newton_is_refused_clearly_and_auto_solves() {
    use crate::solver::{solve, SolverKind};
    let data = instance(40, 4, 3, 2, Loss::Squared, 3);
    let mut problem = sequence_problem(&data, Loss::Squared, 1.0).unwrap();
    problem.beta = 0.1 * crate::solver::beta_max(&problem);
    for solver in [SolverKind::ProxNewton, SolverKind::Cd] {
        let err = solve(
            &problem,
            &SolverOptions {
                solver,
                ..opts(1e-8, 100_000)
            },
            None,
        )
        .expect_err("prox-newton and cd on the sequence program must be refused");
        assert!(err.to_string().contains("--solver auto or fista"), "{err}");
    }
    let sol = solve(&problem, &opts(1e-8, 100_000), None).unwrap();
    assert!(sol.converged());
}
