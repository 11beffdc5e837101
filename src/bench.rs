//! The benchmark instances of the certified core (used by `convexformer bench`
//! and by `cargo bench`): the planted suite (planted teachers on i.i.d.
//! tokens, squared loss, β = 0.1·β_max, solved to relative gap 1e-6) and the
//! hard suite ([`hard_case`]: data shaped like real hidden states, several
//! programs and losses).

use crate::data::synthetic::{generate, SyntheticSpec, TargetKind};
use crate::data::Dataset;
use crate::error::{invalid, Result};
use crate::loss::Loss;
use crate::operator::{GateKind, GateMasks, GateSpec, Gates, TokenOperator};
use crate::problem::{Problem, Program};
use crate::solver::{beta_max, solve, SolverOptions, StopReason};

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
pub fn instance(s: &BenchSize) -> Result<Dataset<'static>> {
    let spec = SyntheticSpec {
        n_samples: s.n_samples,
        n_tokens: s.n_tokens,
        n_features: s.n_features,
        n_outputs: 1,
        active: s.active,
        noise: 0.1,
        seed: 0,
        kind: TargetKind::Real,
        rho: 0.0,
        decay: 0.0,
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

/// The hard suite (`convexformer bench --suite hard`): instances shaped like
/// real hidden states (SPEC §5: tokens sharing a common component, ρ = 0.8,
/// and anisotropic features, decay = 0.5), no intercept anywhere so that
/// other solvers' objectives compare with ours.
///
/// - `sq-0.1`, `sq-0.02`: scalar program, squared loss, β = 0.1 and 0.02·β_max;
/// - `logit-0.1`: scalar program, logistic loss on ±1 labels, β = 0.1·β_max;
/// - `vl1-sq-0.1`: vector-ℓ₁ program, c = 8 real outputs, squared loss;
/// - `gated-ce`: gated program (8 Gaussian gates, seed 0), cross-entropy on
///   8 classes, on smaller data (N = 2000, n = 16, d = 32).
///
/// The first four use N = 5000, n = 64, d = 64, 16 planted tokens, noise 0.1,
/// seed 0. `planted-S` and `planted-M` (on request only) are the planted
/// suite's instances, for timing peers on them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HardCase {
    pub name: &'static str,
    pub program: Program,
    pub loss: Loss,
    /// β = beta_frac·β_max.
    pub beta_frac: f64,
    pub spec: SyntheticSpec,
    /// The gates of the gated program.
    pub gates: Option<GateSpec>,
}

/// The names of the hard suite's cases, in order.
pub const HARD_CASES: [&str; 5] = ["sq-0.1", "sq-0.02", "logit-0.1", "vl1-sq-0.1", "gated-ce"];

/// The hard case `name`, with N divided by `scale` (≥ 1; 1 is the suite as
/// documented, larger values make quick smoke tests).
pub fn hard_case(name: &str, scale: usize) -> Result<HardCase> {
    if scale == 0 {
        return invalid("the hard suite's scale must be at least 1");
    }
    let big = SyntheticSpec {
        n_samples: 5000,
        n_tokens: 64,
        n_features: 64,
        n_outputs: 1,
        active: 16,
        noise: 0.1,
        seed: 0,
        kind: TargetKind::Real,
        rho: 0.8,
        decay: 0.5,
    };
    let case = |name, program, loss, beta_frac, spec| HardCase {
        name,
        program,
        loss,
        beta_frac,
        spec,
        gates: None,
    };
    let mut c = match name {
        "sq-0.1" => case("sq-0.1", Program::Scalar, Loss::Squared, 0.1, big),
        "sq-0.02" => case("sq-0.02", Program::Scalar, Loss::Squared, 0.02, big),
        "logit-0.1" => case(
            "logit-0.1",
            Program::Scalar,
            Loss::Logistic,
            0.1,
            SyntheticSpec {
                kind: TargetKind::Binary,
                ..big
            },
        ),
        "vl1-sq-0.1" => case(
            "vl1-sq-0.1",
            Program::VectorL1,
            Loss::Squared,
            0.1,
            SyntheticSpec {
                n_outputs: 8,
                ..big
            },
        ),
        "gated-ce" => HardCase {
            gates: Some(GateSpec {
                n_gates: 8,
                kind: GateKind::Gaussian,
                tokenwise: false,
                seed: 0,
            }),
            ..case(
                "gated-ce",
                Program::Gated,
                Loss::CrossEntropy,
                0.1,
                SyntheticSpec {
                    n_samples: 2000,
                    n_tokens: 16,
                    n_features: 32,
                    n_outputs: 8,
                    kind: TargetKind::Classes,
                    ..big
                },
            )
        },
        // The planted sizes as cases (not run by default): so that the
        // peer script can time S and M on the same files.
        "planted-S" | "planted-M" => {
            let s = size(&name[8..])?;
            let spec = SyntheticSpec {
                n_samples: s.n_samples,
                n_tokens: s.n_tokens,
                n_features: s.n_features,
                active: s.active,
                rho: 0.0,
                decay: 0.0,
                ..big
            };
            let name = if s.name == "S" {
                "planted-S"
            } else {
                "planted-M"
            };
            case(name, Program::Scalar, Loss::Squared, 0.1, spec)
        }
        _ => {
            return invalid(format!(
                "unknown hard case '{name}': use {}, or planted-S, planted-M",
                HARD_CASES.join(", ")
            ))
        }
    };
    c.spec.n_samples = (c.spec.n_samples / scale).max(c.spec.n_outputs + 1);
    c.spec.active = c.spec.active.min(c.spec.n_tokens);
    Ok(c)
}

