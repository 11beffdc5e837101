//! `convexformer grok`: the grokking comparison of issue #5 in one command.
//!
//! For each number of layers and seed: (a) the standard transformer, (b) the
//! same network with convex attention, trained with AdamW for --steps steps,
//! and (c) the global convex model (SPEC §4d) along a β path, certified. Writes
//! curves.csv, summary.json, grok.png/svg (accuracy against steps, log
//! scale) and grok_loss.png/svg. See `convexformer::grok` for the definitions.
//!
//! Long runs keep what they computed: curves.csv is rewritten at every
//! evaluation and summary.json after every finished run; each transformer
//! saves its exact training state (weights, AdamW moments, batch order) to
//! checkpoints/ every --checkpoint-every steps and when Ctrl-C stops it, and
//! `--resume` continues from there with the results of an uninterrupted run.
//! An interrupted global model starts over (its path takes seconds to minutes).
//!
//! ```text
//! convexformer grok --out grok-out                       # the default comparison, ~8 min on 2 cores
//! convexformer grok --layers 1,2 --seeds 3 --steps 20000 --model standard,convex --out long
//! convexformer grok --model global --global-betas 4 --global-max-seconds 120 --out global
//! python3 scripts/grok_pytorch.py --steps 300 --threads 2   # the PyTorch twin of model (a)
//! ```
//!

use super::common::{command_line, prepare_out_dir, write_json};
use super::interrupt::{self, Interrupted};
use super::resume::{self, RunState};
use anyhow::{bail, Context};
use candle_core::DType;
use clap::Args;
use convexformer::experiments::grok::{
    Curve, GlobalSummary, GrokRunSummary, TaskSummary, TransformerSummary,
};
use convexformer::grok::{
    run_global, train_with, AttentionKind, GlobalConfig, ModOp, ModelChoice, ModularTask,
    PenaltyMode, Record, TrainConfig, TrainHooks, TrainState, TransformerConfig,
};
use convexformer::operator::GateKind;
use convexformer::plot::{line_plot, LinePlot, Series};
use convexformer::solver::Interrupt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, serde::Serialize)]
pub struct GrokArgs {
    /// add, sub, mul, div, poly (x²+xy+y²) or poly2 (x³+xy).
    #[arg(long, default_value = "div")]
    pub op: String,
    /// The modulus, a prime.
    #[arg(long, default_value_t = 97)]
    pub p: u32,
    /// Fraction of all pairs used for training.
    #[arg(long, default_value_t = 0.5)]
    pub frac: f64,
    /// Seed of the train/validation split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Transformer blocks: 1, 2, or a comma list (1,2).
    #[arg(long, default_value = "1")]
    pub layers: String,
    /// Comma list of standard (softmax attention), convex (convex attention),
    /// global (the certified SPEC §4d model).
    #[arg(long, default_value = "standard,convex,global")]
    pub model: String,
    /// AdamW steps of the transformers. The default fits the whole default
    /// command in about 10 minutes on 2 cores; in our runs the standard
    /// transformer reached 99% validation accuracy on division mod 97 only
    /// near step 4800, so other seeds may need more (try --steps 20000).
    #[arg(long, default_value_t = 5000)]
    pub steps: usize,
    /// Number of seeds (0..S): initialization, batch order and gates.
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// Model width D.
    #[arg(long, default_value_t = 128)]
    pub width: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.98)]
    pub beta2: f64,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 1.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// λ of the convex layers' group penalty (model b).
    #[arg(long, default_value_t = 1.0)]
    pub penalty: f64,
    /// decoupled (a step on λ·R after each Adam update, like weight decay) or
    /// coupled (λ·R added to the loss).
    #[arg(long, default_value = "decoupled")]
    pub penalty_mode: String,
    /// Evaluate train and validation sets every this many steps (and at
    /// steps 1, 2, 4, … below it): milestones are known to this resolution.
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// f32 or f64.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Global model: number of gates P.
    #[arg(long, default_value_t = 8)]
    pub global_gates: usize,
    /// Global model: number of β on the path.
    #[arg(long, default_value_t = 6)]
    pub global_betas: usize,
    /// Global model: smallest β as a fraction of β_max.
    #[arg(long, default_value_t = 1e-2)]
    pub global_beta_ratio: f64,
    /// Global model: relative duality gap to reach at each β.
    #[arg(long, default_value_t = 1e-4)]
    pub global_tol: f64,
    /// Global model: each β's share of the path's solving seconds (a solve
    /// may also use what the earlier β left, so the solves take at most
    /// betas × this).
    #[arg(long, default_value_t = 15.0)]
    pub global_max_seconds: f64,
    /// Save each transformer's training state every this many steps (0: only
    /// when interrupted), for --resume after a crash.
    #[arg(long, default_value_t = 1000)]
    #[serde(skip)]
    pub checkpoint_every: usize,
    /// Output folder.
    #[arg(long, default_value = "grok-out")]
    #[serde(skip)]
    pub out: PathBuf,
    /// Overwrite convexformer's files in a non-empty --out.
    #[arg(long)]
    #[serde(skip)]
    pub force: bool,
    /// Continue an interrupted run in --out: finished runs are kept, a stopped
    /// transformer continues from its checkpoint (the other options must be
    /// those of the recorded run).
    #[arg(long, conflicts_with = "force")]
    #[serde(skip)]
    pub resume: bool,
}

