//! The sequence-output program of SPEC §4c (Appendix A.7, eq. 33, corrected),
//! certified by a duality gap, with head recovery.
//!
//! # Model and program
//!
//! Sample i: X_i ∈ R^{n×d}, targets Y_i ∈ R^{n×c} (real) or one class label
//! per position (cross-entropy over c classes per position). The loss of a
//! sample is Σ_r L(F(X_i)[r, :], Y_i[r, :]). For each (feature q, output l)
//! an n×n matrix C_{ql}, and F(X)[r, l] = Σ_{q,k} C_{ql}[r, k] X[k, q]:
//!
//! ```text
//! C_m = min Σ_i L(F(X_i), Y_i) + β Σ_{q,l} ‖C_{ql}‖_{∞,1}
//!       subject to: every C_{ql} has equal row sums,    ‖C‖_{∞,1} = max_r Σ_k |C[r,k]|
//! ```
//!
//! It equals the nonconvex sequence model of eq. (30), F(X) = Σ_j o_j W_j X V_j
//! with penalty β/2 Σ_j (‖V_j‖₁² + o_j²), through the two maps of
//! [`recovery`]. Without the equal-row-sum constraint (the printed eq. 33) the
//! program is a strict relaxation: the tests exhibit an instance where its
//! optimum is strictly smaller.
//!
//! # The split form the solver uses (exact)
//!
//! Let K = {C ∈ R^{n×n} : C ≥ 0, all row sums equal}. On K the common row sum
//! is t(C) = (1/n)·1ᵀC1, a linear function. Then
//!
//! ```text
//! C_m = min over C⁺_{ql}, C⁻_{ql} ∈ K of Σ_i L(F_i(C⁺ − C⁻)) + (β/n) Σ_{q,l,±} 1ᵀC±_{ql}1.
//! ```
//!
//! Proof. (≥) A pair in K with row sums t± gives C = C⁺ − C⁻ whose rows all
//! sum to t⁺ − t⁻ (equal row sums) and Σ_k |C[r, k]| ≤ Σ_k (C⁺ + C⁻)[r, k] =
//! t⁺ + t⁻ for every row, so ‖C‖_{∞,1} ≤ t⁺ + t⁻ = (1/n) 1ᵀ(C⁺ + C⁻)1: the
//! pair's objective is at least the objective of a feasible C. (≤) For
//! feasible C with common row sum s and m = ‖C‖_{∞,1}, the split of SPEC
//! §4c (ii) (positive and negative parts plus half the row slack
//! (m − Σ_k |C[r, k]|)/2 on one entry of each row, in both) gives C± ∈ K with
//! row sums t± = (m ± s)/2, so t⁺ + t⁻ = m: the same objective. ∎
//! ([`recovery::split_matrix`]; the tests check both directions numerically.)
//!
//! The split form is smooth + linear + ι_K, so FISTA applies with the prox
//! C± ← Π_K(V − step·β/n), an exact O(n² log n) projection per matrix
//! ([`projection`]).
//!
//! # Certificate
//!
//! For min f(𝒜x) + ⟨w, x⟩ + ι_K(x) the Fenchel dual is max −f*(−θ) subject to
//! w − 𝒜ᵀθ ∈ K* (because (⟨w, ·⟩ + ι_K)*(s) = ι{w − s ∈ K*}). K is generated
//! by the matrices with one-hot rows, so S ∈ K* ⟺ Σ_r min_k S[r, k] ≥ 0.
//! With w = (β/n)·11ᵀ for C⁺ and the operator −𝒜 for C⁻, and G_{ql} the
//! correlation (𝒜ᵀθ)_{ql}[r, k] = Σ_i θ_i[r, l] X_i[k, q], the dual is
//!
//! ```text
//! D(θ) = −Σ_{i,r} L*(−θ_{i,r})  s.t.  Σ_r max_k G_{ql}[r, k] ≤ β  and  Σ_r max_k (−G_{ql}[r, k]) ≤ β  for all (q, l).
//! ```
//!
//! (max(Σ_r max_k G, Σ_r max_k (−G)) is the dual of ‖·‖_{∞,1} restricted to
//! the equal-row-sum subspace, SPEC §5.) The solver takes θ = −∇L at its
//! iterate, scaled by min(1, β / the largest constraint value), and reports
//! gap = P − D with P the objective at C = C⁺ − C⁻. β_max is the largest
//! constraint value at θ⁰ = −∇L(0) ([`sequence_beta_max`]): for β ≥ β_max,
//! C = 0 is optimal.
//!
//! # Size
//!
//! The pair has 2·n²·d·c parameters: right for short sequences (algorithmic
//! tasks). [`solve_sequence`] refuses, before allocating, a problem whose
//! buffers exceed [`MAX_SEQUENCE_BYTES`]; for long sequences use the vector
//! program (SPEC §4b, `--model vector-l1`) per output row
//! ([`Dataset::position_dataset`] gives that data set).

