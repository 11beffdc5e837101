//! The command line. Each subcommand lives in its own file; `common` holds
//! what they share (data loading, output folders, building a problem).

mod bench;
mod checkpoint;
mod common;
mod compare;
mod demo;
mod fit;
mod grok;
mod interrupt;
mod parallel;
mod path;
mod path_resume;
mod predict;
mod process;
mod resume;
mod sequence;
mod shards;
mod teacher;

use clap::{Parser, Subcommand};

pub use interrupt::{Interrupted, EXIT_INTERRUPTED};
pub use process::tune_process_for_training;

/// Convex attention: train attention heads through their convex
/// reformulation, certify them with a duality gap, and read which tokens they use.
/// Without a subcommand, runs the demo.
#[derive(Parser, Debug)]
#[command(name = "convexformer", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Solve one convex program to a certified gap; write report.json and model.safetensors.
    Fit(fit::FitArgs),
    /// Solve along a warm-started β path; write path.csv and plots.
    Path(path::PathArgs),
    /// Predict with a fitted model; write predictions as .npy (and metrics when y is present).
    Predict(predict::PredictArgs),
    /// Time the solver on the benchmark instances S and M.
    Bench(bench::BenchArgs),
    /// The demo: a path on planted synthetic data, with certificates and plots.
    Demo(demo::DemoArgs),
    /// The certified convex solve against simplex- and softmax-attention training; write compare.csv, summary.json and plots.
    Compare(Box<compare::CompareArgs>),
    /// Grokking on modular arithmetic: standard vs convex-attention transformers vs the certified global convex model; write curves.csv, summary.json and plots.
    Grok(Box<grok::GrokArgs>),
    /// Student–teacher on a pretrained BERT-family model: softmax vs convex attention students learn its last attention sublayer; write curves.csv, summary.json and plots.
    Teacher(Box<teacher::TeacherArgs>),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if parallel::launched_ranks() > 1 {
        return match cli.command {
            Some(Command::Fit(a)) => parallel::on_world(|w| fit::run_on(a, w)),
            Some(Command::Path(a)) => parallel::on_world(|w| path::run_on(a, w)),
            Some(other) => parallel::check_single(command_name(&other)),
            None => parallel::check_single("demo"),
        };
    }
    match cli.command {
        Some(Command::Fit(a)) => fit::run(a),
        Some(Command::Path(a)) => path::run(a),
        Some(Command::Predict(a)) => predict::run(a),
        Some(Command::Bench(a)) => bench::run(a),
        Some(Command::Demo(a)) => demo::run(a),
        Some(Command::Compare(a)) => compare::run(*a),
        Some(Command::Grok(a)) => grok::run(*a),
        Some(Command::Teacher(a)) => teacher::run(*a),
        None => demo::run(demo::DemoArgs::default()),
    }
}

/// The subcommand's name as typed.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Fit(_) => "fit",
        Command::Path(_) => "path",
        Command::Predict(_) => "predict",
        Command::Bench(_) => "bench",
        Command::Demo(_) => "demo",
        Command::Compare(_) => "compare",
        Command::Grok(_) => "grok",
        Command::Teacher(_) => "teacher",
    }
}
