//! Our solver against an exact interior-point reference (Clarabel) on small
//! random instances of the programs of SPEC §4a–§4b: the optimal values must
//! agree, and our duality-gap certificate must bracket the reference optimum,
//! also for a solve stopped long before convergence.
//!
//! Not covered: vector-l2 (nuclear norm) with c ≥ 2 needs a semidefinite cone,
//! which this build of Clarabel lacks (`reference_solve` returns an error and
//! `nuclear_with_several_outputs_has_no_reference` checks that it does); that
//! program is exercised here with c = 1, where the nuclear norm is the ℓ2 norm.

mod common;

use common::clarabel_ref::{objective, reference_solve, reference_solve_full};
use convexformer::data::Dataset;
use convexformer::loss::Loss;
use convexformer::operator::TokenOperator;
use convexformer::penalty::Penalty;
use convexformer::problem::Problem;
use convexformer::solver::{beta_max, solve, Solution, SolverKind, SolverOptions};

/// Every inner solver is checked against the reference.
const SOLVERS: [SolverKind; 4] = [
    SolverKind::Auto,
    SolverKind::Fista,
    SolverKind::ProxNewton,
    SolverKind::Cd,
];
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random instances per (program, loss).
const INSTANCES: usize = 20;
/// Agreement of optimal values, relative to max(1, |reference|).
const VALUE_TOL: f64 = 1e-6;
/// Slack of the certificate bracket dual ≤ optimum ≤ primal, same scale. The
/// reference is itself only accurate to about 1e-9 (Clarabel's tolerance).
const BRACKET_TOL: f64 = 1e-7;
/// The certificate's primal against the objective recomputed here: the same
/// sums in another order, so rounding only.
const ROUNDING_TOL: f64 = 1e-11;

/// One (program, loss) combination Clarabel can express.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    loss: Loss,
    penalty: Penalty,
    outputs: usize,
    /// Seeds are seed_base + instance index, so every case has its own data.
    seed_base: u64,
    /// Tokens with one nonzero feature each (as the grokking model's): their
    /// Grams are diagonal, which coordinate descent solves in its own way.
    one_hot: bool,
}

const CASES: [Case; 10] = [
    Case {
        name: "scalar × squared",
        loss: Loss::Squared,
        penalty: Penalty::GroupL2,
        outputs: 1,
        seed_base: 1000,
        one_hot: false,
    },
    Case {
        name: "scalar × logistic",
        loss: Loss::Logistic,
        penalty: Penalty::GroupL2,
        outputs: 1,
        seed_base: 2000,
        one_hot: false,
    },
    Case {
        name: "vector-l1 (c=3) × squared",
        loss: Loss::Squared,
        penalty: Penalty::GroupL2,
        outputs: 3,
        seed_base: 3000,
        one_hot: false,
    },
    Case {
        name: "vector-l1 (c=3) × cross-entropy",
        loss: Loss::CrossEntropy,
        penalty: Penalty::GroupL2,
        outputs: 3,
        seed_base: 4000,
        one_hot: false,
    },
    Case {
        name: "vector-l2 (c=1) × squared",
        loss: Loss::Squared,
        penalty: Penalty::Nuclear,
        outputs: 1,
        seed_base: 5000,
        one_hot: false,
    },
    Case {
        name: "scalar one-hot × logistic",
        loss: Loss::Logistic,
        penalty: Penalty::GroupL2,
        outputs: 1,
        seed_base: 6000,
        one_hot: true,
    },
    Case {
        name: "vector-l1 (c=3) one-hot × squared",
        loss: Loss::Squared,
        penalty: Penalty::GroupL2,
        outputs: 3,
        seed_base: 7000,
        one_hot: true,
    },
    Case {
        name: "vector-l1 (c=3) one-hot × cross-entropy",
        loss: Loss::CrossEntropy,
        penalty: Penalty::GroupL2,
        outputs: 3,
        seed_base: 8000,
        one_hot: true,
    },
    // Nine outputs: the solvers' products over all outputs at once (rows
    // of a block minimised together, block products by matrix products).
    Case {
        name: "vector-l1 (c=9) × squared",
        loss: Loss::Squared,
        penalty: Penalty::GroupL2,
        outputs: 9,
        seed_base: 9000,
        one_hot: false,
    },
    Case {
        name: "vector-l1 (c=9) × cross-entropy",
        loss: Loss::CrossEntropy,
        penalty: Penalty::GroupL2,
        outputs: 9,
        seed_base: 10000,
        one_hot: false,
    },
];

