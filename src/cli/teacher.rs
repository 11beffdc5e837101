//! `convexformer teacher`: student–teacher on a pretrained BERT-family model
//! (see `convexformer::teacher`). Writes curves.csv, positions.csv, summary.json and
//! plots: error against time, the attention maps of the teacher and of both
//! students, an example sentence, token sparsity.
//!
//! ```text
//! scripts/setup_teacher.sh                      # once: model + corpus into teacher-assets/
//! convexformer teacher --model-dir teacher-assets/all-MiniLM-L6-v2 \
//!     --corpus teacher-assets/corpus.txt --out teacher-out
//! ```
//!
//! positions.csv and summary.json are rewritten after every position's
//! certified path; the softmax student's exact training state goes to
//! checkpoints/softmax.safetensors every --checkpoint-every steps and when
//! stopped. Ctrl-C keeps the finished positions (and the student's state)
//! and exits 130; `--resume` solves only the remaining positions and
//! continues the student where it stopped.

use super::common::{command_line, prepare_out_dir, write_json};
use super::interrupt::{self, Interrupted};
use super::resume::{self, RunState};
use anyhow::{bail, Context};
use clap::Args;
use convexformer::nn::TrainState;
use convexformer::plot::{bar_plot, heatmap, line_plot, Heatmap, LinePlot, Series};
use convexformer::problem::Program;
use convexformer::solver::SolverOptions;
use convexformer::teacher::convex_student::ConvexStudent;
use convexformer::teacher::corpus::read_corpus;
use convexformer::teacher::experiment::{run_experiment_resumed, CurvePoint, Outcome, Resume};
use convexformer::teacher::softmax_student::SoftmaxConfig;
use convexformer::teacher::{ExperimentConfig, ExperimentResult, Teacher};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, serde::Serialize)]
pub struct TeacherArgs {
    /// A BERT-family folder: config.json, model.safetensors, tokenizer.json
    /// (scripts/setup_teacher.sh installs all-MiniLM-L6-v2).
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Text, one sentence per line.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "teacher-out")]
    #[serde(skip)]
    pub out: PathBuf,
    /// Overwrite convexformer's files in a non-empty --out.
    #[arg(long)]
    #[serde(skip)]
    pub force: bool,
    /// Continue an interrupted run in --out: its finished positions are kept
    /// (the other options must be the recorded ones).
    #[arg(long, conflicts_with = "force")]
    #[serde(skip)]
    pub resume: bool,
    /// Use at most this many (distinct) sentences of the corpus.
    #[arg(long)]
    pub max_sentences: Option<usize>,
    /// Tokens per sentence, [CLS] and [SEP] included (longer ones are truncated).
    #[arg(long, default_value_t = 16)]
    pub max_tokens: usize,
    /// Output positions the students learn (0 is [CLS]), comma list.
    #[arg(long, default_value = "0,1,2,3")]
    pub positions: String,
    #[arg(long, default_value_t = 0.1)]
    pub val_frac: f64,
    #[arg(long, default_value_t = 0.2)]
    pub test_frac: f64,
    /// Seed of the sentence split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Convex student: vector-l1 (the paper's ℓ₁ output norm: a group per
    /// token and output) or vector-l2 (nuclear norm per token: low rank).
    #[arg(long, default_value = "vector-l1")]
    pub program: String,
    /// Convex student: token features after the (whitened) projection; the
    /// model width keeps all. In our runs on MiniLM the test error fell with
    /// more features (16: 0.94, 32: 0.89, 64: 0.83, 128: 0.76, 384: 0.73 at
    /// position 0) while the solves got slower and less tightly certified.
    #[arg(long, default_value_t = 128)]
    pub proj_dim: usize,
    /// Convex student: β values on each position's path, from β_max down.
    #[arg(long, default_value_t = 6)]
    pub betas: usize,
    /// Convex student: the smallest β as a fraction of β_max.
    #[arg(long, default_value_t = 3e-2)]
    pub beta_ratio: f64,
    /// Convex student: relative duality gap to reach at each β.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Convex student: each β's share of its path's solving seconds. A
    /// solve may also use what the earlier (larger, faster) β left, so a
    /// path's solves take at most betas × this; the small β are nearly
    /// interpolating and slow.
    /// A solve stopped by it reports the gap it reached.
    #[arg(long, default_value_t = 20.0)]
    pub max_seconds: f64,
    /// Softmax student: heads and their dimension.
    #[arg(long, default_value_t = 12)]
    pub softmax_heads: usize,
    #[arg(long, default_value_t = 32)]
    pub softmax_head_dim: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    /// Sentences per AdamW step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 4000)]
    pub softmax_steps: usize,
    /// Cap on the softmax student's training seconds.
    #[arg(long, default_value_t = 120.0)]
    pub softmax_seconds: f64,
    /// Evaluate the softmax student every this many steps.
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Seed of the softmax student's initialisation and batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Save the softmax student's training state every this many steps (0:
    /// only when interrupted), for --resume after a crash.
    #[arg(long, default_value_t = 1000)]
    #[serde(skip)]
    pub checkpoint_every: usize,
}

