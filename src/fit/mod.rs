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

mod path;
mod shards;

pub use path::{PathBetas, PathEnd, PathResume};
pub(crate) use shards::{check_same_shape, with_all_classes};

use crate::comm::Communicator;
use crate::data::Dataset;
use crate::error::{invalid, Result};
use crate::loss::Loss;
use crate::model::{Model, ModelHeader};
use crate::operator::{GateSpec, Gates, LinearOperator, TokenOperator};
use crate::problem::{Problem, Program};
use crate::report::{SolveReport, TokenProgram};
use crate::solver::{beta_max, solve, Solution, SolverOptions};
use shards::ShardData;

/// How β is chosen.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Beta {
    /// β itself.
    Value(f64),
    /// β = f·β_max, f > 0 (f ≥ 1 gives the zero solution).
    FractionOfMax(f64),
}

impl Beta {
    /// β itself, given β_max; checked positive and finite.
    pub fn resolve(&self, bmax: f64) -> Result<f64> {
        let beta = match *self {
            Beta::Value(b) => b,
            Beta::FractionOfMax(_) if bmax <= 0.0 => {
                return invalid(
                    "beta_max is 0 on this data: the zero model (with its intercept) already \
                     fits it exactly (constant targets, or one sample), so no fraction of \
                     beta_max is a valid beta; give beta itself",
                )
            }
            Beta::FractionOfMax(f) if f > 0.0 && f.is_finite() => f * bmax,
            Beta::FractionOfMax(f) => {
                return invalid(format!(
                    "beta-frac must be a positive number (a fraction of beta_max), got {f}"
                ))
            }
        };
        crate::problem::check_beta(beta)?;
        Ok(beta)
    }
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
        self.fit_from(data, val, None)
    }

    /// As [`Fit::fit_with_validation`], started from `warm` (coefficients
    /// n_blocks·c·d, block-major, and c intercepts; e.g. an earlier fit's).
    pub fn fit_from(
        &self,
        data: &Dataset,
        val: Option<&Dataset>,
        warm: Option<(&[f64], &[f64])>,
    ) -> Result<Fitted> {
        let setup = self.setup(data)?;
        let mut problem = setup.problem(data, self)?;
        let bmax = beta_max(&problem);
        problem.beta = self.beta.resolve(bmax)?;
        let solution = solve(&problem, &self.options, warm)?;
        self.fitted(&setup, &problem, solution, bmax, val)
    }

    /// A data-parallel fit: `shard` holds this process's samples, and `comm`
    /// the shards holding the others (every shard calls this at once, with
    /// the same settings). Every shard returns the same certified solution
    /// and report of the program on all samples, equal to the one-process
    /// fit's up to the order of the sums. `val`, if given, is held whole by
    /// every shard. On an error in one shard the caller must end the others
    /// (with MPI: `MpiWorld::abort`), which would wait in their next sum.
    pub fn fit_sharded(
        &self,
        shard: &Dataset,
        val: Option<&Dataset>,
        warm: Option<(&[f64], &[f64])>,
        comm: &dyn Communicator,
    ) -> Result<Fitted> {
        if comm.size() == 1 {
            return self.fit_from(shard, val, warm);
        }
        let shard = ShardData::new(self, shard, comm)?;
        let setup = self.setup(&shard.data)?;
        let mut problem = shard.problem(self, &setup)?;
        let bmax = beta_max(&problem);
        problem.beta = self.beta.resolve(bmax)?;
        let solution = solve(&problem, &self.options, warm)?;
        self.fitted_on_shard(
            &setup,
            problem.op.inner(),
            problem.beta,
            solution,
            bmax,
            val,
            &|v| comm.sum(v),
        )
    }

    /// β_max on `data`: the smallest β at which the zero model is optimal.
    pub fn beta_max(&self, data: &Dataset) -> Result<f64> {
        let setup = self.setup(data)?;
        Ok(beta_max(&setup.problem(data, self)?))
    }

    /// Refuses `data` when the solve would not fit in the memory left
    /// ([`crate::memory`]); [`Fit::fit`] and [`Fit::path`] check it first.
    pub fn check_memory(&self, data: &Dataset) -> Result<()> {
        let gates = self.gates.map_or(1, |g| g.n_gates.max(1));
        crate::memory::check_token_program(
            data,
            data.n_tokens.saturating_mul(gates),
            self.loss,
            self.options.solver,
        )
    }

    /// Checks the request against `data` and draws the gates.
    pub(crate) fn setup(&self, data: &Dataset) -> Result<Setup> {
        self.options.validate()?;
        self.program.check(data.n_outputs)?;
        self.check_memory(data)?;
        let gates = match (self.program, self.gates) {
            (Program::Gated, Some(spec)) => Some(Gates::draw(spec, data)?),
            (Program::Gated, None) => return invalid("the gated program needs a gate spec"),
            (_, Some(_)) => return invalid("gates apply to the gated program only"),
            (_, None) => None,
        };
        let masks = gates.as_ref().map(|g| g.masks(data)).transpose()?;
        Ok(Setup { gates, masks })
    }

    fn fitted(
        &self,
        setup: &Setup,
        problem: &Problem,
        solution: Solution,
        beta_max: f64,
        val: Option<&Dataset>,
    ) -> Result<Fitted> {
        self.fitted_on_shard(
            setup,
            &problem.op,
            problem.beta,
            solution,
            beta_max,
            val,
            &|_| {},
        )
    }

    /// The fitted program from a solution on `op`'s rows (all of them, or
    /// one shard's, with `sum` adding sums over rows across the shards).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fitted_on_shard(
        &self,
        setup: &Setup,
        op: &TokenOperator<'_>,
        beta: f64,
        solution: Solution,
        beta_max: f64,
        val: Option<&Dataset>,
        sum: &dyn Fn(&mut [f64]),
    ) -> Result<Fitted> {
        let val_masks = match (&setup.gates, val) {
            (Some(g), Some(v)) => Some(g.masks(v)?),
            _ => None,
        };
        let program = TokenProgram {
            op,
            loss: self.loss,
            penalty: self.program.penalty(),
            beta,
        };
        let report =
            SolveReport::of_shard(program, &solution, beta_max, val, val_masks.as_ref(), sum);
        let data = op.data;
        let model = Model {
            header: ModelHeader {
                format: 1,
                program: self.program,
                loss: self.loss,
                beta,
                n_tokens: data.n_tokens,
                n_features: data.n_features,
                n_outputs: data.n_outputs,
                n_blocks: op.n_blocks(),
                intercept: self.intercept,
                heads: report.heads.clone(),
                gates: setup.gates.as_ref().map(|g| g.spec),
            },
            gates: setup.gates.as_ref().map(|g| g.vectors.clone()),
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

/// What a fit prepares once per data set: the gates and their masks.
pub(crate) struct Setup {
    gates: Option<Gates>,
    masks: Option<crate::operator::GateMasks>,
}

impl Setup {
    pub(crate) fn problem<'a>(&'a self, data: &'a Dataset<'a>, fit: &Fit) -> Result<Problem<'a>> {
        let op = TokenOperator::new(data, self.masks.as_ref());
        Problem::new(op, fit.loss, fit.program.penalty(), 1.0, fit.intercept)
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
    use crate::error::Error;
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
    fn a_path_is_certified_at_every_beta_and_warm_starts_agree_with_cold_fits() {
        let (data, _) = generate(&SyntheticSpec {
            n_samples: 120,
            n_tokens: 6,
            n_features: 3,
            ..Default::default()
        })
        .unwrap();
        let fit = Fit::scalar().intercept(true).tol(1e-9);
        let (path, bmax) = fit
            .path(&data, &PathBetas::Grid { n: 4, ratio: 0.05 })
            .unwrap();
        assert_eq!(path.len(), 4);
        assert!((path[0].report.solve.beta - bmax).abs() <= 1e-12 * bmax);
        assert!(path[0].report.active_tokens.is_empty(), "β_max gives zero");
        for f in &path {
            assert!(f.report.solve.converged);
            let cold = fit.clone().beta(f.report.solve.beta).fit(&data).unwrap();
            let (a, b) = (f.report.solve.objective, cold.report.solve.objective);
            assert!((a - b).abs() <= 1e-8 * a.abs().max(1.0), "{a} vs {b}");
        }
        // A warm start from the last point of the path certifies at once.
        let last = path.last().unwrap();
        let warm = fit
            .clone()
            .beta(last.report.solve.beta)
            .fit_from(
                &data,
                None,
                Some((&last.solution.coef, &last.solution.intercept)),
            )
            .unwrap();
        assert!(warm.report.solve.converged);
        assert!(
            warm.solution.iterations <= 1,
            "{}",
            warm.solution.iterations
        );
        // The model round-trips through its bytes.
        let bytes = last.model.to_bytes().unwrap();
        let back = Model::from_bytes(bytes, std::path::Path::new("memory")).unwrap();
        assert_eq!(back.predict(&data).unwrap(), last.predict(&data).unwrap());
        let err = Model::from_bytes(b"not a model".to_vec(), std::path::Path::new("memory"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("memory") && err.contains("safetensors"),
            "{err}"
        );
    }

    /// Runs `f` on each member of a group of `size` threads.
    fn on_shards<T: Send>(
        size: usize,
        f: impl Fn(&crate::comm::ThreadGroup) -> T + Sync,
    ) -> Vec<T> {
        let members = crate::comm::ThreadGroup::new(size);
        std::thread::scope(|s| {
            let hs: Vec<_> = members.iter().map(|m| s.spawn(|| f(m))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn a_sharded_fit_reports_what_the_one_process_fit_reports() {
        let (data, _) = generate(&SyntheticSpec {
            n_samples: 131,
            n_tokens: 5,
            n_features: 3,
            n_outputs: 3,
            kind: TargetKind::Classes,
            ..Default::default()
        })
        .unwrap();
        let fit = Fit::vector_l1()
            .loss(Loss::CrossEntropy)
            .intercept(true)
            .beta_frac(0.1)
            .tol(1e-10);
        let one = fit.fit_with_validation(&data, Some(&data)).unwrap();
        let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-300);
        for f in on_shards(3, |m| {
            let r = crate::comm::shard_range(data.n_samples, m.rank(), 3);
            let shard = data.select(&r.collect::<Vec<_>>());
            fit.fit_sharded(&shard, Some(&data), None, m).unwrap()
        }) {
            let (a, b) = (&one.report, &f.report);
            assert!(b.solve.converged);
            assert!(rel(a.solve.objective, b.solve.objective) <= 1e-10);
            assert!(rel(a.solve.beta_max, b.solve.beta_max) <= 1e-12);
            assert!(rel(a.nonconvex_objective, b.nonconvex_objective) <= 1e-10);
            assert!(b.recovery_relative_difference <= 1e-9);
            assert_eq!(a.active_tokens, b.active_tokens);
            assert_eq!(a.train_error, b.train_error, "a count of mistakes");
            assert_eq!(a.validation_error, b.validation_error);
            assert_eq!(f.model.header.n_blocks, one.model.header.n_blocks);
        }
    }

    #[test]
    fn a_sharded_path_is_the_one_process_path_and_resumes_where_it_stopped() {
        let (data, _) = generate(&SyntheticSpec {
            n_samples: 97,
            n_tokens: 5,
            n_features: 3,
            ..Default::default()
        })
        .unwrap();
        let fit = Fit::scalar().intercept(true).tol(1e-10);
        let betas = PathBetas::Grid { n: 4, ratio: 0.05 };
        let (one, bmax) = fit.path(&data, &betas).unwrap();
        let objectives = |points: &[Fitted]| -> Vec<f64> {
            points.iter().map(|f| f.report.solve.objective).collect()
        };
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (x - y).abs() <= 1e-10 * x.abs().max(1e-300))
        };
        // From point 2 on, started from point 1's solution.
        let resume = PathResume {
            grid: one.iter().map(|f| f.report.solve.beta).collect(),
            done: 2,
            warm: Some((
                one[1].solution.coef.clone(),
                one[1].solution.intercept.clone(),
            )),
        };
        for (all, rest) in on_shards(3, |m| {
            let r = crate::comm::shard_range(data.n_samples, m.rank(), 3);
            let shard = data.select(&r.collect::<Vec<_>>());
            let mut all = Vec::new();
            let mut indices = Vec::new();
            let end = fit
                .path_on(&shard, None, &betas, None, m, |_, i, f| {
                    indices.push(i);
                    all.push(f);
                    Ok::<(), Error>(())
                })
                .unwrap();
            assert_eq!(indices, vec![0, 1, 2, 3]);
            assert!(!end.interrupted && (end.beta_max - bmax).abs() <= 1e-12 * bmax);
            let mut rest = Vec::new();
            fit.path_on(&shard, None, &betas, Some(resume.clone()), m, |_, i, f| {
                rest.push((i, f));
                Ok::<(), Error>(())
            })
            .unwrap();
            (all, rest)
        }) {
            assert!(close(&objectives(&one), &objectives(&all)));
            assert_eq!(rest.iter().map(|p| p.0).collect::<Vec<_>>(), vec![2, 3]);
            let rest: Vec<Fitted> = rest.into_iter().map(|p| p.1).collect();
            assert!(close(&objectives(&one[2..]), &objectives(&rest)));
        }
        // A record of another data set (another β_max) is refused.
        let other = PathResume {
            grid: vec![2.0 * bmax, bmax],
            ..Default::default()
        };
        let err = fit
            .path_on(
                &data,
                None,
                &betas,
                Some(other),
                &crate::comm::SingleProcess,
                |_, _, _| Ok::<(), Error>(()),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("beta_max"), "{err}");
    }

    #[test]
    fn a_shard_without_the_last_classes_fits_with_all_of_them() {
        let (data, _) = generate(&SyntheticSpec {
            n_samples: 90,
            n_tokens: 4,
            n_features: 3,
            n_outputs: 3,
            kind: TargetKind::Classes,
            ..Default::default()
        })
        .unwrap();
        let labels = data.labels.clone().unwrap();
        // Shard 0: the samples of classes 0 and 1 only (2 classes as read).
        let low: Vec<usize> = (0..90).filter(|&i| labels[i] < 2).collect();
        let rest: Vec<usize> = (0..90).filter(|&i| labels[i] == 2).collect();
        let as_read = |idx: &[usize]| {
            let s = data.select(idx);
            let l = s.labels.clone().unwrap();
            let c = l.iter().max().unwrap() + 1;
            Dataset::classes(s.x.clone(), (s.n_samples, 4, 3), l, c, s.targets).unwrap()
        };
        let (a, b) = (as_read(&low), as_read(&rest[..]));
        assert_eq!(a.n_outputs, 2);
        let fit = Fit::vector_l1()
            .loss(Loss::CrossEntropy)
            .beta_frac(0.2)
            .tol(1e-10);
        let mut order = low.clone();
        order.extend(&rest);
        let one = fit.fit(&data.select(&order)).unwrap();
        for f in on_shards(2, |m| {
            let shard = if m.rank() == 0 { &a } else { &b };
            fit.fit_sharded(shard, None, None, m).unwrap()
        }) {
            assert_eq!(f.model.header.n_outputs, 3);
            let (x, y) = (one.report.solve.objective, f.report.solve.objective);
            assert!((x - y).abs() <= 1e-10 * x.abs(), "{x} vs {y}");
        }
    }

    #[test]
    fn shards_of_different_shapes_are_refused_on_every_shard() {
        let make = |d| {
            generate(&SyntheticSpec {
                n_samples: 20,
                n_features: d,
                ..Default::default()
            })
            .unwrap()
            .0
        };
        let (a, b) = (make(3), make(4));
        let errs = on_shards(2, |m| {
            let shard = if m.rank() == 0 { &a } else { &b };
            Fit::scalar()
                .fit_sharded(shard, None, None, m)
                .unwrap_err()
                .to_string()
        });
        for e in errs {
            assert!(e.contains("same data set"), "{e}");
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