/// A random instance of a case: the data, β and whether to fit an intercept.
struct Instance {
    ds: Dataset<'static>,
    beta_frac: f64,
    intercept: bool,
}

/// N ∈ [15, 40) samples of n ∈ [2, 6] tokens with d ∈ [2, 4] features, targets
/// from a sparse random teacher (every third token is used) plus noise, as in
/// the library's own test generator; β a random fraction in [0.05, 0.9] of
/// β_max; an intercept for every other seed.
fn instance(case: &Case, index: usize) -> Instance {
    let seed = case.seed_base + index as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(15..40);
    let t = rng.random_range(2..=6);
    let d = rng.random_range(2..=4);
    let c = case.outputs;
    let mut x: Vec<f64> = (0..n * t * d)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    if case.one_hot {
        // One nonzero per token, of varying size and sign.
        for row in x.chunks_exact_mut(d) {
            let keep = rng.random_range(0..d);
            let v = rng.random_range(0.5..1.5) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            row.iter_mut().for_each(|x| *x = 0.0);
            row[keep] = v;
        }
    }
    let teacher: Vec<f64> = (0..t * c * d)
        .map(|j| {
            if (j / (c * d)) % 3 == 0 {
                rng.random_range(-1.0..1.0)
            } else {
                0.0
            }
        })
        .collect();
    let scores: Vec<f64> = (0..n * c)
        .map(|il| {
            let (i, l) = (il / c, il % c);
            let noise = rng.random_range(-0.5..0.5);
            noise
                + (0..t)
                    .map(|k| {
                        let xk = &x[(i * t + k) * d..(i * t + k + 1) * d];
                        let wk = &teacher[(k * c + l) * d..(k * c + l + 1) * d];
                        xk.iter().zip(wk).map(|(a, b)| a * b).sum::<f64>()
                    })
                    .sum::<f64>()
        })
        .collect();
    let ds = match case.loss {
        Loss::Squared => Dataset::new_real(x, (n, t, d), scores, c),
        Loss::Logistic => {
            let y = scores
                .iter()
                .map(|&s| if s >= 0.0 { 1.0 } else { -1.0 })
                .collect();
            Dataset::new_real(x, (n, t, d), y, 1)
        }
        Loss::CrossEntropy => {
            let labels = scores.chunks_exact(c).map(argmax).collect();
            Dataset::new_classes(x, (n, t, d), labels, c)
        }
        Loss::Huber(_) => unreachable!("no Huber case"),
    }
    .expect("valid random data");
    Instance {
        ds,
        beta_frac: rng.random_range(0.05..=0.9),
        intercept: index % 2 == 0,
    }
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |best, l| if v[l] > v[best] { l } else { best })
}

/// The problem of an instance, with β set from its fraction of β_max.
fn problem<'a>(case: &Case, inst: &'a Instance) -> Problem<'a> {
    let op = TokenOperator::new(&inst.ds, None);
    let mut p =
        Problem::new(op, case.loss, case.penalty, 1.0, inst.intercept).expect("valid problem");
    p.beta = inst.beta_frac * beta_max(&p);
    p
}

/// Asserts dual ≤ optimum ≤ primal up to BRACKET_TOL·scale.
fn assert_brackets(sol: &Solution, optimum: f64, what: &str) {
    let slack = BRACKET_TOL * optimum.abs().max(1.0);
    let cert = &sol.certificate;
    assert!(
        cert.dual <= optimum + slack,
        "{what}: certificate dual {} exceeds the reference optimum {optimum} by {:.3e} (> {slack:.1e}): not a valid lower bound",
        cert.dual,
        cert.dual - optimum
    );
    assert!(
        optimum <= cert.primal + slack,
        "{what}: reference optimum {optimum} exceeds our primal {} by {:.3e} (> {slack:.1e}): \
         our point beats the reference, so the reference is not optimal",
        cert.primal,
        optimum - cert.primal
    );
}

/// Solves every instance of `case` with both solvers; returns the worst
/// relative difference of the optimal values.
fn agree(case: &Case) -> f64 {
    SOLVERS
        .iter()
        .map(|&s| agree_with(case, s))
        .fold(0.0, f64::max)
}

