//! What the subcommands share: loading data, splitting off validation data,
//! building the problem, and output folders that never overwrite a user's
//! files without --force.

use super::shards::{load_shard, ShardInfo};
use anyhow::{bail, Context};
use clap::Args;
use convexformer::comm::Communicator;
use convexformer::data::synthetic;
use convexformer::data::tensors::read_dataset;
use convexformer::data::{Dataset, Targets};
use convexformer::loss::Loss;
use convexformer::operator::{GateKind, GateSpec};
use convexformer::problem::Program;
use convexformer::solver::{SolverKind, SolverOptions};
use std::path::{Path, PathBuf};

/// Marker file in every folder convexformer writes.
pub const MARKER: &str = ".convexformer-output";

/// Data, model and solver options shared by `fit` and `path`.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub struct ProblemArgs {
    /// A .npz or .safetensors file with X (N×n×d) and y, or
    /// synthetic[:N=..,n=..,d=..,c=..,active=..,noise=..,seed=..,kind=real|binary|classes,rho=..,decay=..].
    #[arg(long, default_value = "synthetic")]
    pub data: String,
    /// The convex program: scalar, vector-l1, vector-l2, gated (SPEC §4d; see --gates) or sequence (SPEC §4c).
    #[arg(long, default_value = "scalar")]
    pub model: String,
    /// The loss: squared, logistic, cross-entropy or huber[:DELTA].
    #[arg(long, default_value = "squared")]
    pub loss: String,
    /// Fit an unpenalized intercept.
    #[arg(long)]
    pub intercept: bool,
    /// A held-out data file for validation error.
    #[arg(long, conflicts_with = "val_frac")]
    pub val: Option<PathBuf>,
    /// Hold out this fraction of the data for validation error.
    #[arg(long)]
    pub val_frac: Option<f64>,
    /// Seed of the validation split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Stop at this relative duality gap.
    #[arg(long, default_value_t = 1e-6, allow_negative_numbers = true)]
    pub tol: f64,
    /// Cap on solver iterations (per solve).
    #[arg(long, default_value_t = 100_000)]
    pub max_iter: usize,
    /// Cap on seconds per solve; along a path, each β's share of the
    /// path's solving time (a solve may also use what earlier ones left).
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Turn gap-safe screening off.
    #[arg(long)]
    pub no_screening: bool,
    /// Turn working sets off (the inner solver on all unscreened tokens).
    #[arg(long)]
    pub no_working_sets: bool,
    /// Inner solver on the working sets: auto (coordinate descent on the
    /// token and gated programs, then prox-Newton for squared loss where
    /// the working set's Gram fits; FISTA on the sequence program), fista,
    /// prox-newton or cd.
    #[arg(long, default_value = "auto")]
    pub solver: String,
    /// Gated model: number of gates P.
    #[arg(long, default_value_t = 8)]
    pub gates: usize,
    /// Gated model: gates drawn as gaussian or from training samples.
    #[arg(long, default_value = "gaussian")]
    pub gate_kind: String,
    /// Gated model: token-wise gates (each gate reads one token row).
    #[arg(long)]
    pub gate_tokenwise: bool,
    /// Gated model: seed of the gates.
    #[arg(long, default_value_t = 0)]
    pub gate_seed: u64,
}

/// Loaded data: train, optional validation, where it came from.
pub struct Loaded {
    pub train: Dataset<'static>,
    pub val: Option<Dataset<'static>>,
    pub source: String,
    /// Planted tokens, for synthetic data.
    pub planted: Option<Vec<usize>>,
    /// Training samples on all ranks (`train` holds this rank's).
    pub total_samples: usize,
    /// How the samples were split, when this is one rank of several.
    pub shards: Option<ShardInfo>,
}

