//! `convexformer compare`: the certified convex solve against simplex- and
//! softmax-attention training on the same data and β (issue #3).
//!
//! The experiment is [`convexformer::experiments::compare`]: this file turns
//! the arguments into a [`CompareConfig`], calls [`run_compare`], prints its
//! progress and table, and writes compare.csv, summary.json and the plots.
//! A simplex-attention objective below the certified lower bound fails the
//! command (the library returns it as an error).
//!
//! compare.csv and summary.json are rewritten after every finished run;
//! Ctrl-C drops the run in progress, keeps the finished ones and exits 130;
//! `--resume` redoes the (deterministic) convex solve, keeps the finished
//! runs and trains the rest.

use super::common::{
    command_line, data_json, prepare_out_dir, write_json, BetaArgs, Loaded, ProblemArgs,
};
use super::interrupt::{self, Interrupted};
use super::resume::{self, RunState};
use clap::Args;
use convexformer::baselines::{
    Decay, ModelKind, OptimizerKind, Parametrization, Precision, TrainOutcome,
};
use convexformer::experiments::compare::{
    relative_suboptimality, run_compare_resumed, BetaChoice, CompareConfig, CompareEvent,
    CompareResult, Method, RunCurve, DEFAULT_BETA_FRAC, SOFTMAX_NOTE,
};
use convexformer::plot::{heatmap, line_plot, Heatmap, LinePlot, Series};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, serde::Serialize)]
pub struct CompareArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub problem: ProblemArgs,
    /// β, or β as a fraction of β_max (default 0.1 when neither is given).
    #[command(flatten)]
    #[serde(flatten)]
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
    #[serde(skip)]
    pub out: PathBuf,
    /// Overwrite convexformer's files in an existing output folder.
    #[arg(long)]
    #[serde(skip)]
    pub force: bool,
    /// Continue an interrupted comparison in --out: its finished runs are
    /// kept, the rest trained (the other options must be the recorded ones).
    #[arg(long, conflicts_with = "force")]
    #[serde(skip)]
    pub resume: bool,
}