fn parse_positions(s: &str) -> anyhow::Result<Vec<usize>> {
    let mut v = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let r: usize = p
            .parse()
            .with_context(|| format!("--positions: {p:?} is not a token position (0, 1, ...)"))?;
        if v.contains(&r) {
            bail!("--positions lists {r} twice");
        }
        v.push(r);
    }
    if v.is_empty() {
        bail!("--positions is empty: give a comma list such as 0,1,2");
    }
    Ok(v)
}

impl TeacherArgs {
    fn config(&self) -> anyhow::Result<ExperimentConfig> {
        let solver = SolverOptions {
            tol: self.tol,
            max_seconds: self.max_seconds,
            ..Default::default()
        };
        solver.validate()?;
        if !(self.lr > 0.0 && self.weight_decay >= 0.0 && self.softmax_seconds > 0.0) {
            bail!("--lr and --softmax-seconds must be positive and --weight-decay nonnegative");
        }
        let program = Program::parse(&self.program)?;
        if !matches!(program, Program::VectorL1 | Program::VectorL2) {
            bail!(
                "--program must be vector-l1 or vector-l2, got {}",
                self.program
            );
        }
        Ok(ExperimentConfig {
            program,
            max_tokens: self.max_tokens,
            positions: parse_positions(&self.positions)?,
            val_frac: self.val_frac,
            test_frac: self.test_frac,
            split_seed: self.split_seed,
            proj_dim: self.proj_dim,
            betas: self.betas,
            beta_ratio: self.beta_ratio,
            solver,
            softmax: SoftmaxConfig {
                heads: self.softmax_heads,
                head_dim: self.softmax_head_dim,
                lr: self.lr,
                weight_decay: self.weight_decay,
                batch: self.batch,
                max_steps: self.softmax_steps,
                max_seconds: self.softmax_seconds,
                eval_every: self.eval_every,
                seed: self.seed,
                checkpoint_every: self.checkpoint_every,
            },
        })
    }
}

pub fn run(a: TeacherArgs) -> anyhow::Result<()> {
    let mut cfg = a.config()?;
    cfg.solver.interrupt = Some(interrupt::install()?);
    let arguments = resume::arguments(&a)?;
    let sentences = read_corpus(&a.corpus, a.max_sentences)?;
    let teacher = Teacher::load(&a.model_dir)?;
    let ckdir = a.out.join("checkpoints");
    let ck = ckdir.join("softmax.safetensors");
    let done = if a.resume {
        let convex = read_resumed(&a.out, &arguments)?;
        let softmax = if ck.exists() {
            Some(TrainState::<CurvePoint>::load(&ck)?)
        } else {
            None
        };
        eprintln!(
            "resuming in {}: {} of {} positions already solved{}",
            a.out.display(),
            convex.len(),
            cfg.positions.len(),
            softmax.as_ref().map_or(String::new(), |s| format!(
                "; the softmax student continues from step {}",
                s.step
            ))
        );
        Resume { convex, softmax }
    } else {
        prepare_out_dir(&a.out, a.force)?;
        // A checkpoint of an earlier run in a --force'd folder is not this one's.
        if ckdir.exists() {
            std::fs::remove_dir_all(&ckdir)
                .with_context(|| format!("cannot clear {}", ckdir.display()))?;
        }
        Resume::default()
    };
    let io = |e: anyhow::Error| convexformer::error::Error::Io {
        path: a.out.clone(),
        source: std::io::Error::other(format!("{e:#}")),
    };
    let partial = |convex: &[ConvexStudent], state: RunState| -> anyhow::Result<()> {
        super::common::write_file(&a.out.join("positions.csv"), positions_csv(convex))?;
        write_json(
            &a.out.join("summary.json"),
            &serde_json::json!({
                "command": command_line(),
                "arguments": arguments,
                "state": state.name(),
                "config": cfg,
                "convex": { "positions": convex },
            }),
        )
    };
    let outcome = run_experiment_resumed(
        &teacher,
        &sentences,
        &cfg,
        done,
        |m| eprintln!("{m}"),
        |convex| partial(convex, RunState::Running).map_err(io),
        |state| {
            std::fs::create_dir_all(&ckdir)
                .with_context(|| format!("cannot create {}", ckdir.display()))
                .map_err(io)?;
            state.save(&ck)
        },
    )?;
    let res = match outcome {
        Outcome::Finished(res) => res,
        Outcome::Interrupted { convex, .. } => {
            partial(&convex, RunState::Interrupted)?;
            return Err(Interrupted::wrote_to(&a.out, true));
        }
    };
    let _ = std::fs::remove_dir_all(&ckdir);
    write_outputs(&a, &cfg, &arguments, &teacher, &res)?;
    print!("{}", summary_table(&res));
    println!(
        "wrote {0}/curves.csv, {0}/positions.csv, {0}/summary.json and plots",
        a.out.display()
    );
    Ok(())
}