/// The relative gap asked of `solver`: prox-Newton's diagonal model of the
/// softmax Hessian converges slowly, so cross-entropy is asked for 1e-7
/// there (still ten times inside the agreement tolerance).
fn tol_for(loss: Loss, solver: SolverKind) -> f64 {
    if solver == SolverKind::ProxNewton && loss == Loss::CrossEntropy {
        1e-7
    } else {
        1e-9
    }
}

fn agree_with(case: &Case, solver: SolverKind) -> f64 {
    let opts = SolverOptions {
        tol: tol_for(case.loss, solver),
        solver,
        ..SolverOptions::default()
    };
    let mut worst = 0.0f64;
    let mut almost = 0;
    let mut loosest = 0.0f64;
    for index in 0..INSTANCES {
        let inst = instance(case, index);
        let p = problem(case, &inst);
        let what = format!(
            "{} {} #{index} (N={}, n={}, d={}, β={:.4}, intercept={})",
            case.name,
            solver.name(),
            inst.ds.n_samples,
            inst.ds.n_tokens,
            inst.ds.n_features,
            p.beta,
            inst.intercept
        );
        let reference =
            reference_solve_full(&inst.ds, case.loss, case.penalty, p.beta, inst.intercept)
                .unwrap_or_else(|e| panic!("{what}: reference failed: {e}"));
        almost += reference.almost as usize;
        loosest = loosest.max(reference.tol);
        let sol =
            solve(&p, &opts, None).unwrap_or_else(|e| panic!("{what}: our solve failed: {e}"));
        assert!(
            sol.converged(),
            "{what}: our solver stopped ({:?}) at relative gap {:.2e}",
            sol.stop,
            sol.certificate.relative_gap
        );

        // Our value, recomputed outside the library, must be what the
        // certificate reports, and must match the reference.
        let ours = objective(&inst.ds, case.loss, p.beta, &sol.coef, &sol.intercept);
        let scale = reference.objective.abs().max(1.0);
        assert!(
            (ours - sol.certificate.primal).abs() <= ROUNDING_TOL * scale,
            "{what}: certificate primal {} but the objective at our solution is {ours}",
            sol.certificate.primal
        );
        let rel = (ours - reference.objective).abs() / scale;
        assert!(
            rel <= VALUE_TOL,
            "{what}: ours {ours} vs reference {}: relative difference {rel:.3e} > {VALUE_TOL:.0e}",
            reference.objective
        );
        assert_brackets(&sol, reference.objective, &what);
        worst = worst.max(rel);
    }
    eprintln!(
        "{:<34} {:<11} {INSTANCES} instances, worst |ours − reference| / max(1, |reference|) = {worst:.3e} \
         (Clarabel tolerance reached: {loosest:.0e} or tighter; {almost} AlmostSolved)",
        case.name,
        solver.name()
    );
    worst
}

#[test]
fn scalar_squared_agrees_with_clarabel() {
    agree(&CASES[0]);
}

#[test]
fn scalar_logistic_agrees_with_clarabel() {
    agree(&CASES[1]);
}

#[test]
fn vector_l1_squared_agrees_with_clarabel() {
    agree(&CASES[2]);
}

#[test]
fn vector_l1_many_outputs_agrees_with_clarabel() {
    agree(&CASES[8]);
    agree(&CASES[9]);
}

#[test]
fn vector_l1_cross_entropy_agrees_with_clarabel() {
    agree(&CASES[3]);
}

#[test]
fn vector_l2_single_output_squared_agrees_with_clarabel() {
    agree(&CASES[4]);
}

#[test]
fn one_hot_tokens_agree_with_clarabel() {
    for case in &CASES[5..8] {
        agree(case);
    }
}

/// The certificate is a valid bound at any iterate, not only at convergence:
/// stop after 3 iterations and check dual ≤ optimum ≤ primal. The first few
/// instances of every case are used; the test insists most of them really
/// stopped early with a sizeable gap, or it would check nothing new.
#[test]
fn early_stopped_certificate_brackets_the_optimum() {
    for solver in SOLVERS {
        early_stopped_with(solver);
    }
}