impl ProblemArgs {
    pub fn program(&self) -> anyhow::Result<Program> {
        Ok(Program::parse(&self.model)?)
    }
    pub fn loss(&self) -> anyhow::Result<Loss> {
        Ok(Loss::parse(&self.loss)?)
    }
    pub fn solver_options(&self) -> anyhow::Result<SolverOptions> {
        let o = SolverOptions {
            tol: self.tol,
            max_iter: self.max_iter,
            max_seconds: self.max_seconds.unwrap_or(f64::INFINITY),
            screening: !self.no_screening,
            working_sets: !self.no_working_sets,
            solver: SolverKind::parse(&self.solver)?,
            // Raised only where a command installed the signal handler.
            interrupt: Some(super::interrupt::flag()),
            ..Default::default()
        };
        o.validate()?;
        Ok(o)
    }

    /// The fit of the program these options ask for, at `beta`.
    pub fn fit(&self, beta: convexformer::fit::Beta) -> anyhow::Result<convexformer::fit::Fit> {
        Ok(convexformer::fit::Fit {
            program: self.program()?,
            loss: self.loss()?,
            beta,
            intercept: self.intercept,
            options: self.solver_options()?,
            gates: self.gate_spec()?,
        })
    }

    /// How the gates are drawn (the gated program only).
    pub fn gate_spec(&self) -> anyhow::Result<Option<GateSpec>> {
        if self.program()? != Program::Gated {
            return Ok(None);
        }
        Ok(Some(GateSpec {
            n_gates: self.gates,
            kind: GateKind::parse(&self.gate_kind)?,
            tokenwise: self.gate_tokenwise,
            seed: self.gate_seed,
        }))
    }

    pub fn load(&self) -> anyhow::Result<Loaded> {
        let (data, planted) = load_data(&self.data)?;
        let (train, val) = match (&self.val, self.val_frac) {
            (Some(p), _) => {
                let v = read_val(p, &data)?;
                (data, Some(v))
            }
            (None, Some(f)) => {
                let (t, v) = data.split(f, self.split_seed)?;
                (t, Some(v))
            }
            (None, None) => (data, None),
        };
        self.check_loaded(Loaded {
            total_samples: train.n_samples,
            train,
            val,
            source: self.data.clone(),
            planted,
            shards: None,
        })
    }

    /// [`ProblemArgs::load`] as one of `comm`'s ranks: this rank's shard of
    /// the samples (all of them in one process), `--val` read whole.
    pub fn load_on(&self, comm: &dyn Communicator) -> anyhow::Result<Loaded> {
        if comm.size() == 1 {
            return self.load();
        }
        if self.val_frac.is_some() {
            bail!(
                "--val-frac would hold out a different part of each rank's shard: give the \
                 held-out samples as a file (--val FILE)"
            );
        }
        let mut planted = None;
        let (train, info) = load_shard(&self.data, Targets::PerSample, comm, || {
            let (all, p) = load_data(&self.data)?;
            planted = p;
            Ok(all)
        })?;
        let val = self.val.as_ref().map(|p| read_val(p, &train)).transpose()?;
        self.check_loaded(Loaded {
            total_samples: info.samples_per_rank.iter().sum(),
            train,
            val,
            source: self.data.clone(),
            planted,
            shards: Some(info),
        })
    }

    fn check_loaded(&self, loaded: Loaded) -> anyhow::Result<Loaded> {
        self.program()?.check(loaded.train.n_outputs)?;
        self.loss()?.check_targets(&loaded.train)?;
        Ok(loaded)
    }
}

/// Validation data from `path`, of the training data's shape.
fn read_val(path: &Path, train: &Dataset) -> anyhow::Result<Dataset<'static>> {
    let v = read_dataset(path).with_context(|| "reading the validation data")?;
    if (v.n_tokens, v.n_features, v.n_outputs)
        != (train.n_tokens, train.n_features, train.n_outputs)
    {
        bail!(
            "validation data {} has tokens {}×{} and {} outputs, the training data {}×{} and {}",
            path.display(),
            v.n_tokens,
            v.n_features,
            v.n_outputs,
            train.n_tokens,
            train.n_features,
            train.n_outputs
        );
    }
    Ok(v)
}