#[cfg(feature = "plot")]
pub mod figures;
pub mod operator;
mod path;
/// The exact projection onto the cone of the split form (now a regularizer's).
pub use crate::penalty::cone_projection as projection;
pub mod recovery;
mod shards;
pub mod synthetic;

#[cfg(feature = "plot")]
pub use figures::plot_mixing_matrices;
pub use path::sequence_path;
pub use recovery::{
    recover_sequence_heads, sequence_heads_to_coef, sequence_nonconvex_objective,
    sequence_objective, SequenceHead,
};
pub use shards::SequenceShard;
pub use synthetic::{generate_sequence, parse_sequence_synthetic, SequenceSyntheticSpec};

use std::time::Instant;

use crate::data::{Dataset, Targets};
use crate::error::{invalid, Error, Result};
use crate::loss::Loss;
use crate::operator::LinearOperator;
use crate::penalty::Penalty;
use crate::problem::Problem;
use crate::report::CertifiedSolve;
use crate::solver::certificate::certificate_at;
use crate::solver::{Certificate, SolverOptions, StopReason};
use recovery::{equalize_rows, split_coef};

/// Largest memory, in bytes, the solver's coefficient buffers may take.
pub const MAX_SEQUENCE_BYTES: u64 = 2 << 30;

/// Coefficient-sized (n²·d·c) buffers the solver keeps: the pair (C⁺, C⁻)
/// three times (iterate, previous iterate, extrapolated point) and three
/// work matrices (C in product layout, the gradient in both layouts).
pub const SEQUENCE_BUFFERS: u64 = 16;

/// The bytes the solver's coefficient buffers need for n tokens, d features
/// and c outputs: n²·d·c·8·[`SEQUENCE_BUFFERS`] (None on overflow).
pub fn sequence_bytes(n: usize, d: usize, c: usize) -> Option<u64> {
    (n as u64)
        .checked_mul(n as u64)?
        .checked_mul(d as u64)?
        .checked_mul(c as u64)?
        .checked_mul(8 * SEQUENCE_BUFFERS)
}

/// `Error::TooLarge` when the program for (n, d, c) would not fit.
pub fn check_sequence_size(n: usize, d: usize, c: usize) -> Result<()> {
    match sequence_bytes(n, d, c) {
        Some(b) if b <= MAX_SEQUENCE_BYTES => Ok(()),
        b => Err(Error::TooLarge(format!(
            "the sequence program with n = {n} tokens, d = {d} features and c = {c} outputs has \
             2·n²·d·c = {} parameters and needs {} bytes of solver buffers, above the limit of \
             {MAX_SEQUENCE_BYTES} bytes: use the vector program (--model vector-l1) per output \
             row for long sequences",
            [n, n, d, c]
                .iter()
                .try_fold(2u128, |acc, &v| acc.checked_mul(v as u128))
                .map_or("more than 2^128".to_string(), |p| p.to_string()),
            b.map_or("more than 2^64".to_string(), |b| b.to_string()),
        ))),
    }
}

