//! A convex program: operator × loss × penalty × β (SPEC §4), and the names
//! under which users ask for them.

use crate::error::{invalid, Result};
use crate::loss::{Loss, SampleLoss};
use crate::operator::TokenOperator;
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

/// min_{Z, b} Σ_i L(⟨X_i, Z⟩ + b, y_i) + β Σ_blocks Ω(Z_b).
pub struct Problem<'a> {
    pub op: TokenOperator<'a>,
    pub loss: Loss,
    pub penalty: Penalty,
    pub beta: f64,
    /// Fit an unpenalised intercept b ∈ R^c.
    pub intercept: bool,
}

impl<'a> Problem<'a> {
    /// Validates β and the loss/target pairing.
    pub fn new(
        op: TokenOperator<'a>,
        loss: Loss,
        penalty: Penalty,
        beta: f64,
        intercept: bool,
    ) -> Result<Self> {
        check_beta(beta)?;
        loss.check_targets(op.data)?;
        Ok(Problem {
            op,
            loss,
            penalty,
            beta,
            intercept,
        })
    }

    /// Coefficients per block: c·d.
    pub fn block_len(&self) -> usize {
        self.op.n_outputs() * self.op.block_dim()
    }

    /// β Σ_b Ω(Z_b) for coefficients on all blocks.
    pub fn penalty_value(&self, coef: &[f64]) -> f64 {
        let (c, d) = (self.op.n_outputs(), self.op.block_dim());
        self.beta
            * coef
                .chunks_exact(c * d)
                .map(|z| self.penalty.value(z, c, d))
                .sum::<f64>()
    }

    /// Σ_i L(ŷ_i, y_i) for predictions ŷ (N×c).
    pub fn loss_value(&self, yhat: &[f64]) -> f64 {
        let c = self.op.n_outputs();
        yhat.chunks_exact(c)
            .enumerate()
            .map(|(i, p)| self.loss.value(p, self.op.data.target(i)))
            .sum()
    }

    /// The primal objective at (coef on all blocks, intercept): one data pass.
    pub fn objective(&self, coef: &[f64], intercept: &[f64]) -> f64 {
        let yhat = self.op.predict(coef, intercept);
        self.loss_value(&yhat) + self.penalty_value(coef)
    }

    /// The intercept at Z = 0 (zeros without an intercept).
    pub fn intercept_at_zero(&self) -> Vec<f64> {
        if self.intercept {
            self.loss.best_constant(self.op.data)
        } else {
            vec![0.0; self.op.n_outputs()]
        }
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