impl CompareArgs {
    /// The experiment's configuration; refuses bad arguments before any work.
    fn config(&self) -> anyhow::Result<CompareConfig> {
        self.beta.check(Some(DEFAULT_BETA_FRAC))?;
        let par = Parametrization::parse(&self.parametrization)?;
        let cfg = CompareConfig {
            program: self.problem.program()?,
            loss: self.problem.loss()?,
            intercept: self.problem.intercept,
            beta: match (self.beta.beta, self.beta.beta_frac) {
                (Some(b), _) => BetaChoice::Value(b),
                (None, Some(f)) => BetaChoice::FractionOfMax(f),
                (None, None) => BetaChoice::FractionOfMax(DEFAULT_BETA_FRAC),
            },
            solver: self.problem.solver_options()?,
            heads: self.heads,
            extra_heads: self.extra_heads,
            seeds: self.seeds,
            budget_seconds: self.budget_seconds,
            methods: Method::parse_list(&self.methods, par)?,
            optimizer: OptimizerKind::parse(&self.optimizer)?,
            lr: self.lr,
            momentum: self.momentum,
            warmup_steps: self.warmup,
            decay: Decay::parse(&self.decay)?,
            min_lr_frac: self.min_lr_frac,
            max_steps: self.steps,
            batch_size: self.batch,
            precision: Precision::parse(&self.dtype)?,
            key_dim: self.key_dim,
            read_token: self.read_token,
            ..CompareConfig::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn run(a: CompareArgs) -> anyhow::Result<()> {
    // Everything that can be checked before loading data.
    let mut cfg = a.config()?;
    cfg.solver.interrupt = Some(interrupt::install()?);
    let arguments = resume::arguments(&a)?;

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
    let done = if a.resume {
        read_resumed(&a.out, &arguments, &loaded)?
    } else {
        prepare_out_dir(&a.out, a.force)?;
        Vec::new()
    };
    if a.resume {
        eprintln!(
            "resuming in {}: {} of {} runs already finished",
            a.out.display(),
            done.len(),
            cfg.methods.len() * cfg.seeds
        );
    }
    let Loaded {
        train: data, val, ..
    } = &loaded;
    let test = val.as_ref();
    let files = Files {
        out: &a.out,
        arguments: &arguments,
        loaded: &loaded,
        cfg: &cfg,
        split_note: &split_note,
    };

    let (n_samples, n, d, c) = data.shape();
    let mut current_run: Option<String> = None;
    let mut written = Ok(());
    let result = run_compare_resumed(data, &cfg, test, done, |event| match event {
        CompareEvent::Convex {
            convex,
            beta,
            beta_max,
            heads,
        } => {
            println!(
                "convexformer compare: {} program, {} loss, {n_samples} training samples of {n} tokens x {d} features, {c} output(s)",
                cfg.program.name(),
                cfg.loss.name()
            );
            if let Some(note) = &split_note {
                println!("{note}");
            }
            let cert = &convex.certificate;
            println!(
                "convex (certified): beta {:.4e} ({:.3} of beta_max), P* = {:.12e}, dual {:.12e}, relative gap {:.1e} in {:.3} s; active tokens {:?}; {} heads recovered (nonconvex objective differs by {:.1e})",
                beta,
                beta / beta_max,
                cert.primal,
                cert.dual,
                cert.relative_gap,
                convex.seconds,
                convex.active_tokens,
                convex.n_heads,
                convex.recovery_relative_difference
            );
            if !convex.converged {
                eprintln!(
                    "warning: the convex solve stopped ({:?}) at relative gap {:.1e} above its tolerance {:.0e}: suboptimality is measured against its primal value; the lower-bound check uses its dual value, which stays valid",
                    convex.stop, cert.relative_gap, convex.tolerance
                );
            }
            if convex.recovery_relative_difference <= 1e-9 {
                println!(
                    "training {} method(s) x {} seed(s), {heads} heads, {} {}, {} budget {} s per run{}",
                    cfg.methods.len(),
                    cfg.seeds,
                    cfg.optimizer.name(),
                    cfg.precision.name(),
                    cfg.batch_size
                        .map_or("full batch".to_string(), |b| format!("batch {b}")),
                    cfg.budget_seconds,
                    cfg.max_steps
                        .map_or(String::new(), |s| format!(", at most {s} steps"))
                );
            }
        }
        CompareEvent::RunStarted { method, seed } => {
            current_run = Some(format!("training {} with seed {seed}", method.name()));
        }
        CompareEvent::RunFinished(s) => {
            current_run = None;
            println!(
                "  {:<18} seed {}: {:>7} steps, {:>8.0} steps/s, final relative suboptimality {:>10.3e}, best {:>10.3e}{}",
                s.method,
                s.seed,
                s.steps,
                s.steps_per_second,
                s.final_relative_suboptimality,
                s.best_relative_suboptimality,
                if s.diverged { " (DIVERGED)" } else { "" }
            );
        }
        CompareEvent::Progress(r) => {
            // Every finished run on disk at once; the first failure is kept.
            if written.is_ok() {
                written = files.write(r, RunState::Running);
            }
        }
    });
    let result = match (result, current_run) {
        (Err(e), Some(what)) if !cfg.solver.interrupt.as_ref().is_some_and(|i| i.requested()) => {
            return Err(anyhow::Error::new(e).context(what))
        }
        (r, _) => r?,
    };
    written?;

    // Outputs.
    let state = if result.interrupted {
        RunState::Interrupted
    } else {
        RunState::Finished
    };
    files.write(&result, state)?;
    if !result.curves.is_empty() {
        plot_outputs(&a.out, &result, n)?;
    }
    let table = result.table_text();
    println!();
    print!("{table}");
    if result.interrupted {
        return Err(Interrupted::wrote_to(&a.out, true));
    }
    if cfg.methods.iter().any(|m| m.model == ModelKind::Softmax) {
        println!("note: {SOFTMAX_NOTE}");
    }
    println!(
        "lower-bound check passed on every recorded simplex-attention point (objective >= certified dual bound {:.12e})",
        result.convex.certificate.dual
    );
    println!(
        "wrote {0}/compare.csv, {0}/summary.json and plots (suboptimality_time, suboptimality_steps, objective_time, attention_maps as .png and .svg)",
        a.out.display()
    );
    Ok(())
}

/// What compare.csv and summary.json are written from.
struct Files<'a> {
    out: &'a Path,
    arguments: &'a serde_json::Value,
    loaded: &'a Loaded,
    cfg: &'a CompareConfig,
    split_note: &'a Option<String>,
}

impl Files<'_> {
    /// Rewrites compare.csv and summary.json from the runs in `result`.
    fn write(&self, result: &CompareResult, state: RunState) -> anyhow::Result<()> {
        super::common::write_file(&self.out.join("compare.csv"), csv(result)?)?;
        let cfg = self.cfg;
        // Through a serde_json::Value, as always: keys sorted at every level.
        write_json(
            &self.out.join("summary.json"),
            &serde_json::json!({
                "command": command_line(),
                "arguments": self.arguments,
                "state": state.name(),
                "data": data_json(self.loaded),
                "split": self.split_note,
                "program": cfg.program,
                "loss": cfg.loss.name(),
                "intercept": cfg.intercept,
                "beta": result.beta,
                "beta_max": result.beta_max,
                "convex": result.convex,
                "relative_suboptimality": "(objective - P*) / max(1, |P*|), P* the certified convex primal value",
                "lower_bound_check": result.lower_bound.description(),
                "softmax_note": SOFTMAX_NOTE,
                "heads": result.heads,
                "methods": result.methods,
                "runs": result.runs,
                "curves": result.curves,
                "table": result.table_text(),
            }),
        )
    }
}

/// The finished runs of the comparison recorded in `out`, once it is shown to
/// be the same comparison on the same data.
fn read_resumed(
    out: &Path,
    arguments: &serde_json::Value,
    loaded: &Loaded,
) -> anyhow::Result<Vec<RunCurve>> {
    let summary = resume::read_summary(out, "summary.json")?;
    resume::check_same_arguments(&summary["arguments"], arguments, out)?;
    resume::check_same_data(&summary["data"], &data_json(loaded), out)?;
    serde_json::from_value(summary["curves"].clone()).map_err(|e| {
        anyhow::anyhow!(
            "cannot resume: the runs in {}/summary.json are unreadable ({e}); start a new run with --force",
            out.display()
        )
    })
}

/// compare.csv: every recorded point of every run.
fn csv(r: &CompareResult) -> anyhow::Result<String> {
    let cert = &r.convex.certificate;
    let mut csv = String::from(
        "method,seed,step,seconds,objective,suboptimality,relative_suboptimality,train_error,test_error\n",
    );
    for run in &r.curves {
        let out = &run.outcome;
        for p in &out.points {
            writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{}",
                out.method,
                out.seed,
                p.step,
                p.seconds,
                p.objective,
                p.objective - cert.primal,
                relative_suboptimality(p.objective, cert),
                p.train_error,
                p.test_error.map(|v| v.to_string()).unwrap_or_default()
            )?;
        }
    }
    Ok(csv)
}

