//! Model (c): the one-layer global convex model, SPEC §4d, solved to a
//! certified duality gap by the core solver.
//!
//! Each example is the 4×V matrix of its one-hot tokens (`x op y =`, V = p + 7),
//! the target its answer as one of p classes, the loss softmax cross-entropy:
//!
//! ```text
//! min_{Z, b} Σ_i CE(Σ_p D_p(X_i) ⟨X_i, Z_p⟩ + b, y_i) + β Σ_{p,k} ‖Z_{p,k}‖₂,    D_p(X) = 1[⟨X, G_p⟩ ≥ 0]
//! ```
//!
//! (`Program::Gated`: a group per (gate, token, class)). The gates G_p are
//! Gaussian and see all tokens, so D_p(X) = 1[g_p(x) + g'_p(y) + c_p ≥ 0]
//! couples the operands, which a sum of per-token terms cannot. Gates drawn
//! from training samples are useless here: ⟨X_i, X_s⟩ counts shared tokens, is
//! never negative, and every such gate is always on.
//!
//! It is trained along a warm-started β path from β_max (where Z = 0) down by
//! `beta_ratio` in `n_betas` geometric steps. Its x-axis in curves.csv:
//! **step k = the k-th β of the path** (k = 1..n_betas; step 0 is Z = 0 at
//! β_max), seconds = solver seconds so far. Every point carries its
//! certificate: the duality gap of that β's solve.

use crate::operator::LinearOperator;
use std::time::Instant;

use super::data::{one_hot_dataset, ModularTask};
use crate::comm::SingleProcess;
use crate::error::{invalid, Error, Result};
use crate::loss::Loss;
use crate::operator::{GateKind, GateSpec, Gates, TokenOperator};
use crate::problem::{mean_loss, Problem, Program};
use crate::solver::{
    beta_grid, beta_max, solve_path, Certificate, PathStart, SolverOptions, StopReason,
};

/// Options of the global convex model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GlobalConfig {
    /// P gates.
    pub gates: usize,
    pub gate_kind: GateKind,
    pub tokenwise: bool,
    /// Number of β on the path.
    pub n_betas: usize,
    /// Smallest β / β_max.
    pub beta_ratio: f64,
    /// Relative duality gap to reach at each β.
    pub tol: f64,
    /// Each solve's share of the path's seconds; a solve may also use what
    /// the earlier ones left ([`crate::solver::solve_path`]).
    pub max_seconds_per_beta: f64,
    pub max_iter: usize,
    /// Stops the path at the solve in progress (Ctrl-C).
    #[serde(skip)]
    pub interrupt: Option<crate::solver::Interrupt>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            gates: 8,
            gate_kind: GateKind::Gaussian,
            tokenwise: false,
            n_betas: 6,
            beta_ratio: 1e-2,
            tol: 1e-4,
            max_seconds_per_beta: 15.0,
            max_iter: 100_000,
            interrupt: None,
        }
    }
}

/// One β of the path.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct GlobalPoint {
    /// Position on the path (0: Z = 0 at β_max).
    pub step: usize,
    /// Solver seconds so far.
    pub seconds: f64,
    pub beta: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub certificate: Certificate,
    pub converged: bool,
    pub stop: Option<StopReason>,
    pub iterations: usize,
    pub data_passes: f64,
    /// Nonzero (gate, token) blocks.
    pub active_blocks: usize,
}

/// The path.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GlobalRun {
    pub beta_max: f64,
    pub n_blocks: usize,
    pub n_features: usize,
    pub points: Vec<GlobalPoint>,
    pub seconds: f64,
    /// Stopped by [`GlobalConfig::interrupt`]: the last point is the solve
    /// it stopped (with its certificate), and the path is shorter.
    pub interrupted: bool,
}

fn accuracy(yhat: &[f64], labels: &[usize], c: usize) -> f64 {
    let hits = yhat
        .chunks_exact(c)
        .zip(labels)
        .filter(|(row, &l)| crate::report::argmax(row) == l)
        .count();
    hits as f64 / labels.len() as f64
}