fn early_stopped_with(solver: SolverKind) {
    let opts = SolverOptions {
        max_iter: 3,
        tol: 1e-12,
        solver,
        ..SolverOptions::default()
    };
    let (mut checked, mut open) = (0, 0);
    for case in &CASES {
        for index in 0..4 {
            let inst = instance(case, index);
            let p = problem(case, &inst);
            let what = format!(
                "{} {} #{index} stopped after 3 iterations",
                case.name,
                solver.name()
            );
            let reference =
                reference_solve_full(&inst.ds, case.loss, case.penalty, p.beta, inst.intercept)
                    .unwrap_or_else(|e| panic!("{what}: reference failed: {e}"));
            let sol =
                solve(&p, &opts, None).unwrap_or_else(|e| panic!("{what}: our solve failed: {e}"));
            assert_brackets(&sol, reference.objective, &what);
            checked += 1;
            open += (sol.certificate.relative_gap > 1e-6) as usize;
        }
    }
    eprintln!(
        "early stop ({}): {open} of {checked} solves stopped with relative gap > 1e-6; all brackets hold",
        solver.name()
    );
    assert!(
        2 * open >= checked,
        "only {open} of {checked} early-stopped solves had a gap: the test checks nothing"
    );
}

/// Vector-l2 with several outputs has no reference here (SDP cone missing):
/// make that an explicit error, not a silent wrong answer.
#[test]
fn nuclear_with_several_outputs_has_no_reference() {
    let case = Case {
        outputs: 3,
        ..CASES[4]
    };
    let inst = instance(&case, 0);
    let err = reference_solve(&inst.ds, Loss::Squared, Penalty::Nuclear, 0.1, false).err();
    assert_eq!(err.as_deref(), Some("nuclear norm needs an SDP cone"));
}

/// The gated program (SPEC §4d) is the group lasso on the gate-expanded
/// tokens D_p(X_i)·x_{i,k}: Clarabel solves that expanded problem explicitly,
/// our solver the gated one through its masks, on 20 instances per loss.
#[test]
fn gated_agrees_with_clarabel_on_the_expanded_problem() {
    for solver in SOLVERS {
        gated_agrees_with(solver);
    }
}

fn gated_agrees_with(solver: SolverKind) {
    use convexformer::operator::{GateKind, GateSpec, Gates};
    let opts = SolverOptions {
        tol: 1e-9,
        solver,
        ..SolverOptions::default()
    };
    for case in [CASES[0], CASES[1], CASES[3]] {
        let opts = SolverOptions {
            tol: tol_for(case.loss, solver),
            ..opts.clone()
        };
        let mut worst = 0.0f64;
        for index in 0..INSTANCES {
            let inst = instance(&case, index + 100);
            let (n, t, d, c) = inst.ds.shape();
            let spec = GateSpec {
                n_gates: 3,
                kind: if index % 2 == 0 {
                    GateKind::Gaussian
                } else {
                    GateKind::Samples
                },
                tokenwise: index % 3 == 0,
                seed: index as u64,
            };
            let gates = Gates::draw(spec, &inst.ds).unwrap();
            let masks = gates.masks(&inst.ds).unwrap();
            // Expanded tokens: block (p, k) of sample i is D_p(X_i)·x_{i,k}.
            let mut x = Vec::with_capacity(n * 3 * t * d);
            for i in 0..n {
                for p in 0..3 {
                    let on = if masks.mask[i * 3 + p] { 1.0 } else { 0.0 };
                    for k in 0..t {
                        x.extend(inst.ds.token(i, k).iter().map(|v| on * v));
                    }
                }
            }
            let mut expanded = inst.ds.clone();
            expanded.n_tokens = 3 * t;
            expanded.x = x.into();
            let op = TokenOperator::new(&inst.ds, Some(&masks));
            let mut p = Problem::new(op, case.loss, case.penalty, 1.0, inst.intercept).unwrap();
            p.beta = inst.beta_frac * beta_max(&p);
            let what = format!(
                "gated {} {} #{index} (N={n}, n={t}, d={d}, c={c})",
                case.name,
                solver.name()
            );
            let reference =
                reference_solve(&expanded, case.loss, case.penalty, p.beta, inst.intercept)
                    .unwrap_or_else(|e| panic!("{what}: reference failed: {e}"));
            let sol = solve(&p, &opts, None).unwrap();
            assert!(sol.converged(), "{what}: not converged");
            let rel = (sol.certificate.primal - reference).abs() / reference.abs().max(1.0);
            assert!(
                rel <= VALUE_TOL,
                "{what}: ours {} vs reference {reference}: {rel:.3e}",
                sol.certificate.primal
            );
            assert_brackets(&sol, reference, &what);
            worst = worst.max(rel);
        }
        eprintln!(
            "gated {:<28} {:<11} {INSTANCES} instances, worst relative difference {worst:.3e}",
            case.name,
            solver.name()
        );
    }
}