/// The checkpoints' folder inside --out.
const CHECKPOINTS: &str = "checkpoints";

/// The finished runs so far, in the order of the run's plan.
#[derive(Default)]
struct Done {
    curves: Vec<Curve>,
    runs: Vec<GrokRunSummary>,
}

fn parse_layers(s: &str) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let l: usize = part
            .parse()
            .with_context(|| format!("--layers: '{part}' is not a number of layers"))?;
        if l == 0 {
            bail!("--layers: a transformer needs at least 1 layer");
        }
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.is_empty() {
        bail!("--layers: give 1, 2 or a comma list such as 1,2");
    }
    Ok(out)
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

pub fn run(a: GrokArgs) -> anyhow::Result<()> {
    let stop = interrupt::install()?;
    let op = ModOp::parse(&a.op)?;
    let models = ModelChoice::parse_list(&a.model)?;
    let layers = parse_layers(&a.layers)?;
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if a.heads == 0 || a.width == 0 || a.width % a.heads != 0 {
        bail!(
            "--width {} must be a positive multiple of --heads {}",
            a.width,
            a.heads
        );
    }
    let dtype = match a.dtype.to_ascii_lowercase().as_str() {
        "f32" => DType::F32,
        "f64" => DType::F64,
        d => bail!("--dtype: unknown '{d}', use f32 or f64"),
    };
    let task = ModularTask::new(op, a.p, a.frac, a.split_seed)?;
    let tcfg = TrainConfig {
        steps: a.steps,
        batch_size: a.batch,
        lr: a.lr,
        beta1: a.beta1,
        beta2: a.beta2,
        weight_decay: a.weight_decay,
        warmup_steps: a.warmup,
        penalty: a.penalty,
        penalty_mode: PenaltyMode::parse(&a.penalty_mode)?,
        eval_every: a.eval_every,
        seed: 0,
        dtype,
    };
    tcfg.validate()?;
    let gcfg = GlobalConfig {
        gates: a.global_gates,
        gate_kind: GateKind::Gaussian,
        tokenwise: false,
        n_betas: a.global_betas,
        beta_ratio: a.global_beta_ratio,
        tol: a.global_tol,
        max_seconds_per_beta: a.global_max_seconds,
        max_iter: 100_000,
        interrupt: Some(stop.clone()),
    };
    // Every run of the comparison, in order: (seed, model, layers).
    let mut plan = Vec::new();
    for seed in 0..a.seeds as u64 {
        for &model in &models {
            if model == ModelChoice::Global {
                plan.push((seed, model, 1));
            } else {
                plan.extend(layers.iter().map(|&l| (seed, model, l)));
            }
        }
    }
    let arguments = resume::arguments(&a)?;
    let ckdir = a.out.join(CHECKPOINTS);
    let mut done = if a.resume {
        read_resumed(&a.out, &arguments, plan.len())?
    } else {
        prepare_out_dir(&a.out, a.force)?;
        // Checkpoints of an earlier run in a --force'd folder must not be
        // taken for this one's.
        if ckdir.exists() {
            std::fs::remove_dir_all(&ckdir)
                .with_context(|| format!("cannot clear {}", ckdir.display()))?;
        }
        Done::default()
    };
    std::fs::create_dir_all(&ckdir)
        .with_context(|| format!("cannot create {}", ckdir.display()))?;
    eprintln!(
        "grok: {} mod {} ({}), {} train / {} validation pairs, models {}, layers {:?}, {} seed(s), {} steps",
        op.name(),
        a.p,
        op.formula(),
        task.train.len(),
        task.val.len(),
        models.iter().map(|m| m.name()).collect::<Vec<_>>().join(","),
        layers,
        a.seeds,
        a.steps
    );
    if a.resume {
        eprintln!(
            "resuming in {}: {} of {} runs already finished",
            a.out.display(),
            done.runs.len(),
            plan.len()
        );
    }
    let header = serde_json::json!({
        "command": command_line(),
        "arguments": arguments,
        "task": TaskSummary::new(&task),
        "transformer": {
            "width": a.width,
            "heads": a.heads,
            "mlp_ratio": 4,
            "train": tcfg,
            "dtype": a.dtype,
            "threads": rayon::current_num_threads(),
        },
        "global": gcfg,
        "threshold": convexformer::grok::THRESHOLD,
        "x_axis": "transformers: optimizer steps (seconds: training time, evaluation excluded); global: position on the β path (0 = Z = 0 at β_max, k = k-th β), seconds: solver time",
    });
    let outputs = Outputs {
        out: &a.out,
        header: &header,
        args: &a,
        op,
    };

    for &(seed, model, l) in &plan[done.runs.len()..] {
        let (curve, summary) = match model {
            ModelChoice::Global => {
                let (curve, summary, interrupted) = run_global_model(&task, &gcfg, seed)?;
                if interrupted {
                    let label = curve.label();
                    return outputs.interrupted(&done, Some(curve), &label, None);
                }
                (curve, summary)
            }
            _ => {
                let ck = ckdir.join(format!("{}-L{l}-s{seed}.safetensors", model.name()));
                let state = if a.resume && ck.exists() {
                    Some(TrainState::load(&ck)?)
                } else {
                    None
                };
                let name = format!("{} L{l} s{seed}", model.name());
                if let Some(s) = &state {
                    eprintln!("  {name}: continuing from step {}", s.step);
                }
                let cfg = TrainConfig {
                    seed,
                    ..tcfg.clone()
                };
                let mut hooks = Hooks {
                    outputs: &outputs,
                    done: &done,
                    curve: Curve {
                        model,
                        layers: l,
                        seed,
                        // A resumed run's evaluations so far stay in curves.csv.
                        rows: state.as_ref().map_or_else(Vec::new, |s| {
                            s.records.iter().map(Curve::row_of).collect()
                        }),
                    },
                    checkpoint: ck.clone(),
                    every: a.checkpoint_every,
                    stop: &stop,
                    pb: super::common::progress(cfg.steps as u64, &name),
                    name,
                    steps: cfg.steps,
                };
                let config = transformer_config(&task, &a, model, l);
                let run = train_with(config, &cfg, &task.train, &task.val, state, &mut hooks)?;
                hooks.pb.finish_and_clear();
                let curve = Curve::from_train(model, l, seed, &run);
                if run.interrupted {
                    let label = curve.label();
                    return outputs.interrupted(&done, Some(curve), &label, Some(run.steps));
                }
                // Finished: its results go into summary.json below.
                let _ = std::fs::remove_file(&ck);
                let summary =
                    GrokRunSummary::Transformer(TransformerSummary::new(model, l, seed, &run));
                (curve, summary)
            }
        };
        eprintln!("  {}", summary_line(&summary));
        done.curves.push(curve);
        done.runs.push(summary);
        outputs.write(&done, None, RunState::Running, None)?;
        if stop.requested() && done.runs.len() < plan.len() {
            return outputs.interrupted(&done, None, "none", None);
        }
    }
    let _ = std::fs::remove_dir(&ckdir);
    let notes = outputs.write(&done, None, RunState::Finished, None)?;
    for n in &notes {
        eprintln!("note: {n}");
    }
    plots(&a.out, &done.curves, op, a.p)?;
    eprintln!(
        "wrote {}/curves.csv, summary.json, grok.png/svg, grok_loss.png/svg",
        a.out.display()
    );
    Ok(())
}

