//! `convexformer compare`: the certified convex solve against simplex- and
//! softmax-attention training on the same data and β (issue #3).
//!
//! The convex program is solved first, to a relative duality gap of
//! min(--tol, 1e-10), so its primal value P* is a reference four orders
//! tighter than the finest threshold measured (1e-6). Then each method is
//! trained for each seed within the time budget, and every recorded point
//! gets suboptimality = objective − P* and relative suboptimality
//! = (objective − P*) / max(1, |P*|) (the normalization of the relative gap).
//!
//! The check that cannot be skipped: simplex attention is the nonconvex side
//! of the convex program (SPEC §3–4), so no simplex objective may fall below
//! the certified lower bound D (the dual value) by more than 1e-9·max(1, |P*|);
//! every recorded simplex point is checked and a violation fails the command.
//! Softmax attention is a different model class: its objective can lie below
//! P*, it is reported but not checked.

use super::common::{
    command_line, data_json, prepare_out_dir, write_json, BetaArgs, Loaded, ProblemArgs,
};
use anyhow::{bail, Context};
use clap::Args;
use convexformer::baselines::{
    check_lower_bound, train, Baseline, Decay, Flow, ModelKind, Objective, OptimizerKind,
    Parametrization, Precision, TrainOutcome,
};
use convexformer::operator::TokenOperator;
use convexformer::plot::{heatmap, line_plot, Heatmap, LinePlot, Series};
use convexformer::problem::Problem;
use convexformer::report::SolveReport;
use convexformer::solver::{beta_max, solve, Certificate, SolverOptions};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Relative suboptimality thresholds of the table.
const THRESHOLDS: [f64; 2] = [1e-3, 1e-6];
/// A simplex run stops once this close: nothing left to measure.
const STOP_REL: f64 = 1e-8;

#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    /// β, or β as a fraction of β_max (default 0.1 when neither is given).
    #[command(flatten)]
    pub beta: BetaArgs,
    /// Heads of the trained models (default: the convex solution's recovered
    /// heads + --extra-heads, at least 1).
    #[arg(long)]
    pub heads: Option<usize>,
    /// Heads added to the convex solution's count when --heads is not given.
    #[arg(long, default_value_t = 2)]
    pub extra_heads: usize,
    /// Seeds per method.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Training seconds per run (evaluation excluded).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub budget_seconds: f64,
    /// Comma-separated: simplex (with --parametrization), simplex-logits,
    /// simplex-projected, softmax.
    #[arg(long, default_value = "simplex-projected,simplex-logits,softmax")]
    pub methods: String,
    /// How `simplex` keeps attention rows in the simplex: projected (projected
    /// gradient) or logits (softmax of logits).
    #[arg(long, default_value = "projected")]
    pub parametrization: String,
    /// adam, adamw or sgd (with momentum).
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Peak learning rate (default: 0.05 for projected simplex attention, 0.2
    /// for simplex attention with logits, 0.01 for softmax attention).
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Decay after warmup: cosine, linear or constant (over the step cap or the budget).
    #[arg(long, default_value = "cosine")]
    pub decay: String,
    /// Final learning rate as a fraction of the peak.
    #[arg(long, default_value_t = 1e-3)]
    pub min_lr_frac: f64,
    /// Cap on optimizer steps per run (default: the time budget alone).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Minibatch size (default: full batch).
    #[arg(long)]
    pub batch: Option<usize>,
    /// f32 or f64.
    #[arg(long, default_value = "f64")]
    pub dtype: String,
    /// Softmax attention: key dimension d_k (default d).
    #[arg(long)]
    pub key_dim: Option<usize>,
    /// Softmax attention: the token whose output row is read (default the last).
    #[arg(long)]
    pub read_token: Option<usize>,
    /// Output folder (compare.csv, summary.json, plots).
    #[arg(long, default_value = "convexformer-compare")]
    pub out: PathBuf,
    /// Overwrite convexformer's files in an existing output folder.
    #[arg(long)]
    pub force: bool,
}

/// One method of the comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Method {
    model: ModelKind,
    parametrization: Parametrization,
}

