//! The cases of the data-parallel agreement tests, shared by the test that
//! runs the shards as threads (`tests/sharded_threads.rs`, every build) and
//! the one that runs them as MPI processes (`tests/mpi.rs`, feature `mpi`,
//! under `mpirun`).

#![allow(dead_code)]

use convexformer::comm::{shard_range, Communicator};
use convexformer::data::synthetic::{generate, SyntheticSpec, TargetKind};
use convexformer::data::Dataset;
use convexformer::loss::Loss;
use convexformer::operator::{GateKind, GateSpec, Gates, LinearOperator, Sharded, TokenOperator};
use convexformer::penalty::Penalty;
use convexformer::problem::Problem;
use convexformer::sequence::operator::SequenceOperator;
use convexformer::sequence::{generate_sequence, SequenceSyntheticSpec};
use convexformer::solver::{beta_max, solve, SolverKind, SolverOptions};

/// One program on one data set.
pub struct Case {
    pub name: &'static str,
    pub data: Dataset<'static>,
    pub loss: Loss,
    pub penalty: Penalty,
    pub intercept: bool,
    pub gates: Option<Gates>,
    pub sequence: bool,
    pub beta_frac: f64,
}

/// What the agreement compares.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub beta_max: f64,
    pub objective: f64,
    pub gap: f64,
    pub relative_gap: f64,
    pub active: Vec<usize>,
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
    pub iterations: usize,
    pub data_passes: f64,
}

fn token_data(n: usize, c: usize, kind: TargetKind, seed: u64) -> Dataset<'static> {
    generate(&SyntheticSpec {
        n_samples: n,
        n_tokens: 6,
        n_features: 3,
        n_outputs: c,
        active: 2,
        kind,
        seed,
        rho: 0.5,
        decay: 0.5,
        ..Default::default()
    })
    .unwrap()
    .0
}

/// Scalar, vector-ℓ₁, vector-ℓ₂, gated and sequence programs; squared,
/// logistic and cross-entropy losses; with and without an intercept. The
/// sample counts are not multiples of 2, 3 or 4: the shards differ in size.
pub fn cases() -> Vec<Case> {
    let token = |name, data, loss, penalty, intercept| Case {
        name,
        data,
        loss,
        penalty,
        intercept,
        gates: None,
        sequence: false,
        beta_frac: 0.1,
    };
    let gated_data = token_data(97, 1, TargetKind::Real, 4);
    let gates = Gates::draw(
        GateSpec {
            n_gates: 3,
            kind: GateKind::Gaussian,
            tokenwise: false,
            seed: 2,
        },
        &gated_data,
    )
    .unwrap();
    let seq = generate_sequence(&SequenceSyntheticSpec {
        n_samples: 61,
        n_tokens: 4,
        n_features: 3,
        ..Default::default()
    })
    .unwrap()
    .0;
    vec![
        token(
            "scalar squared intercept",
            token_data(103, 1, TargetKind::Real, 1),
            Loss::Squared,
            Penalty::GroupL2,
            true,
        ),
        token(
            "scalar logistic intercept",
            token_data(101, 1, TargetKind::Binary, 2),
            Loss::Logistic,
            Penalty::GroupL2,
            true,
        ),
        token(
            "vector-l1 squared",
            token_data(89, 3, TargetKind::Real, 3),
            Loss::Squared,
            Penalty::GroupL2,
            false,
        ),
        token(
            "vector-l1 cross-entropy intercept",
            token_data(107, 3, TargetKind::Classes, 5),
            Loss::CrossEntropy,
            Penalty::GroupL2,
            true,
        ),
        token(
            "vector-l2 squared intercept",
            token_data(91, 2, TargetKind::Real, 6),
            Loss::Squared,
            Penalty::Nuclear,
            true,
        ),
        Case {
            gates: Some(gates),
            ..token(
                "gated squared intercept",
                gated_data,
                Loss::Squared,
                Penalty::GroupL2,
                true,
            )
        },
        Case {
            name: "sequence squared",
            data: seq.clone(),
            loss: Loss::Squared,
            penalty: Penalty::RowSumCone { n: seq.n_tokens },
            intercept: false,
            gates: None,
            sequence: true,
            beta_frac: 0.2,
        },
    ]
}

