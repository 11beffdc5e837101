//! The certified convex solve against simplex- and softmax-attention
//! training on the same data and β (issue #3; `convexformer compare`).
//!
//! The convex program is solved first, to a relative duality gap of
//! min(tol, 1e-10), so its primal value P* is a reference four orders
//! tighter than the finest threshold measured (1e-6). Then each method is
//! trained for each seed within the time budget, and every recorded point
//! gets suboptimality = objective − P* and relative suboptimality
//! = (objective − P*) / max(1, |P*|) (the normalization of the relative gap).
//!
//! The check that cannot be skipped: simplex attention is the nonconvex side
//! of the convex program (SPEC §3–4), so no simplex objective may fall below
//! the certified lower bound D (the dual value) by more than 1e-9·max(1, |P*|);
//! every recorded simplex point is checked and a violation is an error.
//! Softmax attention is a different model class: its objective can lie below
//! P*, it is reported but not checked.
//!
//! [`run_compare`] takes a [`CompareConfig`] (its `Default` is the command
//! line's defaults) and returns a [`CompareResult`]: the convex reference,
//! per-run summaries and curves, the table rows and the lower-bound check.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use crate::baselines::{
    check_lower_bound, train, Baseline, Decay, Flow, ModelKind, Objective, OptimizerKind,
    Parametrization, Precision, TrainOutcome,
};
use crate::data::Dataset;
use crate::error::{invalid, Error, Result};
use crate::loss::Loss;
use crate::operator::TokenOperator;
use crate::problem::{check_beta, Problem, Program};
use crate::recovery::Head;
use crate::report::SolveReport;
use crate::solver::{beta_max, solve, Certificate, SolverOptions, StopReason};

/// Relative suboptimality thresholds of the table.
pub const THRESHOLDS: [f64; 2] = [1e-3, 1e-6];
/// A simplex run stops once this close: nothing left to measure.
pub const STOP_REL: f64 = 1e-8;
/// β as a fraction of β_max when none is given.
pub const DEFAULT_BETA_FRAC: f64 = 0.1;
/// Why softmax attention is not held to the lower bound.
pub const SOFTMAX_NOTE: &str = "softmax attention is a different model class (SPEC §2-3): its objective can legitimately fall below the convex optimum, so the lower-bound check is not applied to it; negative suboptimality means it fits this objective better than any simplex-attention model can";

/// (objective − P*) / max(1, |P*|), P* the certified convex primal value.
pub fn relative_suboptimality(objective: f64, cert: &Certificate) -> f64 {
    (objective - cert.primal) / cert.primal.abs().max(1.0)
}

/// The regularization: β itself, or a fraction of β_max.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaChoice {
    Value(f64),
    FractionOfMax(f64),
}

impl Default for BetaChoice {
    fn default() -> Self {
        BetaChoice::FractionOfMax(DEFAULT_BETA_FRAC)
    }
}

impl BetaChoice {
    /// What can be checked before β_max is known.
    pub fn check(&self) -> Result<()> {
        match *self {
            BetaChoice::Value(b) => check_beta(b),
            BetaChoice::FractionOfMax(f) if !(f > 0.0 && f.is_finite()) => invalid(format!(
                "--beta-frac must be a positive number (a fraction of beta_max), got {f}"
            )),
            BetaChoice::FractionOfMax(_) => Ok(()),
        }
    }

    /// β for this β_max.
    pub fn resolve(&self, beta_max: f64) -> Result<f64> {
        self.check()?;
        let beta = match *self {
            BetaChoice::Value(b) => b,
            BetaChoice::FractionOfMax(f) => f * beta_max,
        };
        check_beta(beta)?;
        Ok(beta)
    }
}

/// One method of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Method {
    pub model: ModelKind,
    pub parametrization: Parametrization,
}

impl Method {
    pub const SIMPLEX_PROJECTED: Method = Method {
        model: ModelKind::Simplex,
        parametrization: Parametrization::Projected,
    };
    pub const SIMPLEX_LOGITS: Method = Method {
        model: ModelKind::Simplex,
        parametrization: Parametrization::Logits,
    };
    pub const SOFTMAX: Method = Method {
        model: ModelKind::Softmax,
        parametrization: Parametrization::Logits,
    };