/// Solves the path for `task`, gates seeded with `seed`; `on_point` sees
/// each point as it is made.
pub fn run_global(
    task: &ModularTask,
    cfg: &GlobalConfig,
    seed: u64,
    mut on_point: impl FnMut(&GlobalPoint),
) -> Result<GlobalRun> {
    if cfg.n_betas == 0 {
        return invalid("the global model needs at least one beta");
    }
    let train = one_hot_dataset(&task.train, task.p)?;
    let val = one_hot_dataset(&task.val, task.p)?;
    let spec = GateSpec {
        n_gates: cfg.gates,
        kind: cfg.gate_kind,
        tokenwise: cfg.tokenwise,
        seed,
    };
    let gates = Gates::draw(spec, &train)?;
    let m_train = gates.masks(&train)?;
    let m_val = gates.masks(&val)?;
    let loss = Loss::CrossEntropy;
    crate::memory::check_token_program(
        &train,
        train.n_tokens * m_train.n_gates,
        loss,
        crate::solver::SolverKind::Auto,
    )?;
    let op = TokenOperator::new(&train, Some(&m_train));
    let n_blocks = op.n_blocks();
    let mut problem = Problem::new(op, loss, Program::Gated.penalty(), 1.0, false)?;
    let bmax = beta_max(&problem);
    let betas = beta_grid(bmax, cfg.beta_ratio, cfg.n_betas)?;
    let val_op = TokenOperator::new(&val, Some(&m_val));
    let c = task.p as usize;
    let train_labels = train.labels.clone().expect("class labels");
    let val_labels = val.labels.clone().expect("class labels");
    let opts = SolverOptions {
        tol: cfg.tol,
        max_iter: cfg.max_iter,
        max_seconds: cfg.max_seconds_per_beta,
        interrupt: cfg.interrupt.clone(),
        ..Default::default()
    };
    let start = Instant::now();
    let mut points = Vec::with_capacity(cfg.n_betas + 1);
    let mut eval = |step: usize,
                    secs: f64,
                    beta: f64,
                    coef: &[f64],
                    b: &[f64],
                    problem: &Problem,
                    extra: (Certificate, bool, Option<StopReason>, usize, f64)|
     -> GlobalPoint {
        let yt = problem.op.predict(coef, b);
        let yv = val_op.predict(coef, b);
        let cd = problem.block_len();
        let p = GlobalPoint {
            step,
            seconds: secs,
            beta,
            train_loss: mean_loss(loss, &train, &yt),
            train_acc: accuracy(&yt, &train_labels, c),
            val_loss: mean_loss(loss, &val, &yv),
            val_acc: accuracy(&yv, &val_labels, c),
            certificate: extra.0,
            converged: extra.1,
            stop: extra.2,
            iterations: extra.3,
            data_passes: extra.4,
            active_blocks: coef
                .chunks_exact(cd)
                .filter(|z| z.iter().any(|&v| v != 0.0))
                .count(),
        };
        on_point(&p);
        p
    };
    // Step 0: Z = 0, optimal at β_max (its gap is zero by definition of β_max).
    problem.beta = bmax;
    let zero = vec![0.0; n_blocks * problem.block_len()];
    let b0 = problem.intercept_at_zero();
    let p0 = problem.objective(&zero, &b0);
    points.push(eval(
        0,
        0.0,
        bmax,
        &zero,
        &b0,
        &problem,
        (Certificate::new(p0, p0), true, None, 0, 0.0),
    ));
    let mut solver_secs = 0.0;
    let interrupted = solve_path(
        &mut problem,
        &betas,
        &opts,
        PathStart::default(),
        &SingleProcess,
        |problem, _, sol| {
            solver_secs += sol.seconds;
            let step = points.len();
            points.push(eval(
                step,
                solver_secs,
                sol.beta,
                &sol.coef,
                &sol.intercept,
                problem,
                (
                    sol.certificate,
                    sol.converged(),
                    Some(sol.stop),
                    sol.iterations,
                    sol.data_passes,
                ),
            ));
            Ok::<(), Error>(())
        },
    )?;
    Ok(GlobalRun {
        beta_max: bmax,
        n_blocks,
        n_features: train.n_features,
        points,
        seconds: start.elapsed().as_secs_f64(),
        interrupted,
    })
}