impl Method {
    fn name(&self) -> String {
        match self.model {
            ModelKind::Simplex => format!("simplex-{}", self.parametrization.name()),
            ModelKind::Softmax => "softmax".into(),
        }
    }
}

fn parse_methods(s: &str, par: Parametrization) -> anyhow::Result<Vec<Method>> {
    let mut out: Vec<Method> = Vec::new();
    for m in s.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let method = match m {
            "simplex" => Method {
                model: ModelKind::Simplex,
                parametrization: par,
            },
            "simplex-logits" => Method {
                model: ModelKind::Simplex,
                parametrization: Parametrization::Logits,
            },
            "simplex-projected" => Method {
                model: ModelKind::Simplex,
                parametrization: Parametrization::Projected,
            },
            "softmax" => Method {
                model: ModelKind::Softmax,
                parametrization: Parametrization::Logits,
            },
            _ => bail!(
                "unknown method '{m}' in --methods: use simplex, simplex-logits, simplex-projected or softmax"
            ),
        };
        if !out.contains(&method) {
            out.push(method);
        }
    }
    if out.is_empty() {
        bail!("--methods is empty: give at least one of simplex, simplex-logits, simplex-projected, softmax");
    }
    Ok(out)
}

/// What one run reports in summary.json.
#[derive(serde::Serialize)]
struct RunSummary {
    method: String,
    seed: u64,
    steps: usize,
    seconds: f64,
    steps_per_second: f64,
    final_objective: f64,
    final_relative_suboptimality: f64,
    best_relative_suboptimality: f64,
    /// Per threshold: seconds and steps of the first recorded point at or
    /// below it (null: not reached).
    time_to: Vec<Reach>,
    final_train_error: f64,
    final_test_error: Option<f64>,
    diverged: bool,
    stopped_at_optimum: bool,
    lower_bound_checked: bool,
}

#[derive(Clone, Copy, serde::Serialize)]
struct Reach {
    relative_suboptimality: f64,
    seconds: Option<f64>,
    steps: Option<usize>,
}

fn rel_subopt(objective: f64, cert: &Certificate) -> f64 {
    (objective - cert.primal) / cert.primal.abs().max(1.0)
}