/// A solution of the sequence program, with its certificate, costs and heads.
#[derive(Clone, Debug)]
pub struct SequenceSolution {
    /// C_{ql}, d·c matrices n×n: C_{ql}[r, k] at ((q·c + l)·n + r)·n + k
    /// ([`operator::matrix_index`]). Every matrix has equal row sums.
    pub coef: Vec<f64>,
    pub n_tokens: usize,
    pub n_features: usize,
    pub n_outputs: usize,
    pub beta: f64,
    /// Primal P(C), dual D(θ), gap and relative gap at `coef`.
    pub certificate: Certificate,
    pub iterations: usize,
    /// Matrix products over all of the data (forward or adjoint), SPEC §5.
    pub data_passes: f64,
    pub seconds: f64,
    pub stop: StopReason,
    /// (q, l) blocks removed by gap-safe screening when the solve ended.
    pub screened: usize,
    /// Heads recovered from `coef` (SPEC §4c (ii)).
    pub heads: Vec<SequenceHead>,
    /// The nonconvex objective of eq. (30) evaluated on `heads`.
    pub nonconvex_objective: f64,
}

impl SequenceSolution {
    pub fn converged(&self) -> bool {
        self.stop == StopReason::Converged
    }

    /// The n×n matrix C_{ql}, row-major.
    pub fn matrix(&self, q: usize, l: usize) -> &[f64] {
        let nn = self.n_tokens * self.n_tokens;
        let b = q * self.n_outputs + l;
        &self.coef[b * nn..(b + 1) * nn]
    }

    /// The (q, l) whose matrix is not zero.
    pub fn active_matrices(&self) -> Vec<(usize, usize)> {
        let nn = self.n_tokens * self.n_tokens;
        self.coef
            .chunks_exact(nn)
            .enumerate()
            .filter(|(_, m)| m.iter().any(|&v| v != 0.0))
            .map(|(b, _)| (b / self.n_outputs, b % self.n_outputs))
            .collect()
    }

    /// Predictions (N×n×c) on `data`.
    pub fn predict(&self, data: &Dataset) -> Result<Vec<f64>> {
        let (_, n, d, c) = data.shape();
        if (n, d, c) != (self.n_tokens, self.n_features, self.n_outputs) {
            return invalid(format!(
                "the model has n = {}, d = {}, c = {} but the data have n = {n}, d = {d}, c = {c}",
                self.n_tokens, self.n_features, self.n_outputs
            ));
        }
        Ok(recovery::coef_predictions(&self.coef, data))
    }
}

fn check_inputs(data: &Dataset, loss: Loss, beta: f64) -> Result<()> {
    data.validate()?;
    if data.targets != Targets::PerPosition {
        return invalid(
            "the sequence program needs a target row per position (y of shape N×n×c, or N×n \
             labels), the data set has one per sample",
        );
    }
    loss.check_targets(data)?;
    if !(beta > 0.0 && beta.is_finite()) {
        return invalid(format!("beta must be a positive number, got {beta}"));
    }
    let (_, n, d, c) = data.shape();
    check_sequence_size(n, d, c)
}

/// The sequence program at β as one instance of the generic convex program:
/// the [`operator::SequenceOperator`] with the split-form regularizer
/// [`crate::penalty::RowSumCone`], the loss per (sample, position).
pub fn sequence_problem<'a>(
    data: &'a Dataset<'_>,
    loss: Loss,
    beta: f64,
) -> Result<Problem<'a, operator::SequenceOperator<'a>>> {
    check_inputs(data, loss, beta)?;
    Problem::with_operator(
        operator::SequenceOperator::new(data),
        &data.y,
        loss,
        Penalty::RowSumCone { n: data.n_tokens },
        beta,
        false,
    )
}

/// β_max = max_{ql} max(Σ_r max_k G⁰_{ql}, Σ_r max_k (−G⁰_{ql})) with
/// G⁰ = 𝒜ᵀθ⁰, θ⁰ = −∇L(0): the smallest β at which C = 0 is optimal.
pub fn sequence_beta_max(data: &Dataset, loss: Loss) -> Result<f64> {
    Ok(crate::solver::beta_max(&sequence_problem(data, loss, 1.0)?))
}

/// Solves the sequence program at `beta` to relative gap `opts.tol` with the
/// generic solver (working sets, gap-safe screening, FISTA with restart on
/// the split form), recovers the heads and evaluates them in the nonconvex
/// objective.
pub fn solve_sequence(
    data: &Dataset,
    loss: Loss,
    beta: f64,
    opts: &SolverOptions,
) -> Result<SequenceSolution> {
    solve_sequence_from(data, loss, beta, opts, None)
}

