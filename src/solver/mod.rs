//! Solvers for the convex programs: FISTA with adaptive restart on a working
//! set of blocks, gap-safe screening, and a duality-gap certificate for every
//! solution (SPEC §5).
//!
//! - [`certificate`]: the dual point, the gap, screening and working-set scores;
//! - [`lipschitz`]: power iteration for the step size;
//! - [`fista`]: the first-order inner solver on a working set;
//! - [`prox_newton`] and [`gram_cd`]: the second-order inner solver (a
//!   weighted Gram of the working set, exact block coordinate descent with
//!   Anderson acceleration, a line search);
//! - [`block_cd`]: block coordinate descent on the data, and
//!   [`group_lengths`]: the nonzero groups' lengths set to their best near
//!   the optimum, for its dual point;
//! - [`outer`]: the outer loop (screening, working sets, stopping);
//! - [`path`]: β_max and warm-started regularisation paths.

pub mod block_cd;
pub mod certificate;
pub mod fista;
pub mod gram_cd;
pub mod group_lengths;
pub mod interrupt;
pub mod lipschitz;
pub mod outer;
pub mod path;
pub mod prox_newton;

pub use certificate::Certificate;
pub use interrupt::Interrupt;
pub use outer::solve;
pub use path::{beta_grid, beta_max, solve_path, PathStart};

use crate::error::{invalid, Result};

/// How hard to work, and when to stop.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SolverOptions {
    /// Stop when the relative duality gap gap / max(1, |P|) is at most this.
    pub tol: f64,
    /// Cap on FISTA iterations, all working sets together.
    pub max_iter: usize,
    /// Cap on wall-clock seconds.
    pub max_seconds: f64,
    /// FISTA checks its gap every this many iterations.
    pub check_every: usize,
    /// Gap-safe screening on or off.
    pub screening: bool,
    /// Working sets on or off (off: FISTA on all unscreened blocks).
    pub working_sets: bool,
    /// Size of the first working set.
    pub ws_start: usize,
    /// Which inner solver works on the working sets.
    pub solver: SolverKind,
    /// Raised from outside (Ctrl-C, Python's KeyboardInterrupt) to stop
    /// between iterations with the certificate reached so far.
    #[serde(skip)]
    pub interrupt: Option<Interrupt>,
}

/// The inner solver of the working-set loop. Every choice ends with the same
/// certificate on all blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SolverKind {
    /// By operator and loss. Token and gated programs: block coordinate
    /// descent, then prox-Newton once ten epochs on a working set fall
    /// short, where its Gram fits in memory and is cheap to rebuild (the
    /// squared loss, whose Gram never changes; other losses where one Gram
    /// costs at most 16 epochs, with one curvature weight per row for all
    /// outputs, until a Newton step crawls). The sequence program: FISTA,
    /// then prox-Newton where Grams exist and the loss's Hessian is
    /// diagonal across outputs.
    #[default]
    Auto,
    /// FISTA with adaptive restart (first order, one data pass per step).
    Fista,
    /// Prox-Newton: a weighted Gram of the working set (the loss's curvature
    /// per row), solved by exact block coordinate descent with Anderson
    /// acceleration, then a line search. For squared loss one step is exact
    /// (skglm's GramCD).
    ProxNewton,
    /// Block coordinate descent on the data: each block minimised exactly in
    /// its own Gram's metric, with the loss's curvature learned per block,
    /// and Anderson acceleration (skglm's AndersonCD). No m×m Gram: for
    /// many outputs, cross-entropy, and working sets wider than the data.
    Cd,
}

impl SolverKind {
    pub const NAMES: &'static str = "auto, fista, prox-newton or cd";
    pub fn parse(s: &str) -> Result<SolverKind> {
        match s {
            "auto" => Ok(SolverKind::Auto),
            "fista" => Ok(SolverKind::Fista),
            "prox-newton" => Ok(SolverKind::ProxNewton),
            "cd" => Ok(SolverKind::Cd),
            _ => invalid(format!("unknown solver '{s}': use {}", SolverKind::NAMES)),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            SolverKind::Auto => "auto",
            SolverKind::Fista => "fista",
            SolverKind::ProxNewton => "prox-newton",
            SolverKind::Cd => "cd",
        }
    }
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            tol: 1e-6,
            max_iter: 100_000,
            max_seconds: f64::INFINITY,
            check_every: 10,
            screening: true,
            working_sets: true,
            ws_start: 8,
            solver: SolverKind::Auto,
            interrupt: None,
        }
    }
}

impl SolverOptions {
    pub fn validate(&self) -> Result<()> {
        if !(self.tol > 0.0 && self.tol.is_finite()) {
            return invalid(format!("tol must be a positive number, got {}", self.tol));
        }
        if self.max_iter == 0 {
            return invalid("max-iter must be at least 1");
        }
        if self.max_seconds.is_nan() || self.max_seconds <= 0.0 {
            return invalid(format!(
                "max-seconds must be positive, got {}",
                self.max_seconds
            ));
        }
        if self.check_every == 0 || self.ws_start == 0 {
            return invalid("check-every and ws-start must be at least 1");
        }
        Ok(())
    }
}

/// Why a solve stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    Converged,
    MaxIter,
    MaxSeconds,
    /// Stopped by [`SolverOptions::interrupt`].
    Interrupted,
}

impl StopReason {
    /// The name in reports and CSV files (as serialized).
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::Converged => "converged",
            StopReason::MaxIter => "max-iter",
            StopReason::MaxSeconds => "max-seconds",
            StopReason::Interrupted => "interrupted",
        }
    }
}

/// A solution of a convex program, with its certificate and costs.
#[derive(Clone, Debug)]
pub struct Solution {
    /// Coefficients on all blocks, n_blocks·c·d, block-major (row l of block b
    /// at (b·c + l)·d).
    pub coef: Vec<f64>,
    /// Intercept, c (zeros without one).
    pub intercept: Vec<f64>,
    pub beta: f64,
    /// The certificate on the full problem (all blocks).
    pub certificate: Certificate,
    pub iterations: usize,
    /// Passes over the data, a pass over part of the blocks counted in proportion.
    pub data_passes: f64,
    pub seconds: f64,
    pub stop: StopReason,
    /// Blocks removed by gap-safe screening when the solve ended.
    pub screened: usize,
}

impl Solution {
    pub fn converged(&self) -> bool {
        self.stop == StopReason::Converged
    }

    /// Blocks with a nonzero coefficient.
    pub fn active_blocks(&self, block_len: usize) -> Vec<usize> {
        self.coef
            .chunks_exact(block_len)
            .enumerate()
            .filter(|(_, z)| z.iter().any(|&v| v != 0.0))
            .map(|(b, _)| b)
            .collect()
    }
}

#[cfg(test)]
mod tests;