fn summarize(o: &TrainOutcome, cert: &Certificate, checked: bool) -> RunSummary {
    let rels: Vec<f64> = o
        .points
        .iter()
        .map(|p| rel_subopt(p.objective, cert))
        .collect();
    let last = o.points.last().expect("every run records its end");
    RunSummary {
        method: o.method.clone(),
        seed: o.seed,
        steps: o.steps,
        seconds: o.seconds,
        steps_per_second: o.steps as f64 / o.seconds.max(1e-12),
        final_objective: o.final_objective,
        final_relative_suboptimality: rel_subopt(o.final_objective, cert),
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

/// Seconds of a certified solve to relative gap `tol` (the fastest of three:
/// these solves take milliseconds, where a busy machine's noise is large).
fn convex_time_to(
    problem: &Problem,
    base: &SolverOptions,
    tol: f64,
) -> anyhow::Result<(f64, bool)> {
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
    Ok(best)
}

pub fn run(a: CompareArgs) -> anyhow::Result<()> {
    // Everything that can be checked before loading data.
    let program = a.problem.program()?;
    let loss = a.problem.loss()?;
    a.beta.check(Some(0.1))?;
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if !(a.budget_seconds > 0.0 && a.budget_seconds.is_finite()) {
        bail!(
            "--budget-seconds must be a positive number of seconds, got {}",
            a.budget_seconds
        );
    }
    if a.heads == Some(0) {
        bail!("--heads must be at least 1");
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            bail!("--lr must be a positive number, got {lr}");
        }
    }
    let par = Parametrization::parse(&a.parametrization)?;
    let methods = parse_methods(&a.methods, par)?;
    let optimizer = OptimizerKind::parse(&a.optimizer)?;
    let precision = Precision::parse(&a.dtype)?;
    let decay = Decay::parse(&a.decay)?;
    let base_opts = a.problem.solver_options()?;

    let mut loaded = a.problem.load()?;
    let mut split_note = None;
    if loaded.val.is_none() {
        let (t, v) = loaded.train.split(0.25, a.problem.split_seed)?;
        split_note = Some(format!(
            "no --val or --val-frac: held out 25% ({} samples, split seed {}) as test data",
            v.n_samples, a.problem.split_seed
        ));
        loaded.train = t;
        loaded.val = Some(v);
    }
    let Loaded {
        train: data, val, ..
    } = &loaded;
    let test = val.as_ref();
    prepare_out_dir(&a.out, a.force)?;

    // 1. The certified convex solve.
    let op = TokenOperator::new(data, None);
    let mut problem = Problem::new(op, loss, program.penalty(), 1.0, a.problem.intercept)?;
    let bmax = beta_max(&problem);
    problem.beta = a.beta.resolve(bmax, Some(0.1))?;
    let opts = SolverOptions {
        tol: base_opts.tol.min(1e-10),
        ..base_opts.clone()
    };
    let sol = solve(&problem, &opts, None)?;
    let report = SolveReport::new(&problem, &sol, bmax, test);
    let cert = sol.certificate;
    let convex_times: Vec<(f64, bool)> = THRESHOLDS
        .iter()
        .map(|&t| convex_time_to(&problem, &base_opts, t))
        .collect::<anyhow::Result<_>>()?;
    let (n_samples, n, d, c) = data.shape();
    println!(
        "convexformer compare: {} program, {} loss, {n_samples} training samples of {n} tokens x {d} features, {c} output(s)",
        program.name(),
        loss.name()
    );
    if let Some(note) = &split_note {
        println!("{note}");
    }
    println!(
        "convex (certified): beta {:.4e} ({:.3} of beta_max), P* = {:.12e}, dual {:.12e}, relative gap {:.1e} in {:.3} s; active tokens {:?}; {} heads recovered (nonconvex objective differs by {:.1e})",
        problem.beta,
        problem.beta / bmax,
        cert.primal,
        cert.dual,
        cert.relative_gap,
        sol.seconds,
        report.active_tokens,
        report.n_heads,
        report.recovery_relative_difference
    );
    if !sol.converged() {
        eprintln!(
            "warning: the convex solve stopped ({:?}) at relative gap {:.1e} above its tolerance {:.0e}: suboptimality is measured against its primal value; the lower-bound check uses its dual value, which stays valid",
            sol.stop, cert.relative_gap, opts.tol
        );
    }
    if report.recovery_relative_difference > 1e-9 {
        bail!(
            "the recovered convex heads differ from the convex objective by {:.3e} (relative): this is a bug, please report it",
            report.recovery_relative_difference
        );
    }

    // 2. The trained baselines.
    let heads = a.heads.unwrap_or((report.n_heads + a.extra_heads).max(1));
    let obj = Objective {
        loss,
        beta: problem.beta,
        output_norm: program.penalty().into(),
        intercept: a.problem.intercept,
    };
    println!(
        "training {} method(s) x {} seed(s), {heads} heads, {} {}, {} budget {} s per run{}",
        methods.len(),
        a.seeds,
        optimizer.name(),
        precision.name(),
        a.batch
            .map_or("full batch".to_string(), |b| format!("batch {b}")),
        a.budget_seconds,
        a.steps
            .map_or(String::new(), |s| format!(", at most {s} steps"))
    );
    let mut csv = String::from(
        "method,seed,step,seconds,objective,suboptimality,relative_suboptimality,train_error,test_error\n",
    );
    let mut outcomes: Vec<(Method, TrainOutcome)> = Vec::new();
    let mut summaries = Vec::new();
    let mut configs = Vec::new();
    for m in &methods {
        let cfg0 = Baseline {
            model: m.model,
            heads,
            parametrization: m.parametrization,
            key_dim: a.key_dim,
            read_token: a.read_token,
            precision,
            optimizer,
            lr: a.lr.unwrap_or(match (m.model, m.parametrization) {
                (ModelKind::Simplex, Parametrization::Projected) => 0.05,
                (ModelKind::Simplex, Parametrization::Logits) => 0.2,
                (ModelKind::Softmax, _) => 0.01,
            }),
            momentum: a.momentum,
            warmup_steps: a.warmup,
            decay,
            min_lr_frac: a.min_lr_frac,
            max_steps: a.steps,
            batch_size: a.batch,
            seed: 0,
            budget_seconds: Some(a.budget_seconds),
            record_points: 200,
        };
        configs.push(serde_json::json!({ "method": m.name(), "config": cfg0 }));
        for seed in 0..a.seeds as u64 {
            let cfg = Baseline {
                seed,
                ..cfg0.clone()
            };
            let checked = m.model == ModelKind::Simplex;
            let what = |step: usize| format!("{} (seed {seed}, step {step})", m.name());
            let out = train(&cfg, &obj, data, test, |p| {
                if checked {
                    check_lower_bound(p.objective, &cert, &what(p.step))?;
                    if rel_subopt(p.objective, &cert) <= STOP_REL {
                        return Ok(Flow::Stop);
                    }
                }
                Ok(Flow::Continue)
            })
            .with_context(|| format!("training {} with seed {seed}", m.name()))?;
            for p in &out.points {
                writeln!(
                    csv,
                    "{},{},{},{},{},{},{},{},{}",
                    out.method,
                    seed,
                    p.step,
                    p.seconds,
                    p.objective,
                    p.objective - cert.primal,
                    rel_subopt(p.objective, &cert),
                    p.train_error,
                    p.test_error.map(|v| v.to_string()).unwrap_or_default()
                )?;
            }
            let s = summarize(&out, &cert, checked);
            println!(
                "  {:<18} seed {seed}: {:>7} steps, {:>8.0} steps/s, final relative suboptimality {:>10.3e}, best {:>10.3e}{}",
                s.method,
                s.steps,
                s.steps_per_second,
                s.final_relative_suboptimality,
                s.best_relative_suboptimality,
                if s.diverged { " (DIVERGED)" } else { "" }
            );
            summaries.push(s);
            outcomes.push((*m, out));
        }
    }

    // 3. Outputs.
    std::fs::write(a.out.join("compare.csv"), csv).context("writing compare.csv")?;
    let table = table(&summaries, &methods, &convex_times, &cert, a.seeds);
    let softmax_note = "softmax attention is a different model class (SPEC §2-3): its objective can legitimately fall below the convex optimum, so the lower-bound check is not applied to it; negative suboptimality means it fits this objective better than any simplex-attention model can";
    write_json(
        &a.out.join("summary.json"),
        &serde_json::json!({
            "command": command_line(),
            "data": data_json(&loaded),
            "split": split_note,
            "program": program,
            "loss": loss.name(),
            "intercept": a.problem.intercept,
            "beta": problem.beta,
            "beta_max": bmax,
            "convex": {
                "certificate": cert,
                "tolerance": opts.tol,
                "converged": sol.converged(),
                "seconds": sol.seconds,
                "iterations": sol.iterations,
                "data_passes": sol.data_passes,
                "active_tokens": report.active_tokens,
                "n_heads": report.n_heads,
                "heads": report.heads,
                "recovery_relative_difference": report.recovery_relative_difference,
                "train_error": report.train_error,
                "test_error": report.validation_error,
                "time_to": THRESHOLDS.iter().zip(&convex_times).map(|(t, (s, ok))| serde_json::json!({
                    "relative_gap": t, "seconds": ok.then_some(*s),
                })).collect::<Vec<_>>(),
            },
            "relative_suboptimality": "(objective - P*) / max(1, |P*|), P* the certified convex primal value",
            "lower_bound_check": format!("every recorded simplex-attention point: objective >= dual - 1e-9 max(1, |P*|) = {:.12e}", cert.dual - 1e-9 * cert.primal.abs().max(1.0)),
            "softmax_note": softmax_note,
            "heads": heads,
            "methods": configs,
            "runs": summaries,
            "table": table,
        }),
    )?;
    plot_outputs(&a.out, &outcomes, &cert, &report, n)?;
    println!();
    print!("{table}");
    if methods.iter().any(|m| m.model == ModelKind::Softmax) {
        println!("note: {softmax_note}");
    }
    println!(
        "lower-bound check passed on every recorded simplex-attention point (objective >= certified dual bound {:.12e})",
        cert.dual
    );
    println!(
        "wrote {0}/compare.csv, {0}/summary.json and plots (suboptimality_time, suboptimality_steps, objective_time, attention_maps as .png and .svg)",
        a.out.display()
    );
    Ok(())
}

fn fmt_reach(times: &[Option<f64>]) -> String {
    let hit: Vec<f64> = times.iter().flatten().copied().collect();
    if hit.is_empty() {
        return "not reached".into();
    }
    let mut h = hit.clone();
    h.sort_by(f64::total_cmp);
    format!("{:.3} s ({}/{})", h[h.len() / 2], hit.len(), times.len())
}

/// The per-method table: median over seeds; times are medians over the seeds
/// that reached the threshold (how many did, in parentheses).
fn table(
    runs: &[RunSummary],
    methods: &[Method],
    convex: &[(f64, bool)],
    cert: &Certificate,
    seeds: usize,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:>10} {:>14} {:>14} {:>22} {:>22}",
        "method", "steps/s", "final rel.sub", "best rel.sub", "time to 1e-3", "time to 1e-6"
    );
    let conv = |i: usize| {
        let (t, ok) = convex[i];
        if ok {
            format!("{t:.3} s (certified)")
        } else {
            "not reached".into()
        }
    };
    let _ = writeln!(
        s,
        "{:<20} {:>10} {:>14} {:>14} {:>22} {:>22}",
        "convex (certified)",
        "-",
        "0 (reference)",
        format!("gap {:.1e}", cert.relative_gap),
        conv(0),
        conv(1)
    );
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for m in methods {
        let rs: Vec<&RunSummary> = runs.iter().filter(|r| r.method == m.name()).collect();
        if rs.is_empty() {
            continue;
        }
        let col =
            |k: usize| fmt_reach(&rs.iter().map(|r| r.time_to[k].seconds).collect::<Vec<_>>());
        let _ = writeln!(
            s,
            "{:<20} {:>10.0} {:>14.3e} {:>14.3e} {:>22} {:>22}",
            m.name(),
            median(rs.iter().map(|r| r.steps_per_second).collect()),
            median(rs.iter().map(|r| r.final_relative_suboptimality).collect()),
            rs.iter()
                .map(|r| r.best_relative_suboptimality)
                .fold(f64::INFINITY, f64::min),
            col(0),
            col(1)
        );
    }
    let _ = writeln!(
        s,
        "(steps/s and final: median over {seeds} seed(s); best: over all seeds; times: median over the seeds that reached it, training seconds at the first recorded point; convex: a solve to that certified relative gap, fastest of 3; its best column is the reference solve's relative gap)"
    );
    s
}