/// As [`solve_sequence`], started from `init` (matrix-major coefficients
/// with equal row sums, e.g. the solution at a nearby β): along a path the
/// previous solution is close, so far fewer iterations are needed.
pub fn solve_sequence_from(
    data: &Dataset,
    loss: Loss,
    beta: f64,
    opts: &SolverOptions,
    init: Option<&[f64]>,
) -> Result<SequenceSolution> {
    opts.validate()?;
    let problem = sequence_problem(data, loss, beta)?;
    solve_problem(&problem, data, opts, init, &|_| {})
}

/// The solve of [`solve_sequence_from`] on `problem`, whose operator holds
/// `data`'s rows (all of them, or one shard's: `sum` adds sums over rows
/// across the shards).
fn solve_problem<O: LinearOperator>(
    problem: &Problem<'_, O>,
    data: &Dataset,
    opts: &SolverOptions,
    init: Option<&[f64]>,
    sum: &dyn Fn(&mut [f64]),
) -> Result<SequenceSolution> {
    let warm = split_start(init, data)?;
    let start = warm.as_ref().map(|(c, b)| (&c[..], &b[..]));
    let sol = crate::solver::solve(problem, opts, start)?;
    finish(problem, data, sol, sum)
}

/// The solver's starting point (split-form coefficients, zero intercepts)
/// from matrix-major coefficients `init` with equal row sums.
fn split_start(init: Option<&[f64]>, data: &Dataset) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
    let (_, n, d, c) = data.shape();
    match init {
        Some(coef) if coef.len() != n * n * d * c => invalid(format!(
            "the starting point has {} coefficients, the program with n = {n}, d = {d}, \
             c = {c} has n²·d·c = {}",
            coef.len(),
            n * n * d * c
        )),
        Some(coef) => Ok(Some((split_coef(coef, n)?, vec![0.0; c]))),
        None => Ok(None),
    }
}

/// The sequence solution from the generic solver's `sol` on `problem`:
/// C = C⁺ − C⁻ with its row sums made equal, certified at its best split
/// (whose split objective is the convex objective at C), its heads
/// recovered and evaluated in the nonconvex objective.
fn finish<O: LinearOperator>(
    problem: &Problem<'_, O>,
    data: &Dataset,
    sol: crate::solver::Solution,
    sum: &dyn Fn(&mut [f64]),
) -> Result<SequenceSolution> {
    let (_, n, d, c) = data.shape();
    let start = Instant::now();
    let mut coef = merge_split(&sol.coef, n);
    equalize_rows(&mut coef, n);
    let certificate = certificate_at(problem, &split_coef(&coef, n)?, &vec![0.0; c]);
    let heads = recover_sequence_heads(&coef, n, d, c)?;
    // The solve's time: certified and recovered, before the nonconvex check.
    let seconds = sol.seconds + start.elapsed().as_secs_f64();
    let nonconvex_objective =
        recovery::nonconvex_on_shard(&heads, data, problem.loss, problem.beta, sum);
    Ok(SequenceSolution {
        coef,
        n_tokens: n,
        n_features: d,
        n_outputs: c,
        beta: problem.beta,
        certificate,
        iterations: sol.iterations,
        data_passes: sol.data_passes
            + problem
                .op
                .pass_fraction(&(0..problem.op.n_blocks()).collect::<Vec<_>>()),
        seconds,
        stop: sol.stop,
        screened: sol.screened,
        heads,
        nonconvex_objective,
    })
}

/// C = C⁺ − C⁻ (matrix-major) from split-form blocks (C⁺_b, C⁻_b).
fn merge_split(split: &[f64], n: usize) -> Vec<f64> {
    let nn = n * n;
    split
        .chunks_exact(2 * nn)
        .flat_map(|b| b[..nn].iter().zip(&b[nn..]).map(|(p, m)| p - m))
        .collect()
}

crate::report::impl_solve_stats!(SequenceSolution);

impl SequenceSolution {
    /// The model file's contents (`model.safetensors`) for this solution.
    pub fn to_model(&self, loss: Loss) -> crate::model::SequenceModel {
        use crate::model::{SequenceModel, SequenceModelHeader, SEQUENCE_PROGRAM};
        SequenceModel {
            header: SequenceModelHeader {
                format: 1,
                program: SEQUENCE_PROGRAM.to_string(),
                loss,
                beta: self.beta,
                n_tokens: self.n_tokens,
                n_features: self.n_features,
                n_outputs: self.n_outputs,
                n_heads: self.heads.len(),
            },
            coef: self.coef.clone(),
        }
    }
}