/// `synthetic[:...]` or a file path.
pub fn load_data(spec: &str) -> anyhow::Result<(Dataset<'static>, Option<Vec<usize>>)> {
    if spec == "synthetic" || spec.starts_with("synthetic:") {
        let s = synthetic::parse(spec)?;
        let (ds, planted) = synthetic::generate(&s)?;
        return Ok((ds, Some(planted)));
    }
    let path = Path::new(spec);
    Ok((read_dataset(path)?, None))
}

/// Makes `dir` ready for output: it must not exist, be empty, or `force`
/// must be set. Writes the marker file.
pub fn prepare_out_dir(dir: &Path, force: bool) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!(
                "--out {} is a file, not a folder: choose a folder path",
                dir.display()
            );
        }
        let non_empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read output folder {}", dir.display()))?
            .next()
            .is_some();
        if non_empty && !force {
            bail!(
                "output folder {} exists and is not empty: choose another --out, or pass --force to overwrite convexformer's files in it",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    convexformer::atomic::write(&dir.join(MARKER), "written by convexformer\n")
        .with_context(|| format!("cannot write in output folder {}", dir.display()))?;
    Ok(())
}

/// Refuses to overwrite a file the user has unless `force`.
pub fn check_out_file(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!(
            "{} exists: choose another --out, or pass --force to overwrite it",
            path.display()
        );
    }
    Ok(())
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let s = serde_json::to_string_pretty(value)?;
    write_file(path, s + "\n")
}

/// Writes a whole output file atomically: a reader sees the old file or the
/// new one, never half of one (see `convexformer::atomic`).
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    convexformer::atomic::write(path, contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The command line that produced an output, for reports.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// A JSON description of a data set.
pub fn data_json(l: &Loaded) -> serde_json::Value {
    let (_, t, d, c) = l.train.shape();
    serde_json::json!({
        "source": l.source,
        "n_samples": l.total_samples,
        "n_tokens": t,
        "n_features": d,
        "n_outputs": c,
        "classes": l.train.labels.is_some(),
        "validation_samples": l.val.as_ref().map(|v| v.n_samples),
        "planted_tokens": l.planted,
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// The regularization, given as β or as a fraction of β_max (fit, compare).
#[derive(clap::Args, Debug, Clone, Copy, serde::Serialize)]
pub struct BetaArgs {
    /// Regularization strength β > 0.
    #[arg(long, conflicts_with = "beta_frac", allow_negative_numbers = true)]
    pub beta: Option<f64>,
    /// β as a fraction of β_max (the smallest β whose solution is zero).
    #[arg(long, allow_negative_numbers = true)]
    pub beta_frac: Option<f64>,
}

impl BetaArgs {
    /// What can be checked before β_max is known. `default_frac` serves when
    /// neither is given; without one, one of them is required.
    pub fn check(&self, default_frac: Option<f64>) -> anyhow::Result<()> {
        if let Some(f) = self.beta_frac {
            if !(f > 0.0 && f.is_finite()) {
                bail!("--beta-frac must be a positive number (a fraction of beta_max), got {f}");
            }
        }
        if let Some(b) = self.beta {
            convexformer::problem::check_beta(b)?;
        }
        if self.beta.is_none() && self.beta_frac.is_none() && default_frac.is_none() {
            bail!("give the regularization: --beta B (B > 0) or --beta-frac F (β = F·β_max)");
        }
        Ok(())
    }

    /// The library's β choice (after [`BetaArgs::check`] without a default).
    pub fn choice(&self) -> anyhow::Result<convexformer::fit::Beta> {
        self.check(None)?;
        Ok(match (self.beta, self.beta_frac) {
            (Some(b), _) => convexformer::fit::Beta::Value(b),
            (None, f) => convexformer::fit::Beta::FractionOfMax(f.unwrap_or(1.0)),
        })
    }

    /// β for this β_max (after [`BetaArgs::check`] with the same default).
    pub fn resolve(&self, bmax: f64, default_frac: Option<f64>) -> anyhow::Result<f64> {
        self.check(default_frac)?;
        let beta = match self.beta {
            Some(b) => b,
            None => self.beta_frac.or(default_frac).unwrap_or(1.0) * bmax,
        };
        convexformer::problem::check_beta(beta)?;
        Ok(beta)
    }
}