/// Where the files go, and what summary.json says besides the runs.
struct Outputs<'a> {
    out: &'a Path,
    header: &'a serde_json::Value,
    args: &'a GrokArgs,
    op: ModOp,
}

impl Outputs<'_> {
    /// Rewrites curves.csv (finished runs and the one in progress) and
    /// summary.json; returns the notes.
    fn write(
        &self,
        done: &Done,
        current: Option<&Curve>,
        state: RunState,
        in_progress: Option<serde_json::Value>,
    ) -> anyhow::Result<Vec<String>> {
        let mut curves: Vec<&Curve> = done.curves.iter().collect();
        curves.extend(current);
        write_curves(&self.out.join("curves.csv"), &curves)?;
        let notes = notes(&done.runs, self.args, self.op);
        // Through a serde_json::Value, as always: keys sorted at every level.
        let mut summary = self.header.clone();
        summary["state"] = state.name().into();
        summary["runs"] = serde_json::to_value(&done.runs)?;
        summary["curves"] = serde_json::to_value(&done.curves)?;
        summary["notes"] = serde_json::to_value(&notes)?;
        if let Some(p) = in_progress {
            summary["in_progress"] = p;
        }
        write_json(&self.out.join("summary.json"), &summary)?;
        Ok(notes)
    }

    /// Writes what a stopped run computed (the stopped run's curve too, and
    /// the plots) and returns the error that exits with the interrupted code.
    fn interrupted(
        &self,
        done: &Done,
        current: Option<Curve>,
        label: &str,
        step: Option<usize>,
    ) -> anyhow::Result<()> {
        let what = serde_json::json!({
            "run": label,
            "step": step,
            "resumes_from": if step.is_some() { "its checkpoint" } else { "the start of the run" },
        });
        self.write(done, current.as_ref(), RunState::Interrupted, Some(what))?;
        let mut curves = done.curves.clone();
        curves.extend(current);
        if !curves.is_empty() {
            plots(self.out, &curves, self.op, self.args.p)?;
        }
        Err(Interrupted::wrote_to(self.out, true))
    }
}