/// What a sequence solve reports (report.json for `fit --model sequence`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SequenceReport {
    /// Always "sequence".
    pub model: String,
    pub loss: String,
    pub n_samples: usize,
    pub n_tokens: usize,
    pub n_features: usize,
    pub n_outputs: usize,
    #[serde(flatten)]
    pub solve: CertifiedSolve,
    /// The nonconvex objective (eq. 30) of the recovered heads.
    pub nonconvex_objective: f64,
    /// |nonconvex − objective| / max(1, |objective|).
    pub recovery_relative_difference: f64,
    /// The (q, l) with a nonzero matrix C_{ql}.
    pub active_matrices: Vec<(usize, usize)>,
    pub n_heads: usize,
    pub heads: Vec<SequenceHead>,
    /// Per position: mean squared error (real targets) or misclassification rate.
    pub train_error: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_error: Option<f64>,
}

impl SequenceReport {
    pub fn new(
        data: &Dataset,
        loss: Loss,
        sol: &SequenceSolution,
        beta_max: f64,
        val: Option<&Dataset>,
    ) -> Result<SequenceReport> {
        Self::of_shard(data, loss, sol, beta_max, val, &crate::comm::SingleProcess)
    }

    /// The report of a data-parallel solve, `data` being this shard's
    /// samples: the training error and sample count are summed across
    /// `comm` (every shard gets the report of all samples). `val` is held
    /// whole by every shard.
    pub fn of_shard(
        data: &Dataset,
        loss: Loss,
        sol: &SequenceSolution,
        beta_max: f64,
        val: Option<&Dataset>,
        comm: &dyn crate::comm::Communicator,
    ) -> Result<SequenceReport> {
        let train_yhat = sol.predict(data)?;
        let validation_error = match val {
            Some(v) => Some(sequence_error(loss, v, &sol.predict(v)?)),
            None => None,
        };
        let mut sums = [
            sequence_error_sum(loss, data, &train_yhat),
            data.n_samples as f64,
        ];
        comm.sum(&mut sums);
        let solve = CertifiedSolve::of(sol, beta_max);
        Ok(SequenceReport {
            model: "sequence".into(),
            loss: loss.name(),
            n_samples: sums[1] as usize,
            n_tokens: data.n_tokens,
            n_features: data.n_features,
            n_outputs: data.n_outputs,
            recovery_relative_difference: solve.recovery_difference(sol.nonconvex_objective),
            solve,
            nonconvex_objective: sol.nonconvex_objective,
            active_matrices: sol.active_matrices(),
            n_heads: sol.heads.len(),
            heads: sol.heads.clone(),
            train_error: sums[0] / (sums[1] * data.n_tokens as f64),
            validation_error,
        })
    }
}

/// Per position: mean of Σ_l (ŷ − y)² (regression losses), or the
/// misclassification rate (sign for logistic, argmax for cross-entropy).
pub fn sequence_error(loss: Loss, data: &Dataset, yhat: &[f64]) -> f64 {
    sequence_error_sum(loss, data, yhat) / (data.n_samples * data.n_tokens) as f64
}

/// [`sequence_error`] times the number of positions: Σ_l (ŷ − y)² summed,
/// or the mistakes counted.
fn sequence_error_sum(loss: Loss, data: &Dataset, yhat: &[f64]) -> f64 {
    let c = data.n_outputs;
    let pairs = yhat.chunks_exact(c).zip(data.y.chunks_exact(c));
    match loss {
        Loss::Logistic => pairs
            .filter(|(p, y)| (if p[0] >= 0.0 { 1.0 } else { -1.0 }) != y[0])
            .count() as f64,
        Loss::CrossEntropy => pairs
            .filter(|(p, y)| crate::report::argmax(p) != crate::report::argmax(y))
            .count() as f64,
        Loss::Squared | Loss::Huber(_) => pairs
            .map(|(p, y)| p.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
            .sum(),
    }
}

#[cfg(test)]
mod tests;