fn plot_outputs(
    out: &Path,
    outcomes: &[(Method, TrainOutcome)],
    cert: &Certificate,
    report: &SolveReport,
    n_tokens: usize,
) -> anyhow::Result<()> {
    let series = |x: &dyn Fn(&convexformer::baselines::TrainPoint) -> f64,
                  y: &dyn Fn(f64) -> f64|
     -> Vec<Series> {
        outcomes
            .iter()
            .map(|(m, o)| Series {
                name: format!("{} seed {}", m.name(), o.seed),
                x: o.points.iter().map(x).collect(),
                y: o.points.iter().map(|p| y(p.objective)).collect(),
            })
            .collect()
    };
    let rel = |v: f64| rel_subopt(v, cert);
    let by_time = series(&|p| p.seconds, &rel);
    line_plot(
        &out.join("suboptimality_time"),
        &LinePlot {
            title: "Objective minus the certified optimum",
            x_label: "training seconds",
            y_label: "(objective - P*) / max(1, |P*|)",
            log_x: false,
            log_y: true,
            series: &by_time,
            points: false,
        },
    )?;
    let by_step = series(&|p| p.step as f64, &rel);
    line_plot(
        &out.join("suboptimality_steps"),
        &LinePlot {
            title: "Objective minus the certified optimum",
            x_label: "optimizer steps",
            y_label: "(objective - P*) / max(1, |P*|)",
            log_x: true,
            log_y: true,
            series: &by_step,
            points: false,
        },
    )?;
    let mut by_obj = series(&|p| p.seconds, &|v| v);
    let t_end = outcomes
        .iter()
        .filter_map(|(_, o)| o.points.last().map(|p| p.seconds))
        .fold(0.0, f64::max);
    by_obj.push(Series {
        name: "convex optimum P*".into(),
        x: vec![0.0, t_end.max(1e-3)],
        y: vec![cert.primal, cert.primal],
    });
    line_plot(
        &out.join("objective_time"),
        &LinePlot {
            title: "Objective on the training set",
            x_label: "training seconds",
            y_label: "objective",
            log_x: false,
            log_y: true,
            series: &by_obj,
            points: false,
        },
    )?;

    // Attention maps: the recovered convex heads, then for each method the
    // seed with the lowest final objective.
    let mut values = Vec::new();
    let mut names = Vec::new();
    for (j, h) in report.heads.iter().enumerate() {
        values.extend_from_slice(&h.attention);
        names.push(format!("convex {}", j + 1));
    }
    let mut seen: Vec<String> = Vec::new();
    for (m, _) in outcomes {
        if seen.contains(&m.name()) {
            continue;
        }
        seen.push(m.name());
        let best = outcomes
            .iter()
            .filter(|(mm, _)| mm == m)
            .min_by(|x, y| x.1.final_objective.total_cmp(&y.1.final_objective))
            .expect("the method has runs");
        let o = &best.1;
        let h = o.attention.len() / n_tokens;
        for j in 0..h {
            values.extend_from_slice(&o.attention[j * n_tokens..(j + 1) * n_tokens]);
            names.push(format!("{} s{} h{}", short(&m.name()), o.seed, j + 1));
        }
    }
    let cols: Vec<String> = (0..n_tokens).map(|k| k.to_string()).collect();
    heatmap(
        &out.join("attention_maps"),
        &Heatmap {
            title: "Attention: convex, simplex (learned), softmax (read-out row, mean)",
            x_label: "token",
            y_label: "head",
            rows: names.len(),
            cols: n_tokens,
            values: &values,
            row_names: Some(&names),
            col_names: Some(&cols),
        },
    )?;
    Ok(())
}

