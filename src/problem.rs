//! A convex program: operator × loss × penalty × β (SPEC §4), and the names
//! under which users ask for them.

use crate::error::{invalid, Result};
use crate::loss::{Loss, SampleLoss};
use crate::operator::{LinearOperator, TokenOperator};
use crate::penalty::{BlockPenalty, Penalty};

/// The convex programs by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Program {
    /// SPEC §4a: one output, group lasso over tokens.
    Scalar,
    /// SPEC §4b with ℓ₁ output norm: a group per (output, token).
    VectorL1,
    /// SPEC §4b with ℓ₂ output norm: nuclear norm per token.
    VectorL2,
    /// SPEC §4d: attention + gated-ReLU neuron; a group per (gate, token, output).
    Gated,
}

impl Program {
    pub fn parse(s: &str) -> Result<Program> {
        match s {
            "scalar" => Ok(Program::Scalar),
            "vector-l1" => Ok(Program::VectorL1),
            "vector-l2" => Ok(Program::VectorL2),
            "gated" => Ok(Program::Gated),
            _ => invalid(format!(
                "unknown model '{s}': use scalar, vector-l1, vector-l2 or gated"
            )),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Program::Scalar => "scalar",
            Program::VectorL1 => "vector-l1",
            Program::VectorL2 => "vector-l2",
            Program::Gated => "gated",
        }
    }
    pub fn penalty(&self) -> Penalty {
        match self {
            Program::Scalar | Program::VectorL1 | Program::Gated => Penalty::GroupL2,
            Program::VectorL2 => Penalty::Nuclear,
        }
    }
    /// Checks that the data's outputs suit the program.
    pub fn check(&self, n_outputs: usize) -> Result<()> {
        if *self == Program::Scalar && n_outputs != 1 {
            return invalid(format!(
                "the scalar model needs one output, the data has {n_outputs}: use vector-l1 or vector-l2"
            ));
        }
        Ok(())
    }
}

/// min_{Z, b} Σ_rows L((𝒜Z)_row + b, y_row) + β Σ_blocks Ω(Z_b): one convex
/// program, for any operator 𝒜 (token, gated, sequence), loss and
/// regularizer. The default operator is the token operator of SPEC §4a/b/d.
pub struct Problem<'a, O: LinearOperator = TokenOperator<'a>> {
    pub op: O,
    /// Targets, `op.n_rows()` rows of `op.n_outputs()` values.
    pub y: &'a [f64],
    pub loss: Loss,
    pub penalty: Penalty,
    pub beta: f64,
    /// Fit an unpenalised intercept b ∈ R^c.
    pub intercept: bool,
}

impl<'a> Problem<'a, TokenOperator<'a>> {
    /// Validates β and the loss/target pairing.
    pub fn new(
        op: TokenOperator<'a>,
        loss: Loss,
        penalty: Penalty,
        beta: f64,
        intercept: bool,
    ) -> Result<Self> {
        loss.check_targets(op.data)?;
        let y = op.data.y.as_slice();
        Problem::with_operator(op, y, loss, penalty, beta, intercept)
    }
}

impl<'a, O: LinearOperator> Problem<'a, O> {
    /// A program on any operator; the caller has checked the targets suit
    /// the loss.
    pub fn with_operator(
        op: O,
        y: &'a [f64],
        loss: Loss,
        penalty: Penalty,
        beta: f64,
        intercept: bool,
    ) -> Result<Self> {
        check_beta(beta)?;
        if y.len() != op.n_rows() * op.n_outputs() {
            return invalid(format!(
                "{} target values for {} rows of {} outputs",
                y.len(),
                op.n_rows(),
                op.n_outputs()
            ));
        }
        if intercept && !op.supports_intercept() {
            return invalid("this program has no intercept: drop --intercept");
        }
        Ok(Problem {
            op,
            y,
            loss,
            penalty,
            beta,
            intercept,
        })
    }

    /// Coefficients per block.
    pub fn block_len(&self) -> usize {
        self.op.block_len()
    }

    /// The targets of one row.
    #[inline]
    pub fn target(&self, row: usize) -> &[f64] {
        let c = self.op.n_outputs();
        &self.y[row * c..(row + 1) * c]
    }

    /// β Σ_b Ω(Z_b) for coefficients on all blocks.
    pub fn penalty_value(&self, coef: &[f64]) -> f64 {
        let (c, d) = self.op.penalty_shape();
        self.beta
            * coef
                .chunks_exact(self.block_len())
                .map(|z| self.penalty.value(z, c, d))
                .sum::<f64>()
    }

    /// Σ_rows L(ŷ_row, y_row) for predictions ŷ (over all shards).
    pub fn loss_value(&self, yhat: &[f64]) -> f64 {
        let c = self.op.n_outputs();
        let mut total = [yhat
            .chunks_exact(c)
            .enumerate()
            .map(|(i, p)| self.loss.value(p, self.target(i)))
            .sum()];
        self.op.sum_over_shards(&mut total);
        total[0]
    }

    /// The primal objective at (coef on all blocks, intercept): one data pass.
    pub fn objective(&self, coef: &[f64], intercept: &[f64]) -> f64 {
        let yhat = self.op.predict(coef, intercept);
        self.loss_value(&yhat) + self.penalty_value(coef)
    }

    /// The intercept at Z = 0 (zeros without an intercept).
    pub fn intercept_at_zero(&self) -> Vec<f64> {
        if self.intercept {
            self.best_intercept(&vec![0.0; self.y.len()], None)
        } else {
            vec![0.0; self.op.n_outputs()]
        }
    }

    /// argmin_b Σ_rows L(offset_row + b, y_row) over all shards, from `start`.
    pub fn best_intercept(&self, offset: &[f64], start: Option<&[f64]>) -> Vec<f64> {
        self.loss
            .best_intercept_summed(offset, self.y, self.op.n_outputs(), start, &|v| {
                self.op.sum_over_shards(v)
            })
    }
}

/// β must be a positive finite number.
pub fn check_beta(beta: f64) -> Result<()> {
    if !(beta > 0.0 && beta.is_finite()) {
        return invalid(format!(
            "beta must be a positive finite number, got {beta}: pass --beta B > 0 or --beta-frac F in (0, 1]"
        ));
    }
    Ok(())
}

/// Mean of L(ŷ_i, y_i) over the samples.
pub fn mean_loss(loss: Loss, data: &crate::data::Dataset, yhat: &[f64]) -> f64 {
    let c = data.n_outputs;
    yhat.chunks_exact(c)
        .enumerate()
        .map(|(i, p)| loss.value(p, data.target(i)))
        .sum::<f64>()
        / data.n_samples as f64
}