/// A transformer's training, watched: progress, curves.csv at every
/// evaluation, checkpoints, and Ctrl-C.
struct Hooks<'a> {
    outputs: &'a Outputs<'a>,
    done: &'a Done,
    curve: Curve,
    checkpoint: PathBuf,
    every: usize,
    stop: &'a Interrupt,
    pb: indicatif::ProgressBar,
    name: String,
    steps: usize,
}

impl TrainHooks<Record> for Hooks<'_> {
    fn record(&mut self, r: &Record) -> convexformer::error::Result<()> {
        self.pb.set_position(r.step as u64);
        self.pb
            .set_message(format!("train {:.3} val {:.3}", r.train_acc, r.val_acc));
        // Without a terminal (logs), a line every tenth of the run instead.
        let tenth = (self.steps / 10).max(1);
        if !std::io::IsTerminal::is_terminal(&std::io::stderr())
            && r.step > 0
            && r.step % tenth == 0
        {
            eprintln!(
                "  {} step {}: {:.1}s, train {:.4} ({:.3e}), val {:.4} ({:.3e})",
                self.name, r.step, r.seconds, r.train_acc, r.train_loss, r.val_acc, r.val_loss
            );
        }
        self.curve.rows.push(Curve::row_of(r));
        let mut curves: Vec<&Curve> = self.done.curves.iter().collect();
        curves.push(&self.curve);
        write_curves(&self.outputs.out.join("curves.csv"), &curves).map_err(io_error)
    }

    fn stop(&self) -> bool {
        self.stop.requested()
    }

    fn checkpoint_every(&self) -> usize {
        self.every
    }

    fn checkpoint(&mut self, s: &TrainState) -> convexformer::error::Result<()> {
        s.save(&self.checkpoint)
    }
}

