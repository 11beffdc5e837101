//! Student (b): convex attention, SPEC §4b (vector outputs; the paper's ℓ₁
//! output norm, or our nuclear-norm ℓ₂ variant) for each chosen output position r: ŷ_r = Σ_k Z_kᵀ x_k + b over the
//! (projected) tokens of the sentence, squared loss, solved along a
//! warm-started β path by the core solver, each point certified by its
//! duality gap. β is chosen on the validation sentences.

use super::features::{column_mean, squared_errors};
use crate::comm::SingleProcess;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::operator::LinearOperator;
use crate::operator::TokenOperator;
use crate::penalty::BlockPenalty;
use crate::problem::{Problem, Program};
use crate::solver::{beta_grid, beta_max, solve_path, PathStart, Solution, SolverOptions};

/// The largest convex program we build: coefficients and the solver's
/// working copies (about 6 vectors of n·k·D) and the token-major copy of X.
const MAX_BYTES: u64 = 8 << 30;

/// One point of a position's path.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConvexPoint {
    pub beta: f64,
    pub beta_ratio: f64,
    /// Solver seconds up to and including this β (the path's warm starts).
    pub seconds: f64,
    pub relative_gap: f64,
    pub certified: bool,
    pub data_passes: f64,
    /// Σ‖ŷ − y‖², Σ‖y − ȳ‖² on train, validation, test.
    pub sse: [(f64, f64); 3],
    /// Tokens with a nonzero coefficient.
    pub active_tokens: Vec<usize>,
    /// Σ_l ‖Z_{l,k}‖₂ per token k: how much output position r reads token k.
    pub token_weight: Vec<f64>,
}

impl ConvexPoint {
    /// Relative error on train (0), validation (1) or test (2).
    pub fn error(&self, set: usize) -> f64 {
        self.sse[set].0 / self.sse[set].1
    }
}

/// The path of one output position.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConvexStudent {
    pub position: usize,
    pub samples: [usize; 3],
    pub beta_max: f64,
    pub points: Vec<ConvexPoint>,
    /// Index of the point with the lowest validation error.
    pub chosen: usize,
}

/// Refuses programs that would not fit, naming the size and the fix.
pub fn check_size(n: usize, k: usize, d: usize, n_train: usize) -> Result<()> {
    let coef = (n * k * d) as u64 * 8 * 6;
    let data = (n_train * n * k) as u64 * 8 * 2;
    if coef + data > MAX_BYTES {
        return Err(Error::TooLarge(format!(
            "the §4b program of one position needs about {:.1} GiB (n={n} tokens × k={k} projected features × D={d} outputs coefficients, {n_train} sentences); lower --proj-dim or --max-tokens",
            (coef + data) as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

/// Σ‖ŷ − y‖² and Σ‖y − ȳ‖² of a solution on a data set.
fn sse(sol: &Solution, op: &TokenOperator, data: &Dataset, mean: &[f64]) -> (f64, f64) {
    squared_errors(&op.predict(&sol.coef, &sol.intercept), &data.y, mean)
}

/// Solves position `position`'s program on a path of `betas` values from
/// β_max down to `ratio`·β_max; `sets` = [train, validation, test].
pub fn fit_position(
    position: usize,
    program: Program,
    sets: [&Dataset; 3],
    betas: usize,
    ratio: f64,
    opts: &SolverOptions,
    mut on_point: impl FnMut(&ConvexPoint),
) -> Result<ConvexStudent> {
    let [train, val, test] = sets;
    let (n, k, d) = (train.n_tokens, train.n_features, train.n_outputs);
    check_size(n, k, d, train.n_samples)?;
    let mean = column_mean(&train.y, d);
    if !matches!(program, Program::VectorL1 | Program::VectorL2) {
        return Err(Error::Invalid(format!(
            "the convex student solves vector-l1 or vector-l2, not {}",
            program.name()
        )));
    }
    let mut problem = Problem::new(
        TokenOperator::new(train, None),
        Loss::Squared,
        program.penalty(),
        1.0,
        true,
    )?;
    let bmax = beta_max(&problem);
    let grid = beta_grid(bmax, ratio, betas)?;
    let (val_op, test_op) = (
        TokenOperator::new(val, None),
        TokenOperator::new(test, None),
    );
    let block = problem.block_len();
    let penalty = program.penalty();
    // The training loss Σ½‖ŷ − y‖² is the certified primal minus the
    // penalty: no second copy of the training data, no extra pass.
    let train_den = squared_errors(&train.y, &train.y, &mean).1;
    let mut points = Vec::with_capacity(grid.len());
    let mut seconds = 0.0;
    let start = PathStart::default();
    solve_path(
        &mut problem,
        &grid,
        opts,
        start,
        &SingleProcess,
        |_, _, sol| {
            seconds += sol.seconds;
            let pen: f64 = sol
                .coef
                .chunks_exact(block)
                .map(|z| penalty.value(z, d, k))
                .sum();
            let train_sse = 2.0 * (sol.certificate.primal - sol.beta * pen);
            let token_weight: Vec<f64> = sol
                .coef
                .chunks_exact(block)
                .map(|z| {
                    z.chunks_exact(k)
                        .map(|row| row.iter().map(|v| v * v).sum::<f64>().sqrt())
                        .sum()
                })
                .collect();
            let p = ConvexPoint {
                beta: sol.beta,
                beta_ratio: sol.beta / bmax,
                seconds,
                relative_gap: sol.certificate.relative_gap,
                certified: sol.certificate.relative_gap <= opts.tol,
                data_passes: sol.data_passes,
                sse: [
                    (train_sse.max(0.0), train_den),
                    sse(&sol, &val_op, val, &mean),
                    sse(&sol, &test_op, test, &mean),
                ],
                active_tokens: sol.active_blocks(block),
                token_weight,
            };
            on_point(&p);
            points.push(p);
            Ok::<(), Error>(())
        },
    )?;
    let chosen = (0..points.len())
        .min_by(|&a, &b| points[a].error(1).total_cmp(&points[b].error(1)))
        .unwrap_or(0);
    Ok(ConvexStudent {
        position,
        samples: [train.n_samples, val.n_samples, test.n_samples],
        beta_max: bmax,
        points,
        chosen,
    })
}
