//! The estimator's settings, as the Python layer passes them (a dict with
//! every key), turned into the core's [`Fit`].

use convexformer::fit::{Beta, Fit};
use convexformer::loss::Loss;
use convexformer::operator::{GateKind, GateSpec};
use convexformer::problem::Program;
use convexformer::solver::{Interrupt, SolverKind, SolverOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::IntoPy;

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct Config {
    program: String,
    loss: String,
    beta: Option<f64>,
    beta_frac: Option<f64>,
    tol: f64,
    max_iter: usize,
    max_seconds: Option<f64>,
    fit_intercept: bool,
    solver: String,
    n_gates: usize,
    gate_kind: String,
    tokenwise_gates: bool,
    seed: u64,
}

impl Config {
    fn beta(&self) -> PyResult<Beta> {
        match (self.beta, self.beta_frac) {
            (Some(b), _) => Ok(Beta::Value(b)),
            (None, Some(f)) => Ok(Beta::FractionOfMax(f)),
            (None, None) => Err(PyValueError::new_err("give beta or beta_frac")),
        }
    }

    fn options(&self, interrupt: &Interrupt) -> PyResult<SolverOptions> {
        let opts = SolverOptions {
            tol: self.tol,
            max_iter: self.max_iter,
            max_seconds: self.max_seconds.unwrap_or(f64::INFINITY),
            solver: SolverKind::parse(&self.solver).py()?,
            interrupt: Some(interrupt.clone()),
            ..SolverOptions::default()
        };
        opts.validate().py()?;
        Ok(opts)
    }

    /// Whether the settings name the sequence program (SPEC §4c).
    pub fn is_sequence(&self) -> bool {
        self.program == "sequence"
    }

    /// The sequence program's loss, β and solver options.
    pub fn sequence(&self, interrupt: &Interrupt) -> PyResult<(Loss, Beta, SolverOptions)> {
        if self.program != "sequence" {
            return Err(PyValueError::new_err(format!(
                "fit_sequence fits the sequence program, not '{}'",
                self.program
            )));
        }
        if self.fit_intercept {
            return Err(PyValueError::new_err(
                "the sequence program fits no intercept: pass fit_intercept=False",
            ));
        }
        let loss = Loss::parse(&self.loss).py()?;
        Ok((loss, self.beta()?, self.options(interrupt)?))
    }

    /// The core's fit, with `interrupt` wired into its solver options.
    pub fn to_fit(&self, interrupt: &Interrupt) -> PyResult<Fit> {
        let program = Program::parse(&self.program).py()?;
        let mut fit = match program {
            Program::Gated => Fit::gated(GateSpec {
                n_gates: self.n_gates,
                kind: GateKind::parse(&self.gate_kind).py()?,
                tokenwise: self.tokenwise_gates,
                seed: self.seed,
            }),
            p => Fit::new(p),
        };
        fit = fit
            .loss(Loss::parse(&self.loss).py()?)
            .intercept(self.fit_intercept);
        fit.beta = self.beta()?;
        Ok(fit.options(self.options(interrupt)?))
    }
}
