//! What a solve reports (report.json), and error metrics.

use crate::data::Dataset;
use crate::loss::Loss;
use crate::operator::GateMasks;
use crate::operator::LinearOperator;
use crate::penalty::Penalty;
use crate::problem::Problem;
use crate::recovery::{nonconvex_loss, nonconvex_penalty, recover_heads, Head};
use crate::solver::{Certificate, Solution, StopReason};

/// What every certified solve reports, whatever the program: β, the
/// certificate, why it stopped and what it cost. Flattened into each
/// program's report, so the JSON keys stay at the top level.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CertifiedSolve {
    pub beta: f64,
    pub beta_max: f64,
    pub objective: f64,
    pub dual_objective: f64,
    pub duality_gap: f64,
    pub relative_gap: f64,
    pub converged: bool,
    pub stop_reason: StopReason,
    pub iterations: usize,
    pub data_passes: f64,
    pub seconds: f64,
    /// Blocks removed by gap-safe screening when the solve ended.
    pub screened_blocks: usize,
}

/// What a solution of any program knows about its solve.
pub trait SolveStats {
    fn beta(&self) -> f64;
    fn certificate(&self) -> &Certificate;
    fn stop(&self) -> StopReason;
    fn iterations(&self) -> usize;
    fn data_passes(&self) -> f64;
    fn seconds(&self) -> f64;
    fn screened(&self) -> usize;
}

/// Implements [`SolveStats`] for a solution type with the fields `beta`,
/// `certificate`, `stop`, `iterations`, `data_passes`, `seconds`, `screened`.
macro_rules! impl_solve_stats {
    ($t:ty) => {
        impl $crate::report::SolveStats for $t {
            fn beta(&self) -> f64 {
                self.beta
            }
            fn certificate(&self) -> &$crate::solver::Certificate {
                &self.certificate
            }
            fn stop(&self) -> $crate::solver::StopReason {
                self.stop
            }
            fn iterations(&self) -> usize {
                self.iterations
            }
            fn data_passes(&self) -> f64 {
                self.data_passes
            }
            fn seconds(&self) -> f64 {
                self.seconds
            }
            fn screened(&self) -> usize {
                self.screened
            }
        }
    };
}
pub(crate) use impl_solve_stats;

impl_solve_stats!(Solution);

impl CertifiedSolve {
    /// From a solution's certificate and costs.
    pub fn of(sol: &impl SolveStats, beta_max: f64) -> Self {
        let c = sol.certificate();
        CertifiedSolve {
            beta: sol.beta(),
            beta_max,
            objective: c.primal,
            dual_objective: c.dual,
            duality_gap: c.gap,
            relative_gap: c.relative_gap,
            converged: sol.stop() == StopReason::Converged,
            stop_reason: sol.stop(),
            iterations: sol.iterations(),
            data_passes: sol.data_passes(),
            seconds: sol.seconds(),
            screened_blocks: sol.screened(),
        }
    }

    /// The CSV columns every path table starts with (see [`Self::csv_fields`]).
    pub const CSV_HEADER: &'static str = "beta,beta_over_max,objective,dual_objective,duality_gap,relative_gap,converged,iterations,data_passes,seconds,stop_reason";

    /// The values of [`Self::CSV_HEADER`], comma-separated.
    pub fn csv_fields(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            self.beta,
            self.beta / self.beta_max,
            self.objective,
            self.dual_objective,
            self.duality_gap,
            self.relative_gap,
            self.converged,
            self.iterations,
            self.data_passes,
            self.seconds,
            self.stop_reason.name()
        )
    }

    /// |nonconvex − objective| / max(1, |objective|), the recovery check.
    pub fn recovery_difference(&self, nonconvex: f64) -> f64 {
        (nonconvex - self.objective).abs() / self.objective.abs().max(1.0)
    }
}

/// The report of a token program (SPEC §4a, b, d): the certified solve,
/// the tokens it uses, the recovered heads and the errors.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SolveReport {
    #[serde(flatten)]
    pub solve: CertifiedSolve,
    /// Blocks (tokens) with a nonzero coefficient.
    pub active_tokens: Vec<usize>,
    /// For the ℓ₁ vector program: the active tokens of each output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_tokens_per_output: Option<Vec<Vec<usize>>>,
    /// For the gated model: the active (gate, token) pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_gate_tokens: Option<Vec<(usize, usize)>>,
    /// The nonconvex objective (SPEC §3) of the recovered heads.
    pub nonconvex_objective: f64,
    /// |nonconvex − objective| / max(1, |objective|): must be ≤ 1e-9.
    pub recovery_relative_difference: f64,
    pub n_heads: usize,
    pub heads: Vec<Head>,
    pub intercept: Vec<f64>,
    /// Mean squared error (real targets) or misclassification rate.
    pub train_error: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_error: Option<f64>,
}

impl SolveReport {
    /// Builds the report: recovers the heads and evaluates them in the
    /// nonconvex objective; `val` adds the held-out error.
    pub fn new(
        problem: &Problem,
        sol: &Solution,
        beta_max: f64,
        val: Option<&Dataset>,
    ) -> SolveReport {
        Self::with_gated_val(problem, sol, beta_max, val, None)
    }