/// An output error from a hook, as the library's error.
fn io_error(e: anyhow::Error) -> convexformer::error::Error {
    convexformer::error::Error::Io {
        path: PathBuf::from("curves.csv"),
        source: std::io::Error::other(format!("{e:#}")),
    }
}

/// The finished runs recorded in `out`, once the command line is shown to
/// ask for the same comparison.
fn read_resumed(out: &Path, arguments: &serde_json::Value, planned: usize) -> anyhow::Result<Done> {
    let summary = resume::read_summary(out, "summary.json")?;
    resume::check_same_arguments(&summary["arguments"], arguments, out)?;
    let unreadable = |what: &str, e: serde_json::Error| {
        anyhow::anyhow!(
            "cannot resume: {what} in {}/summary.json is unreadable ({e}); start a new run with --force",
            out.display()
        )
    };
    let runs: Vec<GrokRunSummary> =
        serde_json::from_value(summary["runs"].clone()).map_err(|e| unreadable("the runs", e))?;
    let curves: Vec<Curve> = serde_json::from_value(summary["curves"].clone())
        .map_err(|e| unreadable("the curves", e))?;
    if runs.len() != curves.len() || runs.len() > planned {
        bail!(
            "cannot resume: {}/summary.json holds {} runs and {} curves for a plan of {planned}; start a new run with --force",
            out.display(),
            runs.len(),
            curves.len()
        );
    }
    Ok(Done { curves, runs })
}

fn transformer_config(
    task: &ModularTask,
    a: &GrokArgs,
    model: ModelChoice,
    layers: usize,
) -> TransformerConfig {
    TransformerConfig {
        vocab: task.vocab(),
        n_classes: task.p as usize,
        seq_len: convexformer::grok::data::SEQ_LEN,
        width: a.width,
        heads: a.heads,
        layers,
        mlp_ratio: 4,
        attention: if model == ModelChoice::Convex {
            AttentionKind::Convex
        } else {
            AttentionKind::Softmax
        },
    }
}

/// The global model's curve and summary, and whether Ctrl-C stopped its path.
fn run_global_model(
    task: &ModularTask,
    gcfg: &GlobalConfig,
    seed: u64,
) -> anyhow::Result<(Curve, GrokRunSummary, bool)> {
    let pb = super::common::progress(gcfg.n_betas as u64, &format!("global s{seed}"));
    let run = run_global(task, gcfg, seed, |p| {
        pb.set_position(p.step as u64);
        pb.set_message(format!(
            "train {:.3} val {:.3} gap {:.1e}",
            p.train_acc, p.val_acc, p.certificate.relative_gap
        ));
    })?;
    pb.finish_and_clear();
    Ok((
        Curve::from_global(seed, &run),
        GrokRunSummary::Global(GlobalSummary::new(seed, &run, task)),
        run.interrupted,
    ))
}

fn summary_line(s: &GrokRunSummary) -> String {
    let m = s.milestones();
    let (speed, cert) = match s {
        GrokRunSummary::Transformer(t) => (
            format!(", {:.1} steps/s", t.steps_per_second),
            String::new(),
        ),
        GrokRunSummary::Global(g) => (
            String::new(),
            format!(
                ", final relative gap {:.2e}",
                g.final_certificate.relative_gap
            ),
        ),
    };
    format!(
        "{}: train99 at step {}, val99 at step {}, gap {}; final train {:.4} val {:.4}{speed}{cert}",
        s.label(),
        fmt_opt(m.train99_step),
        fmt_opt(m.val99_step),
        fmt_opt(m.grok_gap_steps),
        s.final_train_acc(),
        s.final_val_acc(),
    )
}