fn plot_outputs(out: &Path, r: &CompareResult, n_tokens: usize) -> anyhow::Result<()> {
    let cert = &r.convex.certificate;
    let outcomes: Vec<(Method, &TrainOutcome)> =
        r.curves.iter().map(|c| (c.method, &c.outcome)).collect();
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
    let rel = |v: f64| relative_suboptimality(v, cert);
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
    for (j, h) in r.convex.heads.iter().enumerate() {
        values.extend_from_slice(&h.attention);
        names.push(format!("convex {}", j + 1));
    }
    let mut seen: Vec<String> = Vec::new();
    for (m, _) in &outcomes {
        if seen.contains(&m.name()) {
            continue;
        }
        seen.push(m.name());
        let best = outcomes
            .iter()
            .filter(|(mm, _)| mm == m)
            .min_by(|x, y| x.1.final_objective.total_cmp(&y.1.final_objective))
            .expect("the method has runs");
        let o = best.1;
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
    /// The command end to end (the experiment itself is tested in
    /// `convexformer::experiments::compare`): its files, and bad arguments
    /// refused before any work.
    #[test]
    fn compare_command_writes_its_files_and_refuses_bad_input() {
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
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        for k in [
            "command",
            "data",
            "split",
            "program",
            "loss",
            "intercept",
            "beta",
            "beta_max",
            "convex",
            "relative_suboptimality",
            "lower_bound_check",
            "softmax_note",
            "heads",
            "methods",
            "runs",
            "curves",
            "table",
            "arguments",
            "state",
        ] {
            assert!(s.get(k).is_some(), "summary.json lacks {k}");
        }
        assert_eq!(s.as_object().unwrap().len(), 19);
        assert_eq!(s["state"], "finished");
        assert!(s["convex"]["certificate"]["dual"].is_f64());
        assert_eq!(s["convex"]["time_to"].as_array().unwrap().len(), 2);
        assert_eq!(s["runs"].as_array().unwrap().len(), 2);
        assert_eq!(s["runs"][0]["time_to"][1]["relative_suboptimality"], 1e-6);
        assert_eq!(s["methods"][1]["method"], "softmax");
        assert!(s["table"].as_str().unwrap().contains("convex (certified)"));
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