fn short(name: &str) -> &str {
    match name {
        "simplex-projected" => "proj",
        "simplex-logits" => "logit",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse() {
        let m = parse_methods("simplex, softmax,simplex", Parametrization::Logits).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name(), "simplex-logits");
        assert!(parse_methods("mlp", Parametrization::Logits)
            .unwrap_err()
            .to_string()
            .contains("unknown method 'mlp'"));
        assert!(parse_methods(" , ", Parametrization::Logits).is_err());
    }

    #[test]
    fn compare_runs_end_to_end_on_tiny_data() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cmp");
        let cli = crate::cli::Cli::try_parse_from([
            "convexformer",
            "compare",
            "--data",
            "synthetic:N=80,n=4,d=3,active=2,seed=1",
            "--seeds",
            "1",
            "--budget-seconds",
            "0.2",
            "--methods",
            "simplex,softmax",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        crate::cli::run(cli).unwrap();
        for f in [
            "compare.csv",
            "summary.json",
            "suboptimality_time.png",
            "suboptimality_time.svg",
            "attention_maps.png",
            "attention_maps.svg",
        ] {
            assert!(out.join(f).exists(), "{f} missing");
        }
        let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
        assert!(csv.lines().any(|l| l.starts_with("simplex-projected,0,")));
        assert!(csv.lines().any(|l| l.starts_with("softmax,0,")));
        // Bad input is refused before any work.
        for bad in [
            vec!["--heads", "0"],
            vec!["--lr", "-1"],
            vec!["--optimizer", "lbfgs"],
            vec!["--beta", "0"],
            vec!["--seeds", "0"],
        ] {
            let mut args = vec![
                "convexformer",
                "compare",
                "--out",
                out.to_str().unwrap(),
                "--force",
            ];
            args.extend(bad.iter().copied());
            let cli = crate::cli::Cli::try_parse_from(args).unwrap();
            let e = crate::cli::run(cli).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad:?}");
        }
    }
}