fn write_curves(path: &Path, curves: &[&Curve]) -> anyhow::Result<()> {
    let mut s = String::from(
        "model,layers,seed,step,seconds,train_loss,train_acc,val_loss,val_acc,beta,relative_gap\n",
    );
    for c in curves {
        for r in &c.rows {
            let _ = writeln!(
                s,
                "{},{},{},{},{:.6},{:.6e},{:.6},{:.6e},{:.6},{},{}",
                c.model.name(),
                c.layers,
                c.seed,
                r.step,
                r.seconds,
                r.train_loss,
                r.train_acc,
                r.val_loss,
                r.val_acc,
                r.beta.map_or_else(String::new, |b| format!("{b:.6e}")),
                r.relative_gap
                    .map_or_else(String::new, |g| format!("{g:.3e}")),
            );
        }
    }
    super::common::write_file(path, s)
}

/// What the numbers say, in words, for summary.json and the terminal.
fn notes(runs: &[GrokRunSummary], a: &GrokArgs, op: ModOp) -> Vec<String> {
    let mut out = Vec::new();
    let trained: Vec<&TransformerSummary> = runs
        .iter()
        .filter_map(|r| match r {
            GrokRunSummary::Transformer(t) => Some(t),
            GrokRunSummary::Global(_) => None,
        })
        .collect();
    if !trained.is_empty() && trained.iter().all(|t| t.milestones.val99_step.is_none()) {
        out.push(format!(
            "no transformer reached {:.0}% validation accuracy within {} steps: the budget may be too short to see grokking ({} mod {} usually needs 10^4 or more steps at this setup). Rerun longer, e.g. `convexformer grok --op {} --p {} --frac {} --steps 20000 --model standard,convex --out DIR`",
            convexformer::grok::THRESHOLD * 100.0,
            a.steps,
            op.name(),
            a.p,
            op.name(),
            a.p,
            a.frac
        ));
    }
    for t in &trained {
        if t.milestones.train99_step.is_none() {
            out.push(format!(
                "{} L{} s{} never reached {:.0}% training accuracy in {} steps",
                t.model.name(),
                t.layers,
                t.seed,
                convexformer::grok::THRESHOLD * 100.0,
                a.steps
            ));
        }
    }
    for r in runs {
        if let GrokRunSummary::Global(g) = r {
            if !g.all_converged {
                out.push(format!(
                    "{}: not every β of the path reached the gap tolerance {:e} within {} s per β, shared along the path (worst relative gap {:.2e}); raise --global-max-seconds for tighter certificates",
                    r.label(),
                    a.global_tol,
                    a.global_max_seconds,
                    g.worst_relative_gap
                ));
            }
        }
    }
    out
}

fn plots(out: &Path, curves: &[Curve], op: ModOp, p: u32) -> anyhow::Result<()> {
    let mut acc = Vec::new();
    let mut loss = Vec::new();
    for c in curves {
        let x: Vec<f64> = c.rows.iter().map(|r| r.step as f64).collect();
        for (what, ya, yl) in [
            (
                "train",
                c.rows.iter().map(|r| r.train_acc).collect::<Vec<_>>(),
                c.rows.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
            ),
            (
                "val",
                c.rows.iter().map(|r| r.val_acc).collect(),
                c.rows.iter().map(|r| r.val_loss).collect(),
            ),
        ] {
            acc.push(Series {
                name: format!("{} {what}", c.label()),
                x: x.clone(),
                y: ya,
            });
            loss.push(Series {
                name: format!("{} {what}", c.label()),
                x: x.clone(),
                y: yl,
            });
        }
    }
    let title = format!("{} mod {p}: accuracy", op.formula());
    line_plot(
        &out.join("grok"),
        &LinePlot {
            title: &title,
            x_label: "step (global model: β index on the path)",
            y_label: "accuracy",
            log_x: true,
            log_y: false,
            series: &acc,
            points: false,
        },
    )?;
    let title = format!("{} mod {p}: cross-entropy", op.formula());
    line_plot(
        &out.join("grok_loss"),
        &LinePlot {
            title: &title,
            x_label: "step (global model: β index on the path)",
            y_label: "mean cross-entropy",
            log_x: true,
            log_y: true,
            series: &loss,
            points: false,
        },
    )?;
    Ok(())
}
