//! The short path for a Rust user: fit a convex program, certify it and
//! recover its heads in one expression.
//!
//! ```
//! use convexformer::data::synthetic::{generate, SyntheticSpec};
//! use convexformer::fit::Fit;
//! use convexformer::loss::Loss;
//!
//! let (data, _) = generate(&SyntheticSpec { n_samples: 200, ..Default::default() })?;
//! let fitted = Fit::scalar().loss(Loss::Squared).beta_frac(0.1).fit(&data)?;
//! assert!(fitted.report.solve.converged && fitted.report.solve.relative_gap <= 1e-6);
//! // The recovered heads reproduce the certified convex objective.
//! assert!(fitted.report.recovery_relative_difference <= 1e-9);
//! println!("tokens used: {:?}", fitted.report.active_tokens);
//! let yhat = fitted.predict(&data)?;
//! assert_eq!(yhat.len(), data.n_samples);
//! # Ok::<(), convexformer::Error>(())
//! ```

use crate::data::Dataset;
use crate::error::{invalid, Result};
use crate::loss::Loss;
use crate::model::{Model, ModelHeader};
use crate::operator::{GateSpec, Gates, LinearOperator, TokenOperator};
use crate::problem::{Problem, Program};
use crate::report::SolveReport;
use crate::solver::{beta_max, solve, Solution, SolverOptions};

/// How β is chosen.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Beta {
    /// β itself.
    Value(f64),
    /// β = f·β_max, f > 0 (f ≥ 1 gives the zero solution).
    FractionOfMax(f64),
}

/// A convex attention program to fit: the program, the loss, β, the solver
/// options and, for the gated program, how its gates are drawn.
#[derive(Clone, Debug)]
pub struct Fit {
    pub program: Program,
    pub loss: Loss,
    pub beta: Beta,
    pub intercept: bool,
    pub options: SolverOptions,
    pub gates: Option<GateSpec>,
}

/// A fitted program: the certified solution, its report (certificate,
/// active tokens, recovered heads and their nonconvex objective, errors)
/// and the model that predicts and saves (the CLI's `model.safetensors`).
#[derive(Clone, Debug)]
pub struct Fitted {
    pub solution: Solution,
    pub report: SolveReport,
    pub model: Model,
}