    /// As [`SolveReport::new`], for a gated model whose validation data has
    /// the gate indicators `val_gates`.
    pub fn with_gated_val(
        problem: &Problem,
        sol: &Solution,
        beta_max: f64,
        val: Option<&Dataset>,
        val_gates: Option<&GateMasks>,
    ) -> SolveReport {
        let program = TokenProgram {
            op: &problem.op,
            loss: problem.loss,
            penalty: problem.penalty,
            beta: problem.beta,
        };
        Self::of_shard(program, sol, beta_max, val, val_gates, &|_| {})
    }

    /// [`SolveReport::with_gated_val`] where `program.op` holds one shard of
    /// the samples of a data-parallel fit: `sum` adds a vector of sums over
    /// its rows across the shards (every shard gets the global report).
    pub fn of_shard(
        program: TokenProgram<'_>,
        sol: &Solution,
        beta_max: f64,
        val: Option<&Dataset>,
        val_gates: Option<&GateMasks>,
        sum: &dyn Fn(&mut [f64]),
    ) -> SolveReport {
        let TokenProgram {
            op,
            loss,
            penalty,
            beta,
        } = program;
        let data = op.data;
        let (n, c, d) = (data.n_tokens, data.n_outputs, data.n_features);
        let gated = op.gates.is_some();
        let heads = recover_heads(&sol.coef, penalty, n, c, d, gated);
        let train_yhat = op.predict(&sol.coef, &sol.intercept);
        // The data terms over all shards, in one sum.
        let mut sums = [
            nonconvex_loss(&heads, data, op.gates, &sol.intercept, loss),
            error_sum(loss, data, &train_yhat),
            data.n_samples as f64,
        ];
        sum(&mut sums);
        let nonconvex = sums[0] + nonconvex_penalty(&heads, beta, penalty.into());
        let active = sol.active_blocks(c * d);
        let active_gate_tokens = gated.then(|| active.iter().map(|&b| op.block_parts(b)).collect());
        let per_output = (penalty == Penalty::GroupL2 && c > 1).then(|| {
            (0..c)
                .map(|l| {
                    active
                        .iter()
                        .copied()
                        .filter(|&b| {
                            sol.coef[(b * c + l) * d..(b * c + l + 1) * d]
                                .iter()
                                .any(|&v| v != 0.0)
                        })
                        .collect()
                })
                .collect()
        });
        let solve = CertifiedSolve::of(sol, beta_max);
        SolveReport {
            active_tokens: if gated {
                let mut t: Vec<usize> = active.iter().map(|&b| b % n).collect();
                t.sort_unstable();
                t.dedup();
                t
            } else {
                active
            },
            active_gate_tokens,
            active_tokens_per_output: per_output,
            nonconvex_objective: nonconvex,
            recovery_relative_difference: solve.recovery_difference(nonconvex),
            n_heads: heads.len(),
            heads,
            intercept: sol.intercept.clone(),
            train_error: sums[1] / sums[2],
            validation_error: val.map(|v| {
                let op = crate::operator::TokenOperator::new(v, val_gates);
                error(loss, v, &op.predict(&sol.coef, &sol.intercept))
            }),
            solve,
        }
    }
}

/// The token program a report describes: its operator (on all samples, or
/// on one shard), loss, regularizer and β.
#[derive(Clone, Copy)]
pub struct TokenProgram<'a> {
    pub op: &'a crate::operator::TokenOperator<'a>,
    pub loss: Loss,
    pub penalty: Penalty,
    pub beta: f64,
}

/// Mean squared error per sample (½ not included) for regression losses;
/// misclassification rate for logistic (sign) and cross-entropy (argmax).
pub fn error(loss: Loss, data: &Dataset, yhat: &[f64]) -> f64 {
    error_sum(loss, data, yhat) / data.n_samples as f64
}

/// [`error`] times the number of samples: squared errors summed, or
/// mistakes counted (one shard's part, in a data-parallel fit).
pub fn error_sum(loss: Loss, data: &Dataset, yhat: &[f64]) -> f64 {
    let c = data.n_outputs;
    match loss {
        Loss::Logistic => yhat
            .iter()
            .zip(&data.y)
            .filter(|(p, y)| (if **p >= 0.0 { 1.0 } else { -1.0 }) != **y)
            .count() as f64,
        Loss::CrossEntropy => (0..data.n_samples)
            .filter(|&i| argmax(&yhat[i * c..(i + 1) * c]) != argmax(data.target(i)))
            .count() as f64,
        Loss::Squared | Loss::Huber(_) => yhat
            .iter()
            .zip(&data.y)
            .map(|(p, y)| (p - y) * (p - y))
            .sum::<f64>(),
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// For `#[serde(deserialize_with)]`: a number written as `null` (serde_json
/// writes NaN and ±∞ so) reads back as NaN.
pub fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}