    /// simplex-projected, simplex-logits or softmax.
    pub fn name(&self) -> String {
        match self.model {
            ModelKind::Simplex => format!("simplex-{}", self.parametrization.name()),
            ModelKind::Softmax => "softmax".into(),
        }
    }

    /// A comma list of simplex (with parametrization `simplex`),
    /// simplex-logits, simplex-projected, softmax; duplicates removed, order kept.
    pub fn parse_list(s: &str, simplex: Parametrization) -> Result<Vec<Method>> {
        let mut out: Vec<Method> = Vec::new();
        for m in s.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let method = match m {
                "simplex" => Method {
                    model: ModelKind::Simplex,
                    parametrization: simplex,
                },
                "simplex-logits" => Method::SIMPLEX_LOGITS,
                "simplex-projected" => Method::SIMPLEX_PROJECTED,
                "softmax" => Method::SOFTMAX,
                _ => return invalid(format!(
                    "unknown method '{m}' in --methods: use simplex, simplex-logits, simplex-projected or softmax"
                )),
            };
            if !out.contains(&method) {
                out.push(method);
            }
        }
        if out.is_empty() {
            return invalid("--methods is empty: give at least one of simplex, simplex-logits, simplex-projected, softmax");
        }
        Ok(out)
    }

    /// The peak learning rate when none is given: 0.05 for projected simplex
    /// attention, 0.2 for simplex attention with logits, 0.01 for softmax.
    pub fn default_lr(&self) -> f64 {
        match (self.model, self.parametrization) {
            (ModelKind::Simplex, Parametrization::Projected) => 0.05,
            (ModelKind::Simplex, Parametrization::Logits) => 0.2,
            (ModelKind::Softmax, _) => 0.01,
        }
    }

    /// Whether its objectives are held to the certified lower bound.
    pub fn lower_bound_applies(&self) -> bool {
        self.model == ModelKind::Simplex
    }
}

/// Everything the comparison needs besides the data.
#[derive(Clone, Debug, Serialize)]
pub struct CompareConfig {
    pub program: Program,
    pub loss: Loss,
    pub intercept: bool,
    pub beta: BetaChoice,
    /// Options of the timed convex solves; the reference solve uses
    /// tol = min(tol, 1e-10).
    pub solver: SolverOptions,
    /// Heads of the trained models (None: the convex solution's recovered
    /// heads + `extra_heads`, at least 1).
    pub heads: Option<usize>,
    pub extra_heads: usize,
    /// Seeds per method (0..seeds).
    pub seeds: usize,
    /// Training seconds per run (evaluation excluded).
    pub budget_seconds: f64,
    pub methods: Vec<Method>,
    pub optimizer: OptimizerKind,
    /// Peak learning rate (None: [`Method::default_lr`]).
    pub lr: Option<f64>,
    pub momentum: f64,
    pub warmup_steps: usize,
    pub decay: Decay,
    pub min_lr_frac: f64,
    /// Cap on optimizer steps per run (None: the budget alone).
    pub max_steps: Option<usize>,
    /// Minibatch size (None: full batch).
    pub batch_size: Option<usize>,
    pub precision: Precision,
    /// Softmax attention: key dimension (None: d).
    pub key_dim: Option<usize>,
    /// Softmax attention: the token whose output row is read (None: the last).
    pub read_token: Option<usize>,
    /// Points recorded per run.
    pub record_points: usize,
}

impl Default for CompareConfig {
    /// The defaults of `convexformer compare`.
    fn default() -> Self {
        CompareConfig {
            program: Program::Scalar,
            loss: Loss::Squared,
            intercept: false,
            beta: BetaChoice::default(),
            solver: SolverOptions::default(),
            heads: None,
            extra_heads: 2,
            seeds: 3,
            budget_seconds: 10.0,
            methods: vec![
                Method::SIMPLEX_PROJECTED,
                Method::SIMPLEX_LOGITS,
                Method::SOFTMAX,
            ],
            optimizer: OptimizerKind::Adam,
            lr: None,
            momentum: 0.9,
            warmup_steps: 20,
            decay: Decay::Cosine,
            min_lr_frac: 1e-3,
            max_steps: None,
            batch_size: None,
            precision: Precision::F64,
            key_dim: None,
            read_token: None,
            record_points: 200,
        }
    }
}