/// The convex students at their chosen β, pooled over positions: errors on
/// train, validation, test.
fn convex_chosen(res: &ExperimentResult) -> [f64; 3] {
    [0, 1, 2].map(|set| {
        let (a, b) = res.convex.iter().fold((0.0, 0.0), |(a, b), s| {
            let p = &s.points[s.chosen];
            (a + p.sse[set].0, b + p.sse[set].1)
        });
        a / b
    })
}

fn softmax_final(res: &ExperimentResult) -> Option<&convexformer::teacher::experiment::CurvePoint> {
    res.curves.iter().rev().find(|c| c.model == "softmax")
}

fn summary_table(res: &ExperimentResult) -> String {
    let mut s = String::new();
    let c = convex_chosen(res);
    let conv_secs: f64 = res
        .convex
        .iter()
        .map(|s| s.points.last().map_or(0.0, |p| p.seconds))
        .sum();
    let _ = writeln!(
        s,
        "relative error (1 = predicting the mean)   train    val      test     seconds"
    );
    let _ = writeln!(
        s,
        "convex (β chosen on validation)            {:.4}   {:.4}   {:.4}   {conv_secs:.1} (whole path)",
        c[0], c[1], c[2]
    );
    if let Some(p) = softmax_final(res) {
        let _ = writeln!(
            s,
            "softmax attention (step {:>5})             {:.4}   {:.4}   {:.4}   {:.1}",
            p.step, p.train_error, p.val_error, p.test_error, p.seconds
        );
    }
    let t = res.tokens_for_90;
    let _ = writeln!(
        s,
        "tokens holding 90% of attention: teacher {:.2}, softmax {:.2}, convex {:.2} (of {:.1} per sentence)",
        t[0], t[1], t[2], res.tokens_per_sentence
    );
    s
}

/// The convex students finished by the run recorded in `out`, once the
/// command line is shown to be the recorded one.
fn read_resumed(out: &Path, arguments: &serde_json::Value) -> anyhow::Result<Vec<ConvexStudent>> {
    let summary = resume::read_summary(out, "summary.json")?;
    resume::check_same_arguments(&summary["arguments"], arguments, out)?;
    serde_json::from_value(summary["convex"]["positions"].clone()).map_err(|e| {
        anyhow::anyhow!(
            "cannot resume: the positions in {}/summary.json are unreadable ({e}); start a new run with --force",
            out.display()
        )
    })
}

/// positions.csv: each position's chosen point.
fn positions_csv(convex: &[ConvexStudent]) -> String {
    let mut pos = String::from(
        "position,train_samples,beta_ratio,relative_gap,certified,train_error,val_error,test_error,active_tokens\n",
    );
    for s in convex {
        let p = &s.points[s.chosen];
        let toks: Vec<String> = p.active_tokens.iter().map(|t| t.to_string()).collect();
        let _ = writeln!(
            pos,
            "{},{},{:.6e},{:.3e},{},{:.6},{:.6},{:.6},{}",
            s.position,
            s.samples[0],
            p.beta_ratio,
            p.relative_gap,
            p.certified,
            p.error(0),
            p.error(1),
            p.error(2),
            toks.join(" ")
        );
    }
    pos
}

