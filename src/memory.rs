//! Refusing a solve that would not fit in memory, before it starts: the
//! solver's working memory is estimated from the problem's shape and
//! compared with what the machine (or its cgroup, on a cluster node) has
//! available, so a run fails at once with the bytes it needs and how to need
//! fewer, instead of being killed by the kernel an hour in.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::loss::{Loss, SampleLoss};
use crate::solver::prox_newton::{AUTO_GRAM_BYTES, MAX_GRAM_BYTES};
use crate::solver::SolverKind;

/// Overrides the available bytes (a scheduler's allocation, or a test).
pub const ENV_LIMIT: &str = "CONVEXFORMER_MEMORY_BYTES";

/// Bytes this process may still allocate: [`ENV_LIMIT`] when set, else the
/// smaller of the kernel's MemAvailable and the cgroup's limit minus its
/// use; `None` where neither can be read (then nothing is refused).
pub fn available() -> Option<u64> {
    if let Some(v) = std::env::var_os(ENV_LIMIT) {
        return v.to_str().and_then(|s| s.trim().parse().ok());
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let cgroup =
        read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a solve will allocate, by part, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// The operator's token-major copy of the data (N·n·d values).
    pub data_copy: u64,
    /// Vectors of one value per row and output (predictions, gradients, the
    /// dual point): a handful of N·c.
    pub rows: u64,
    /// Vectors of one value per coefficient (iterates, gradients, scores).
    pub coefficients: u64,
    /// The second-order solver's Gram matrices, at most.
    pub gram: u64,
}

impl Need {
    /// The working memory of a token-block program (scalar, vector, gated)
    /// on N samples of n tokens × d features with c outputs and `n_blocks`
    /// blocks (n, or n·P with P gates); `gram` is the Gram budget of the
    /// chosen solver (0 for first-order only).
    pub fn token_program(
        samples: usize,
        tokens: usize,
        features: usize,
        outputs: usize,
        n_blocks: usize,
        gram: u64,
    ) -> Need {
        let (nn, t, d, c, b) = (
            samples as u64,
            tokens as u64,
            features as u64,
            outputs as u64,
            n_blocks as u64,
        );
        Need {
            data_copy: nn.saturating_mul(t).saturating_mul(d).saturating_mul(8),
            rows: nn.saturating_mul(c).saturating_mul(8 * 6),
            coefficients: b.saturating_mul(c).saturating_mul(d).saturating_mul(8 * 10),
            gram,
        }
    }

    pub fn total(&self) -> u64 {
        self.data_copy
            .saturating_add(self.rows)
            .saturating_add(self.coefficients)
            .saturating_add(self.gram)
    }

    /// Refuses when the total is above `available` bytes, naming the parts
    /// and `fix` (what option needs fewer bytes).
    pub fn check_against(&self, available: Option<u64>, fix: &str) -> Result<()> {
        let Some(avail) = available else {
            return Ok(());
        };
        if self.total() <= avail {
            return Ok(());
        }
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        Err(Error::TooLarge(format!(
            "this solve needs about {} bytes ({:.2} GiB) of working memory beyond the loaded data \
             (a token-major copy of the data {:.2} GiB, coefficient vectors {:.2} GiB, per-row \
             vectors {:.2} GiB, Gram matrices up to {:.2} GiB), but only {avail} bytes ({:.2} GiB) \
             are available: {fix} (or set {ENV_LIMIT} to the bytes this run may use)",
            self.total(),
            gib(self.total()),
            gib(self.data_copy),
            gib(self.coefficients),
            gib(self.rows),
            gib(self.gram),
            gib(avail),
        )))
    }

    /// [`Need::check_against`] the machine's [`available`] memory.
    pub fn check(&self, fix: &str) -> Result<()> {
        self.check_against(available(), fix)
    }
}

/// Refuses a token-block program (scalar, vector, gated with `n_blocks` =
/// n·P blocks) on `data` that would not fit in the memory left.
pub fn check_token_program(
    data: &Dataset,
    n_blocks: usize,
    loss: Loss,
    solver: SolverKind,
) -> Result<()> {
    let (n, t, d, c) = (
        data.n_samples,
        data.n_tokens,
        data.n_features,
        data.n_outputs,
    );
    // The Grams of a working set of every block, within the solver's budget.
    let m = (n_blocks as u64).saturating_mul(d as u64).saturating_add(1);
    let sets = if loss.curvature_per_output() && c > 1 {
        c as u64
    } else {
        1
    };
    let full = m
        .saturating_mul(sets.saturating_mul(m).saturating_add(n as u64))
        .saturating_mul(8);
    let cap = match solver {
        // Coordinate descent keeps d×d per block: small beside the data.
        SolverKind::Fista | SolverKind::Cd => 0,
        SolverKind::Auto => AUTO_GRAM_BYTES as u64,
        SolverKind::ProxNewton => MAX_GRAM_BYTES as u64,
    };
    Need::token_program(n, t, d, c, n_blocks, full.min(cap)).check(
        "use fewer samples or tokens (a subset of the data), fewer gates for the gated program, \
         or --solver fista (no Gram matrices)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_adds_up_and_a_small_machine_refuses_it_with_the_fix() {
        let need = Need::token_program(1000, 16, 8, 2, 16, 0);
        assert_eq!(need.data_copy, 1000 * 16 * 8 * 8);
        assert_eq!(need.total(), need.data_copy + need.rows + need.coefficients);
        need.check_against(Some(need.total()), "x").unwrap();
        need.check_against(None, "x").unwrap();
        let err = need
            .check_against(Some(need.total() - 1), "use fewer samples")
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge(_)));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("needs about {} bytes", need.total())),
            "{msg}"
        );
        assert!(msg.contains("use fewer samples"), "{msg}");
        // Sizes past u64 saturate instead of wrapping to a small number.
        let huge = Need::token_program(usize::MAX, usize::MAX, 2, 2, 2, 0);
        assert_eq!(huge.total(), u64::MAX);
    }

    #[test]
    fn this_machine_reports_its_memory() {
        if std::env::var_os(ENV_LIMIT).is_none() && cfg!(target_os = "linux") {
            assert!(available().is_some_and(|b| b > 0));
        }
    }
}