impl HardCase {
    /// The same case on data drawn with `seed` (the gates keep their own
    /// seed): the suite's instances are seed 0.
    pub fn with_data_seed(&self, seed: u64) -> HardCase {
        let mut c = self.clone();
        c.spec.seed = seed;
        c
    }
}

/// One case solved on the data of several seeds: the spread one instance
/// hides (coordinate descent's passes on cross-entropy move by half between
/// seeds of one spec, and with rounding-level changes of its path).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeedSpread {
    pub seeds: Vec<u64>,
    /// One solve per seed, in the order of `seeds`.
    pub runs: Vec<CaseResult>,
    pub min_passes: f64,
    pub mean_passes: f64,
    pub max_passes: f64,
    /// How many solves reached the tolerance.
    pub converged: usize,
}

/// Solves `case` once on the data of each seed of `seeds`; `solved`, a
/// solve of `case` on its own data (seed), stands for that seed's.
pub fn run_hard_seeds(
    case: &HardCase,
    seeds: &[u64],
    opts: &SolverOptions,
    solved: Option<&CaseResult>,
) -> Result<SeedSpread> {
    if seeds.is_empty() {
        return invalid("a seed spread needs at least one seed");
    }
    let runs = seeds
        .iter()
        .map(|&seed| {
            if let Some(r) = solved.filter(|_| seed == case.spec.seed) {
                return Ok(r.clone());
            }
            let c = case.with_data_seed(seed);
            let (data, masks) = hard_instance(&c)?;
            run_hard(&c, &data, masks.as_ref(), opts)
        })
        .collect::<Result<Vec<_>>>()?;
    let passes = || runs.iter().map(|r| r.data_passes);
    Ok(SeedSpread {
        seeds: seeds.to_vec(),
        min_passes: passes().fold(f64::INFINITY, f64::min),
        mean_passes: passes().sum::<f64>() / runs.len() as f64,
        max_passes: passes().fold(f64::NEG_INFINITY, f64::max),
        converged: runs.iter().filter(|r| r.converged).count(),
        runs,
    })
}

/// The data of a hard case and, for the gated program, its gate indicators.
pub fn hard_instance(case: &HardCase) -> Result<(Dataset<'static>, Option<GateMasks>)> {
    let data = generate(&case.spec)?.0;
    let masks = match case.gates {
        Some(spec) => Some(Gates::draw(spec, &data)?.masks(&data)?),
        None => None,
    };
    Ok((data, masks))
}

/// One timed solve of a hard case.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseResult {
    pub case: &'static str,
    pub program: &'static str,
    pub loss: String,
    pub solver: &'static str,
    pub beta: f64,
    pub beta_max: f64,
    pub n_outputs: usize,
    /// Our primal objective Σ_i L + β Σ Ω at the returned solution.
    pub objective: f64,
    pub relative_gap: f64,
    pub seconds: f64,
    pub data_passes: f64,
    pub iterations: usize,
    pub converged: bool,
    pub stop: StopReason,
    /// Blocks (tokens; (output, token) or (gate, token) pairs where the
    /// program's blocks are those) with a nonzero coefficient.
    pub active_blocks: usize,
}

/// Solves a hard case at β = beta_frac·β_max (β_max computed outside the
/// timing), without an intercept.
pub fn run_hard(
    case: &HardCase,
    data: &Dataset,
    masks: Option<&GateMasks>,
    opts: &SolverOptions,
) -> Result<CaseResult> {
    case.program.check(data.n_outputs)?;
    let op = TokenOperator::new(data, masks);
    let mut problem = Problem::new(op, case.loss, case.program.penalty(), 1.0, false)?;
    let bmax = beta_max(&problem);
    problem.beta = case.beta_frac * bmax;
    let sol = solve(&problem, opts, None)?;
    Ok(CaseResult {
        case: case.name,
        program: case.program.name(),
        loss: case.loss.name(),
        solver: opts.solver.name(),
        beta: problem.beta,
        beta_max: bmax,
        n_outputs: data.n_outputs,
        objective: sol.certificate.primal,
        relative_gap: sol.certificate.relative_gap,
        seconds: sol.seconds,
        data_passes: sol.data_passes,
        iterations: sol.iterations,
        converged: sol.converged(),
        stop: sol.stop,
        active_blocks: sol.active_blocks(problem.block_len()).len(),
    })
}