impl CompareConfig {
    /// What can be checked before any data is read.
    pub fn validate(&self) -> Result<()> {
        self.beta.check()?;
        if self.seeds == 0 {
            return invalid("--seeds must be at least 1");
        }
        if !(self.budget_seconds > 0.0 && self.budget_seconds.is_finite()) {
            return invalid(format!(
                "--budget-seconds must be a positive number of seconds, got {}",
                self.budget_seconds
            ));
        }
        if self.heads == Some(0) {
            return invalid("--heads must be at least 1");
        }
        if let Some(lr) = self.lr {
            if !(lr > 0.0 && lr.is_finite()) {
                return invalid(format!("--lr must be a positive number, got {lr}"));
            }
        }
        if self.methods.is_empty() {
            return invalid("no methods to compare: give at least one of simplex, simplex-logits, simplex-projected, softmax");
        }
        if self.record_points == 0 {
            return invalid("record_points must be at least 1");
        }
        self.solver.validate()
    }

    /// The training configuration of `method` (seed 0).
    pub fn baseline(&self, method: &Method, heads: usize) -> Baseline {
        Baseline {
            model: method.model,
            heads,
            parametrization: method.parametrization,
            key_dim: self.key_dim,
            read_token: self.read_token,
            precision: self.precision,
            optimizer: self.optimizer,
            lr: self.lr.unwrap_or(method.default_lr()),
            momentum: self.momentum,
            warmup_steps: self.warmup_steps,
            decay: self.decay,
            min_lr_frac: self.min_lr_frac,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            seed: 0,
            budget_seconds: Some(self.budget_seconds),
            record_points: self.record_points,
        }
    }
}

/// Seconds of a certified solve to a relative gap (None: not reached).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ConvexReach {
    pub relative_gap: f64,
    pub seconds: Option<f64>,
}

/// The certified convex reference.
#[derive(Clone, Debug, Serialize)]
pub struct ConvexResult {
    pub certificate: Certificate,
    /// The reference solve's tolerance, min(tol, 1e-10).
    pub tolerance: f64,
    pub converged: bool,
    #[serde(skip)]
    pub stop: StopReason,
    pub seconds: f64,
    pub iterations: usize,
    pub data_passes: f64,
    pub active_tokens: Vec<usize>,
    pub n_heads: usize,
    pub heads: Vec<Head>,
    pub recovery_relative_difference: f64,
    pub train_error: f64,
    pub test_error: Option<f64>,
    /// Per threshold: a solve to that relative gap, fastest of 3.
    pub time_to: Vec<ConvexReach>,
}

/// When a run first reached a relative suboptimality (None: not reached).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Reach {
    pub relative_suboptimality: f64,
    pub seconds: Option<f64>,
    pub steps: Option<usize>,
}

/// One trained run, summarized.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub method: String,
    pub seed: u64,
    pub steps: usize,
    pub seconds: f64,
    pub steps_per_second: f64,
    pub final_objective: f64,
    pub final_relative_suboptimality: f64,
    pub best_relative_suboptimality: f64,
    /// Per threshold: seconds and steps of the first recorded point at or
    /// below it (null: not reached).
    pub time_to: Vec<Reach>,
    pub final_train_error: f64,
    pub final_test_error: Option<f64>,
    pub diverged: bool,
    pub stopped_at_optimum: bool,
    pub lower_bound_checked: bool,
}

impl RunSummary {
    /// The summary of `o` against the certificate `cert`.
    pub fn new(o: &TrainOutcome, cert: &Certificate, checked: bool) -> RunSummary {
        let rels: Vec<f64> = o
            .points
            .iter()
            .map(|p| relative_suboptimality(p.objective, cert))
            .collect();
        let last = o.points.last().expect("every run records its end");
        RunSummary {
            method: o.method.clone(),
            seed: o.seed,
            steps: o.steps,
            seconds: o.seconds,
            steps_per_second: o.steps as f64 / o.seconds.max(1e-12),
            final_objective: o.final_objective,
            final_relative_suboptimality: relative_suboptimality(o.final_objective, cert),
            best_relative_suboptimality: rels.iter().cloned().fold(f64::INFINITY, f64::min),
            time_to: THRESHOLDS
                .iter()
                .map(|&t| {
                    let hit = o.points.iter().zip(&rels).find(|(_, r)| **r <= t);
                    Reach {
                        relative_suboptimality: t,
                        seconds: hit.map(|(p, _)| p.seconds),
                        steps: hit.map(|(p, _)| p.step),
                    }
                })
                .collect(),
            final_train_error: last.train_error,
            final_test_error: last.test_error,
            diverged: o.diverged,
            stopped_at_optimum: o.stopped_early,
            lower_bound_checked: checked,
        }
    }
}