/// The solvers each case runs with.
pub fn solvers(case: &Case) -> Vec<SolverKind> {
    if case.sequence {
        vec![SolverKind::Auto, SolverKind::Fista]
    } else {
        vec![
            SolverKind::Auto,
            SolverKind::Fista,
            SolverKind::ProxNewton,
            SolverKind::Cd,
        ]
    }
}

fn options(solver: SolverKind, tol: f64) -> SolverOptions {
    SolverOptions {
        tol,
        solver,
        ..Default::default()
    }
}

fn outcome<O: LinearOperator>(
    problem: &mut Problem<'_, O>,
    frac: f64,
    solver: SolverKind,
    tol: f64,
) -> Outcome {
    let bmax = beta_max(problem);
    problem.beta = frac * bmax;
    let sol = solve(problem, &options(solver, tol), None).unwrap();
    Outcome {
        beta_max: bmax,
        objective: sol.certificate.primal,
        gap: sol.certificate.gap,
        relative_gap: sol.certificate.relative_gap,
        active: sol.active_blocks(problem.block_len()),
        coef: sol.coef,
        intercept: sol.intercept,
        iterations: sol.iterations,
        data_passes: sol.data_passes,
    }
}

/// The case solved to relative gap 1e-10 on this shard's rows of the data,
/// summing across `comm`. `comm` = None: the one-process solve on all rows.
pub fn run(case: &Case, solver: SolverKind, comm: Option<&dyn Communicator>) -> Outcome {
    run_to(case, solver, comm, 1e-10)
}

/// [`run`] to relative gap `tol`.
pub fn run_to(
    case: &Case,
    solver: SolverKind,
    comm: Option<&dyn Communicator>,
    tol: f64,
) -> Outcome {
    let data = match comm {
        Some(comm) => {
            let r = shard_range(case.data.n_samples, comm.rank(), comm.size());
            case.data.select(&r.collect::<Vec<_>>())
        }
        None => case.data.clone(),
    };
    let masks = case.gates.as_ref().map(|g| g.masks(&data).unwrap());
    if case.sequence {
        on_shard(SequenceOperator::new(&data), &data, case, solver, comm, tol)
    } else {
        on_shard(
            TokenOperator::new(&data, masks.as_ref()),
            &data,
            case,
            solver,
            comm,
            tol,
        )
    }
}

/// The case's program on `op` (behind [`Sharded`] when `comm` is given).
fn on_shard<O: LinearOperator>(
    op: O,
    data: &Dataset,
    case: &Case,
    solver: SolverKind,
    comm: Option<&dyn Communicator>,
    tol: f64,
) -> Outcome {
    match comm {
        Some(comm) => on_all(Sharded::new(op, comm), data, case, solver, tol),
        None => on_all(op, data, case, solver, tol),
    }
}

fn on_all<O: LinearOperator>(
    op: O,
    data: &Dataset,
    case: &Case,
    solver: SolverKind,
    tol: f64,
) -> Outcome {
    let mut p =
        Problem::with_operator(op, &data.y, case.loss, case.penalty, 1.0, case.intercept).unwrap();
    outcome(&mut p, case.beta_frac, solver, tol)
}

/// Differences between a sharded outcome and the one-process one that
/// exceed the agreement the issue asks for (1e-10 relative); empty if none.
pub fn disagreements(one: &Outcome, sharded: &Outcome) -> Vec<String> {
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(b.abs()).max(1e-300);
    let mut out = Vec::new();
    if rel(one.beta_max, sharded.beta_max) > 1e-12 {
        out.push(format!("beta_max {} vs {}", one.beta_max, sharded.beta_max));
    }
    if rel(one.objective, sharded.objective) > 1e-10 {
        out.push(format!(
            "objective {} vs {}",
            one.objective, sharded.objective
        ));
    }
    if sharded.relative_gap > 1e-10 || one.relative_gap > 1e-10 {
        out.push(format!(
            "not certified: relative gaps {} and {}",
            one.relative_gap, sharded.relative_gap
        ));
    }
    if one.active != sharded.active {
        out.push(format!(
            "active blocks {:?} vs {:?}",
            one.active, sharded.active
        ));
    }
    out
}