fn write_outputs(
    a: &TeacherArgs,
    cfg: &ExperimentConfig,
    arguments: &serde_json::Value,
    teacher: &Teacher,
    res: &ExperimentResult,
) -> anyhow::Result<()> {
    let out = &a.out;
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.6e}"));
    let mut csv = String::from(
        "model,step,beta_ratio,seconds,train_error,val_error,test_error,relative_gap,active_tokens\n",
    );
    for p in &res.curves {
        let _ = writeln!(
            csv,
            "{},{},{},{:.4},{:.6},{:.6},{:.6},{},{}",
            p.model,
            p.step,
            opt(p.beta_ratio),
            p.seconds,
            p.train_error,
            p.val_error,
            p.test_error,
            opt(p.relative_gap),
            p.active_tokens.map_or(String::new(), |v| format!("{v:.2}"))
        );
    }
    super::common::write_file(&out.join("curves.csv"), csv)?;
    super::common::write_file(&out.join("positions.csv"), positions_csv(&res.convex))?;
    let c = convex_chosen(res);
    let soft = softmax_final(res);
    let certified = res
        .convex
        .iter()
        .all(|s| s.points.iter().all(|p| p.certified));
    write_json(
        &out.join("summary.json"),
        &serde_json::json!({
            "command": command_line(),
            "arguments": arguments,
            "state": RunState::Finished.name(),
            "model_dir": teacher.dir,
            "teacher": {
                "layers": teacher.config.num_hidden_layers,
                "width": teacher.config.hidden_size,
                "heads": teacher.config.num_attention_heads,
                "input": format!("hidden states entering layer {} (after layer {}'s output LayerNorm)", teacher.config.num_hidden_layers - 1, teacher.config.num_hidden_layers as i64 - 2),
                "target": format!("encoder.layer.{}.attention.output.dense output (bias included), before dropout, residual and LayerNorm, at the chosen positions", teacher.config.num_hidden_layers - 1),
                "seconds": res.teacher_seconds,
            },
            "config": cfg,
            "sentences": {"train": res.sentences[0], "val": res.sentences[1], "test": res.sentences[2],
                          "tokens_per_sentence": res.tokens_per_sentence, "padded_to": res.n},
            "projection_energy_kept": res.projection_energy_kept,
            "error_definition": "Σ‖ŷ−y‖² / Σ‖y−ȳ_train‖² over the chosen positions of the sentences that have them (1 = predicting the training mean)",
            "convex": {
                "train_error": c[0], "val_error": c[1], "test_error": c[2],
                "all_points_certified": certified,
                "path_seconds": res.convex.iter().map(|s| s.points.last().map_or(0.0, |p| p.seconds)).sum::<f64>(),
                "positions": res.convex,
            },
            "softmax": soft,
            "tokens_for_90_percent_attention": {"teacher": res.tokens_for_90[0], "softmax": res.tokens_for_90[1], "convex": res.tokens_for_90[2]},
            "maps": res.maps,
            "example": res.example,
        }),
    )?;
    plots(out, cfg, res)
}

fn plots(out: &Path, cfg: &ExperimentConfig, res: &ExperimentResult) -> anyhow::Result<()> {
    let mut series = Vec::new();
    for (model, name) in [
        ("softmax", "softmax attention"),
        ("convex", "convex (β path)"),
    ] {
        for (set, label) in [(0, "train"), (2, "test")] {
            let pts: Vec<_> = res
                .curves
                .iter()
                .filter(|p| p.model == model && p.seconds > 0.0)
                .collect();
            series.push(Series {
                name: format!("{name}, {label}"),
                x: pts.iter().map(|p| p.seconds).collect(),
                y: pts
                    .iter()
                    .map(|p| {
                        if set == 0 {
                            p.train_error
                        } else {
                            p.test_error
                        }
                    })
                    .collect(),
            });
        }
    }
    line_plot(
        &out.join("error_vs_time"),
        &LinePlot {
            title: "Student error against time (1 = predicting the mean)",
            x_label: "seconds",
            y_label: "relative error",
            log_x: true,
            log_y: true,
            series: &series,
            points: true,
        },
    )?;
    let rows: Vec<String> = cfg.positions.iter().map(|r| format!("out {r}")).collect();
    let cols: Vec<String> = (0..res.n).map(|k| k.to_string()).collect();
    for (file, title, values) in [
        (
            "attention_teacher",
            "Teacher: last-layer attention (mean over heads and test sentences)",
            &res.maps.teacher,
        ),
        (
            "attention_softmax",
            "Softmax student: attention (mean over heads and test sentences)",
            &res.maps.softmax,
        ),
        (
            "attention_convex",
            "Convex student: token weights Σ_l‖Z_lk‖ (normalised per position)",
            &res.maps.convex,
        ),
    ] {
        heatmap(
            &out.join(file),
            &Heatmap {
                title,
                x_label: "token position",
                y_label: "output position",
                rows: rows.len(),
                cols: res.n,
                values,
                row_names: Some(&rows),
                col_names: Some(&cols),
            },
        )?;
    }
    let ex = &res.example;
    let len = ex.pieces.len();
    for (file, title, values) in [
        (
            "example_teacher",
            "Teacher attention on a test sentence (mean over heads)",
            &ex.teacher,
        ),
        (
            "example_softmax",
            "Softmax student on the same sentence (mean over heads)",
            &ex.softmax,
        ),
    ] {
        heatmap(
            &out.join(file),
            &Heatmap {
                title,
                x_label: "key token",
                y_label: "query token",
                rows: len,
                cols: len,
                values,
                row_names: Some(&ex.pieces),
                col_names: Some(&ex.pieces),
            },
        )?;
    }
    bar_plot(
        &out.join("token_sparsity"),
        "Tokens holding 90% of the attention mass",
        "model",
        "tokens",
        &[
            "teacher".into(),
            "softmax student".into(),
            "convex student".into(),
        ],
        &res.tokens_for_90,
    )?;
    Ok(())
}