/// One trained run in full: its method and what training recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunCurve {
    pub method: Method,
    pub outcome: TrainOutcome,
}

/// A method's training configuration (seed 0; each run changes the seed).
#[derive(Clone, Debug, Serialize)]
pub struct MethodConfig {
    pub method: String,
    pub config: Baseline,
}

/// A time-to-threshold cell of the table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TableReach {
    pub relative_suboptimality: f64,
    /// Median seconds over the runs that reached it (None: none did).
    pub seconds: Option<f64>,
    pub reached: usize,
    pub runs: usize,
}

/// A row of the table: the certified convex solve, or a method over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableRow {
    pub method: String,
    /// The convex row: times are certified solves, suboptimality is 0 by
    /// definition and `best_relative_suboptimality` is the reference solve's
    /// relative gap.
    pub certified: bool,
    /// Median over seeds (None for the convex row).
    pub steps_per_second: Option<f64>,
    /// Median over seeds.
    pub final_relative_suboptimality: f64,
    /// Best over all seeds.
    pub best_relative_suboptimality: f64,
    pub time_to: Vec<TableReach>,
}

/// The outcome of the lower-bound check on simplex attention (a violation
/// is an error, so a returned result has passed it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LowerBoundCheck {
    /// The certified dual value D.
    pub dual: f64,
    /// 1e-9·max(1, |P*|).
    pub tolerance: f64,
    /// D − tolerance: no simplex objective may be below it.
    pub bound: f64,
    /// Recorded simplex-attention points checked.
    pub checked_points: usize,
    /// min over checked points of objective − D (None: nothing checked).
    pub min_margin: Option<f64>,
    pub passed: bool,
}

impl LowerBoundCheck {
    fn new(cert: &Certificate) -> Self {
        let tolerance = 1e-9 * cert.primal.abs().max(1.0);
        LowerBoundCheck {
            dual: cert.dual,
            tolerance,
            bound: cert.dual - tolerance,
            checked_points: 0,
            min_margin: None,
            passed: true,
        }
    }

    /// The check in words.
    pub fn description(&self) -> String {
        format!(
            "every recorded simplex-attention point: objective >= dual - 1e-9 max(1, |P*|) = {:.12e}",
            self.bound
        )
    }
}

/// Everything the comparison measured.
#[derive(Clone, Debug, Serialize)]
pub struct CompareResult {
    pub beta: f64,
    pub beta_max: f64,
    /// Heads of the trained models.
    pub heads: usize,
    pub seeds: usize,
    pub convex: ConvexResult,
    pub methods: Vec<MethodConfig>,
    /// Per run, in order (methods × seeds).
    pub runs: Vec<RunSummary>,
    /// Per run, the same order as `runs`.
    pub curves: Vec<RunCurve>,
    /// The convex row, then one row per method.
    pub table: Vec<TableRow>,
    pub lower_bound: LowerBoundCheck,
    /// Stopped by the solver options' interrupt (Ctrl-C): `runs` holds the
    /// runs finished before it (none if the convex solve was stopped).
    pub interrupted: bool,
}

