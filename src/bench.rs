//! The benchmark instances of the certified core (used by `convexformer bench`
//! and by `cargo bench`): planted teachers, squared loss, β = 0.1·β_max,
//! solved to relative gap 1e-6.

use crate::data::synthetic::{generate, SyntheticSpec, TargetKind};
use crate::data::Dataset;
use crate::error::{invalid, Result};
use crate::loss::Loss;
use crate::operator::TokenOperator;
use crate::problem::{Problem, Program};
use crate::solver::{beta_max, solve, SolverOptions};

/// A named benchmark size.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct BenchSize {
    pub name: &'static str,
    pub n_samples: usize,
    pub n_tokens: usize,
    pub n_features: usize,
    pub active: usize,
}

/// S: N=1000, n=16, d=32; M: N=5000, n=64, d=64; both with 4 planted tokens
/// and noise 0.1.
pub const SIZES: [BenchSize; 2] = [
    BenchSize {
        name: "S",
        n_samples: 1000,
        n_tokens: 16,
        n_features: 32,
        active: 4,
    },
    BenchSize {
        name: "M",
        n_samples: 5000,
        n_tokens: 64,
        n_features: 64,
        active: 4,
    },
];

pub fn size(name: &str) -> Result<BenchSize> {
    match SIZES.iter().find(|s| s.name.eq_ignore_ascii_case(name)) {
        Some(s) => Ok(*s),
        None => invalid(format!("unknown benchmark size '{name}': use S or M")),
    }
}

/// The planted data of a size (seed 0).
pub fn instance(s: &BenchSize) -> Result<Dataset> {
    let spec = SyntheticSpec {
        n_samples: s.n_samples,
        n_tokens: s.n_tokens,
        n_features: s.n_features,
        n_outputs: 1,
        active: s.active,
        noise: 0.1,
        seed: 0,
        kind: TargetKind::Real,
    };
    Ok(generate(&spec)?.0)
}

/// One timed solve.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchResult {
    pub size: &'static str,
    pub seconds: f64,
    pub data_passes: f64,
    pub iterations: usize,
    pub relative_gap: f64,
    pub active_tokens: usize,
}

/// Solves the instance at β = 0.1·β_max (β_max computed outside the timing).
pub fn run(s: &BenchSize, data: &Dataset, opts: &SolverOptions) -> Result<BenchResult> {
    let op = TokenOperator::new(data, None);
    let mut problem = Problem::new(op, Loss::Squared, Program::Scalar.penalty(), 1.0, false)?;
    problem.beta = 0.1 * beta_max(&problem);
    let sol = solve(&problem, opts, None)?;
    Ok(BenchResult {
        size: s.name,
        seconds: sol.seconds,
        data_passes: sol.data_passes,
        iterations: sol.iterations,
        relative_gap: sol.certificate.relative_gap,
        active_tokens: sol.active_blocks(data.n_features).len(),
    })
}