impl Fit {
    /// `program` with squared loss, β = 0.1·β_max, no intercept and the
    /// default solver options (relative gap 1e-6).
    pub fn new(program: Program) -> Self {
        Fit {
            program,
            loss: Loss::Squared,
            beta: Beta::FractionOfMax(0.1),
            intercept: false,
            options: SolverOptions::default(),
            gates: None,
        }
    }
    /// SPEC §4a: one output, group lasso over tokens.
    pub fn scalar() -> Self {
        Self::new(Program::Scalar)
    }
    /// SPEC §4b with the ℓ₁ output norm.
    pub fn vector_l1() -> Self {
        Self::new(Program::VectorL1)
    }
    /// SPEC §4b with the ℓ₂ output norm (nuclear norm per token).
    pub fn vector_l2() -> Self {
        Self::new(Program::VectorL2)
    }
    /// SPEC §4d: attention + gated-ReLU neuron with gates drawn by `gates`.
    pub fn gated(gates: GateSpec) -> Self {
        Fit {
            gates: Some(gates),
            ..Self::new(Program::Gated)
        }
    }
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }
    pub fn beta(mut self, beta: f64) -> Self {
        self.beta = Beta::Value(beta);
        self
    }
    pub fn beta_frac(mut self, frac: f64) -> Self {
        self.beta = Beta::FractionOfMax(frac);
        self
    }
    pub fn intercept(mut self, on: bool) -> Self {
        self.intercept = on;
        self
    }
    pub fn tol(mut self, tol: f64) -> Self {
        self.options.tol = tol;
        self
    }
    pub fn options(mut self, options: SolverOptions) -> Self {
        self.options = options;
        self
    }

    /// Solves on `data` to the certified tolerance (or the budget), recovers
    /// the heads and checks them against the nonconvex objective.
    pub fn fit(&self, data: &Dataset) -> Result<Fitted> {
        self.fit_with_validation(data, None)
    }

    /// As [`Fit::fit`], reporting the error on `val` too.
    pub fn fit_with_validation(&self, data: &Dataset, val: Option<&Dataset>) -> Result<Fitted> {
        self.options.validate()?;
        self.program.check(data.n_outputs)?;
        let gates = match (self.program, self.gates) {
            (Program::Gated, Some(spec)) => Some(Gates::draw(spec, data)?),
            (Program::Gated, None) => return invalid("the gated program needs a gate spec"),
            (_, Some(_)) => return invalid("gates apply to the gated program only"),
            (_, None) => None,
        };
        let masks = gates.as_ref().map(|g| g.masks(data)).transpose()?;
        let val_masks = match (&gates, val) {
            (Some(g), Some(v)) => Some(g.masks(v)?),
            _ => None,
        };
        let op = TokenOperator::new(data, masks.as_ref());
        let mut problem = Problem::new(op, self.loss, self.program.penalty(), 1.0, self.intercept)?;
        let bmax = beta_max(&problem);
        problem.beta = match self.beta {
            Beta::Value(b) => b,
            Beta::FractionOfMax(f) if f > 0.0 && f.is_finite() => f * bmax,
            Beta::FractionOfMax(f) => {
                return invalid(format!(
                    "beta-frac must be a positive number (a fraction of beta_max), got {f}"
                ))
            }
        };
        crate::problem::check_beta(problem.beta)?;
        let solution = solve(&problem, &self.options, None)?;
        let report =
            SolveReport::with_gated_val(&problem, &solution, bmax, val, val_masks.as_ref());
        let model = Model {
            header: ModelHeader {
                format: 1,
                program: self.program,
                loss: self.loss,
                beta: problem.beta,
                n_tokens: data.n_tokens,
                n_features: data.n_features,
                n_outputs: data.n_outputs,
                n_blocks: problem.op.n_blocks(),
                intercept: self.intercept,
                heads: report.heads.clone(),
                gates: gates.as_ref().map(|g| g.spec),
            },
            gates: gates.map(|g| g.vectors),
            coef: solution.coef.clone(),
            intercept: solution.intercept.clone(),
        };
        Ok(Fitted {
            solution,
            report,
            model,
        })
    }
}

impl Fitted {
    /// Predictions (N×c) on new data of the same shape.
    pub fn predict(&self, data: &Dataset) -> Result<Vec<f64>> {
        self.model.predict(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{generate, SyntheticSpec, TargetKind};
    use crate::operator::GateKind;

    #[test]
    fn every_program_fits_certifies_and_predicts_its_training_error() {
        let spec = SyntheticSpec {
            n_samples: 150,
            n_tokens: 6,
            n_features: 3,
            n_outputs: 2,
            ..Default::default()
        };
        let (data, _) = generate(&spec).unwrap();
        let gates = GateSpec {
            n_gates: 3,
            kind: GateKind::Gaussian,
            tokenwise: false,
            seed: 1,
        };
        for fit in [Fit::vector_l1(), Fit::vector_l2(), Fit::gated(gates)] {
            let f = fit.intercept(true).beta_frac(0.2).fit(&data).unwrap();
            assert!(f.report.solve.converged, "{:?}", f.model.header.program);
            assert!(f.report.recovery_relative_difference <= 1e-9);
            let yhat = f.predict(&data).unwrap();
            let err = crate::report::error(Loss::Squared, &data, &yhat);
            assert!((err - f.report.train_error).abs() <= 1e-9 * err.max(1.0));
        }
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let (data, _) = generate(&SyntheticSpec {
            n_samples: 40,
            kind: TargetKind::Real,
            ..Default::default()
        })
        .unwrap();
        let msg = |f: Fit| f.fit(&data).unwrap_err().to_string();
        assert!(msg(Fit::scalar().beta_frac(-0.5)).contains("beta-frac"));
        assert!(msg(Fit::scalar().beta(-1.0)).contains("beta"));
        assert!(msg(Fit::scalar().tol(0.0)).contains("tol"));
        assert!(msg(Fit::new(Program::Gated)).contains("gate"));
    }
}