/// What [`run_compare`] reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum CompareEvent<'a> {
    /// The certified convex solve is done (reported before the recovery check).
    Convex {
        convex: &'a ConvexResult,
        beta: f64,
        beta_max: f64,
        heads: usize,
    },
    /// A run starts.
    RunStarted { method: &'a Method, seed: u64 },
    /// A run is done.
    RunFinished(&'a RunSummary),
    /// Everything finished so far, after each run (to write as it goes).
    Progress(&'a CompareResult),
}

/// Seconds of a certified solve to relative gap `tol` (the fastest of three:
/// these solves take milliseconds, where a busy machine's noise is large).
fn convex_time_to(problem: &Problem, base: &SolverOptions, tol: f64) -> Result<ConvexReach> {
    let opts = SolverOptions {
        tol,
        ..base.clone()
    };
    let mut best = (f64::INFINITY, false);
    for _ in 0..3 {
        let s = solve(problem, &opts, None)?;
        if s.seconds < best.0 {
            best = (s.seconds, s.converged());
        }
    }
    Ok(ConvexReach {
        relative_gap: tol,
        seconds: best.1.then_some(best.0),
    })
}

/// Runs the comparison on `data`, with errors measured on `test` when given.
/// `on_event` sees the convex solve and each run as they finish.
pub fn run_compare(
    data: &Dataset,
    cfg: &CompareConfig,
    test: Option<&Dataset>,
    on_event: impl FnMut(CompareEvent<'_>),
) -> Result<CompareResult> {
    run_compare_resumed(data, cfg, test, Vec::new(), on_event)
}

/// [`run_compare`] after a stop: `done` are the runs the stopped comparison
/// finished (its `curves`, in order); they are kept, checked against the
/// recomputed certificate and not trained again. Raising
/// `cfg.solver.interrupt` stops the comparison between two training steps;
/// the run in progress is dropped and the result says `interrupted`.
pub fn run_compare_resumed(
    data: &Dataset,
    cfg: &CompareConfig,
    test: Option<&Dataset>,
    done: Vec<RunCurve>,
    mut on_event: impl FnMut(CompareEvent<'_>),
) -> Result<CompareResult> {
    cfg.validate()?;
    cfg.program.check(data.n_outputs)?;
    let stop = cfg.solver.interrupt.clone().unwrap_or_default();

    // 1. The certified convex solve.
    crate::memory::check_token_program(data, data.n_tokens, cfg.loss, cfg.solver.solver)?;
    let op = TokenOperator::new(data, None);
    let mut problem = Problem::new(op, cfg.loss, cfg.program.penalty(), 1.0, cfg.intercept)?;
    let bmax = beta_max(&problem);
    problem.beta = cfg.beta.resolve(bmax)?;
    let opts = SolverOptions {
        tol: cfg.solver.tol.min(1e-10),
        ..cfg.solver.clone()
    };
    let sol = solve(&problem, &opts, None)?;
    let report = SolveReport::new(&problem, &sol, bmax, test);
    let cert = sol.certificate;
    let time_to = if sol.stop == StopReason::Interrupted {
        Vec::new()
    } else {
        THRESHOLDS
            .iter()
            .map(|&t| convex_time_to(&problem, &cfg.solver, t))
            .collect::<Result<Vec<_>>>()?
    };
    let convex = ConvexResult {
        certificate: cert,
        tolerance: opts.tol,
        converged: sol.converged(),
        stop: sol.stop,
        seconds: sol.seconds,
        iterations: sol.iterations,
        data_passes: sol.data_passes,
        active_tokens: report.active_tokens,
        n_heads: report.n_heads,
        heads: report.heads,
        recovery_relative_difference: report.recovery_relative_difference,
        train_error: report.train_error,
        test_error: report.validation_error,
        time_to,
    };
    let heads = cfg
        .heads
        .unwrap_or((convex.n_heads + cfg.extra_heads).max(1));
    on_event(CompareEvent::Convex {
        convex: &convex,
        beta: problem.beta,
        beta_max: bmax,
        heads,
    });
    if convex.recovery_relative_difference > 1e-9 {
        return Err(Error::Invalid(format!(
            "the recovered convex heads differ from the convex objective by {:.3e} (relative): this is a bug, please report it",
            convex.recovery_relative_difference
        )));
    }
    let mut result = CompareResult {
        beta: problem.beta,
        beta_max: bmax,
        heads,
        seeds: cfg.seeds,
        table: table_rows(&[], &cfg.methods, &convex),
        convex,
        methods: cfg
            .methods
            .iter()
            .map(|m| MethodConfig {
                method: m.name(),
                config: cfg.baseline(m, heads),
            })
            .collect(),
        runs: Vec::new(),
        curves: Vec::new(),
        lower_bound: LowerBoundCheck::new(&cert),
        interrupted: sol.stop == StopReason::Interrupted,
    };
    if result.interrupted {
        return Ok(result);
    }

    // 2. The trained baselines, methods × seeds; the finished ones kept.
    let obj = Objective {
        loss: cfg.loss,
        beta: problem.beta,
        output_norm: cfg.program.penalty().into(),
        intercept: cfg.intercept,
    };
    let plan: Vec<(Method, u64)> = cfg
        .methods
        .iter()
        .flat_map(|&m| (0..cfg.seeds as u64).map(move |seed| (m, seed)))
        .collect();
    if done.len() > plan.len() {
        return invalid(format!(
            "{} finished runs for a comparison of {}",
            done.len(),
            plan.len()
        ));
    }
    let mut done = done.into_iter();
    for &(m, seed) in &plan {
        let checked = m.lower_bound_applies();
        let what = |step: usize| format!("{} (seed {seed}, step {step})", m.name());
        let lower_bound = &mut result.lower_bound;
        let mut check = |objective: f64, step: usize| -> Result<bool> {
            check_lower_bound(objective, &cert, &what(step))?;
            lower_bound.checked_points += 1;
            let margin = objective - cert.dual;
            lower_bound.min_margin = Some(lower_bound.min_margin.map_or(margin, |v| v.min(margin)));
            Ok(relative_suboptimality(objective, &cert) <= STOP_REL)
        };
        let out = if let Some(kept) = done.next() {
            if kept.method != m || kept.outcome.seed != seed {
                return invalid(format!(
                    "the finished runs do not follow the plan: {} seed {} where {} seed {seed} was expected",
                    kept.method.name(),
                    kept.outcome.seed,
                    m.name()
                ));
            }
            if checked {
                for p in &kept.outcome.points {
                    check(p.objective, p.step)?;
                }
            }
            kept.outcome
        } else {
            if stop.requested() {
                result.interrupted = true;
                break;
            }
            on_event(CompareEvent::RunStarted { method: &m, seed });
            let run_cfg = Baseline {
                seed,
                ..cfg.baseline(&m, heads)
            };
            let out = train(&run_cfg, &obj, data, test, |p| {
                if stop.requested() {
                    return Ok(Flow::Stop);
                }
                if checked && check(p.objective, p.step)? {
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            })?;
            if stop.requested() {
                // Cut short by the signal, not by its budget: not a result.
                result.interrupted = true;
                break;
            }
            out
        };
        let s = RunSummary::new(&out, &cert, checked);
        on_event(CompareEvent::RunFinished(&s));
        result.runs.push(s);
        result.curves.push(RunCurve {
            method: m,
            outcome: out,
        });
        // 3. The table, over the runs so far.
        result.table = table_rows(&result.runs, &cfg.methods, &result.convex);
        on_event(CompareEvent::Progress(&result));
    }
    Ok(result)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The convex row, then per method: medians over seeds; times are medians
/// over the seeds that reached the threshold.
fn table_rows(runs: &[RunSummary], methods: &[Method], convex: &ConvexResult) -> Vec<TableRow> {
    let mut rows = vec![TableRow {
        method: "convex (certified)".into(),
        certified: true,
        steps_per_second: None,
        final_relative_suboptimality: 0.0,
        best_relative_suboptimality: convex.certificate.relative_gap,
        time_to: convex
            .time_to
            .iter()
            .map(|r| TableReach {
                relative_suboptimality: r.relative_gap,
                seconds: r.seconds,
                reached: r.seconds.is_some() as usize,
                runs: 1,
            })
            .collect(),
    }];
    for m in methods {
        let rs: Vec<&RunSummary> = runs.iter().filter(|r| r.method == m.name()).collect();
        if rs.is_empty() {
            continue;
        }
        let time_to = THRESHOLDS
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                let hit: Vec<f64> = rs.iter().filter_map(|r| r.time_to[k].seconds).collect();
                TableReach {
                    relative_suboptimality: t,
                    reached: hit.len(),
                    runs: rs.len(),
                    seconds: (!hit.is_empty()).then(|| median(hit)),
                }
            })
            .collect();
        rows.push(TableRow {
            method: m.name(),
            certified: false,
            steps_per_second: Some(median(rs.iter().map(|r| r.steps_per_second).collect())),
            final_relative_suboptimality: median(
                rs.iter().map(|r| r.final_relative_suboptimality).collect(),
            ),
            best_relative_suboptimality: rs
                .iter()
                .map(|r| r.best_relative_suboptimality)
                .fold(f64::INFINITY, f64::min),
            time_to,
        });
    }
    rows
}

impl CompareResult {
    /// The table as text (printed by the command line, and in summary.json).
    pub fn table_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<20} {:>10} {:>14} {:>14} {:>22} {:>22}",
            "method", "steps/s", "final rel.sub", "best rel.sub", "time to 1e-3", "time to 1e-6"
        );
        for r in &self.table {
            let time = |k: usize| {
                let c = &r.time_to[k];
                match (c.seconds, r.certified) {
                    (None, _) => "not reached".to_string(),
                    (Some(t), true) => format!("{t:.3} s (certified)"),
                    (Some(t), false) => format!("{t:.3} s ({}/{})", c.reached, c.runs),
                }
            };
            if r.certified {
                let _ = writeln!(
                    s,
                    "{:<20} {:>10} {:>14} {:>14} {:>22} {:>22}",
                    r.method,
                    "-",
                    "0 (reference)",
                    format!("gap {:.1e}", r.best_relative_suboptimality),
                    time(0),
                    time(1)
                );
            } else {
                let _ = writeln!(
                    s,
                    "{:<20} {:>10.0} {:>14.3e} {:>14.3e} {:>22} {:>22}",
                    r.method,
                    r.steps_per_second.unwrap_or(f64::NAN),
                    r.final_relative_suboptimality,
                    r.best_relative_suboptimality,
                    time(0),
                    time(1)
                );
            }
        }
        let _ = writeln!(
            s,
            "(steps/s and final: median over {} seed(s); best: over all seeds; times: median over the seeds that reached it, training seconds at the first recorded point; convex: a solve to that certified relative gap, fastest of 3; its best column is the reference solve's relative gap)",
            self.seeds
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic;

    fn tiny() -> (Dataset<'static>, Dataset<'static>) {
        let spec = synthetic::parse("synthetic:N=80,n=4,d=3,active=2,seed=1").unwrap();
        let (ds, _) = synthetic::generate(&spec).unwrap();
        ds.split(0.25, 0).unwrap()
    }

    #[test]
    fn methods_parse() {
        let m = Method::parse_list("simplex, softmax,simplex", Parametrization::Logits).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name(), "simplex-logits");
        assert!(Method::parse_list("mlp", Parametrization::Logits)
            .unwrap_err()
            .to_string()
            .contains("unknown method 'mlp'"));
        assert!(Method::parse_list(" , ", Parametrization::Logits).is_err());
        assert_eq!(
            CompareConfig::default()
                .methods
                .iter()
                .map(Method::name)
                .collect::<Vec<_>>(),
            ["simplex-projected", "simplex-logits", "softmax"]
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = CompareConfig::default();
        ok.validate().unwrap();
        for bad in [
            CompareConfig {
                heads: Some(0),
                ..ok.clone()
            },
            CompareConfig {
                lr: Some(-1.0),
                ..ok.clone()
            },
            CompareConfig {
                beta: BetaChoice::Value(0.0),
                ..ok.clone()
            },
            CompareConfig {
                beta: BetaChoice::FractionOfMax(f64::NAN),
                ..ok.clone()
            },
            CompareConfig {
                seeds: 0,
                ..ok.clone()
            },
            CompareConfig {
                budget_seconds: 0.0,
                ..ok.clone()
            },
            CompareConfig {
                methods: vec![],
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
            let (train, _) = tiny();
            assert!(run_compare(&train, &bad, None, |_| {}).is_err());
        }
    }

    #[test]
    fn compare_runs_end_to_end_on_tiny_data() {
        let (train, test) = tiny();
        let cfg = CompareConfig {
            seeds: 1,
            budget_seconds: 0.2,
            methods: Method::parse_list("simplex,softmax", Parametrization::Projected).unwrap(),
            ..Default::default()
        };
        let mut events = Vec::new();
        let r = run_compare(&train, &cfg, Some(&test), |e| {
            events.push(match e {
                CompareEvent::Convex { .. } => "convex".to_string(),
                CompareEvent::RunStarted { method, seed } => {
                    format!("start {} {seed}", method.name())
                }
                CompareEvent::RunFinished(s) => format!("done {}", s.method),
                CompareEvent::Progress(r) => format!("{} runs", r.runs.len()),
            })
        })
        .unwrap();
        assert_eq!(
            events,
            [
                "convex",
                "start simplex-projected 0",
                "done simplex-projected",
                "1 runs",
                "start softmax 0",
                "done softmax",
                "2 runs"
            ]
        );
        assert!(!r.interrupted);
        // The convex reference is certified.
        let c = &r.convex;
        assert!(c.converged && c.certificate.relative_gap <= 1e-10);
        assert!(c.certificate.dual <= c.certificate.primal + 1e-12);
        assert!((r.beta - 0.1 * r.beta_max).abs() <= 1e-12 * r.beta_max);
        assert!(c.n_heads >= 1 && c.test_error.is_some());
        assert_eq!(r.heads, c.n_heads + 2);
        assert_eq!(c.time_to.len(), 2);
        // One run per method and seed, curves alongside.
        assert_eq!(r.runs.len(), 2);
        assert_eq!(r.curves.len(), 2);
        assert_eq!(r.runs[0].method, "simplex-projected");
        assert_eq!(r.runs[1].method, "softmax");
        assert!(r.runs[0].lower_bound_checked && !r.runs[1].lower_bound_checked);
        for (s, c) in r.runs.iter().zip(&r.curves) {
            assert_eq!(s.method, c.method.name());
            assert!(c.outcome.points.len() >= 2);
            assert_eq!(s.time_to.len(), 2);
            assert!(s.final_test_error.is_some());
        }
        // Simplex attention never beats the certified bound.
        let lb = &r.lower_bound;
        assert!(lb.passed && lb.checked_points == r.curves[0].outcome.points.len());
        assert!(lb.min_margin.unwrap() >= -lb.tolerance);
        assert!(r.runs[0].best_relative_suboptimality >= -1e-9);
        // The table: the convex row, then each method.
        let names: Vec<&str> = r.table.iter().map(|t| t.method.as_str()).collect();
        assert_eq!(
            names,
            ["convex (certified)", "simplex-projected", "softmax"]
        );
        assert!(r.table[0].certified && r.table[0].steps_per_second.is_none());
        let text = r.table_text();
        assert_eq!(text.lines().count(), 5);
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("convex (certified)"));
        // Everything serializes (summary.json is built from it).
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["convex"]["certificate"]["primal"].is_f64());
        assert!(v["convex"].get("stop").is_none());
        assert_eq!(v["methods"][0]["method"], "simplex-projected");
        assert_eq!(v["runs"][1]["method"], "softmax");
    }

    #[test]
    fn a_stopped_comparison_keeps_its_runs_and_resumes_without_retraining_them() {
        let (train, test) = tiny();
        let stop = crate::solver::Interrupt::new();
        let cfg = CompareConfig {
            seeds: 2,
            budget_seconds: 0.1,
            methods: Method::parse_list("simplex", Parametrization::Projected).unwrap(),
            solver: SolverOptions {
                interrupt: Some(stop.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        // Ctrl-C while the first run finishes: the second is not started.
        let first = run_compare(&train, &cfg, Some(&test), |e| {
            if let CompareEvent::RunFinished(_) = e {
                stop.request();
            }
        })
        .unwrap();
        assert!(first.interrupted);
        assert_eq!(first.runs.len(), 1);
        stop.clear();

        let mut started = Vec::new();
        let done = first.curves.clone();
        let r = run_compare_resumed(&train, &cfg, Some(&test), done, |e| {
            if let CompareEvent::RunStarted { seed, .. } = e {
                started.push(seed);
            }
        })
        .unwrap();
        assert!(!r.interrupted);
        assert_eq!(started, [1], "only the unfinished run is trained");
        assert_eq!(r.runs.len(), 2);
        assert_eq!(
            r.runs[0], first.runs[0],
            "a kept run is summarized as before"
        );
        assert_eq!(
            r.lower_bound.checked_points,
            r.curves
                .iter()
                .map(|c| c.outcome.points.len())
                .sum::<usize>()
        );

        // Runs that are not the plan's are refused.
        let mut wrong = first.curves.clone();
        wrong[0].outcome.seed = 1;
        let err = run_compare_resumed(&train, &cfg, Some(&test), wrong, |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not follow the plan"), "{err}");
        // A stop during the convex solve: no runs.
        stop.request();
        let r = run_compare(&train, &cfg, Some(&test), |_| {}).unwrap();
        assert!(r.interrupted && r.runs.is_empty());
    }
}
