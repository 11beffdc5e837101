//! Data-parallel solves: the processes that each hold a shard of the samples
//! and sum what the solver sums over them.
//!
//! Every step of the engine that sums over rows (the loss, its gradient, the
//! dual objective, screening scores, Gram matrices, β_max) is one sum of a
//! short vector across the shards; everything else is the same
//! deterministic update on every process. So every process holds the same
//! iterate and the same certificate of the global problem, and a solve on
//! P shards differs from the one-process solve only by the order of its
//! sums. [`crate::operator::Sharded`] puts an operator on a shard behind a
//! [`Communicator`]; the solvers need nothing else.
//!
//! - [`SingleProcess`]: the default, one shard, no communication;
//! - [`ThreadGroup`]: P shards as P threads of one process (tests, trials);
//! - `mpi::MpiWorld` (cargo feature `mpi`): P processes under `mpirun`/`srun`.

mod threads;
pub use threads::ThreadGroup;
#[cfg(feature = "mpi")]
pub mod mpi;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// The shards of one data-parallel solve, as one shard sees them.
pub trait Communicator: Sync {
    /// This shard's index, 0..size.
    fn rank(&self) -> usize;
    /// Number of shards.
    fn size(&self) -> usize;
    /// Sums `values` elementwise over all shards, in place. Every shard
    /// receives the same bits (sums are formed in one order for all), so
    /// every shard takes the same decisions after it. Collective: every
    /// shard calls it at the same point with the same length.
    fn sum(&self, values: &mut [f64]);
    /// What the sums moved so far.
    fn stats(&self) -> ReduceStats;
    /// True on every shard when `flag` is true on any (stop decisions that
    /// rest on a clock or a signal, which differ between processes).
    fn any(&self, flag: bool) -> bool {
        let mut v = [f64::from(u8::from(flag))];
        self.sum(&mut v);
        v[0] > 0.0
    }
}

/// Counts of the sums across shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReduceStats {
    /// Collective sums made.
    pub calls: u64,
    /// f64 payload bytes each shard contributed to them.
    pub bytes: u64,
}

/// Counters shared by the implementations.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn add(&self, values: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(8 * values as u64, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> ReduceStats {
        ReduceStats {
            calls: self.calls.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// One shard holding all the data: sums are the identity.
#[derive(Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&self, _values: &mut [f64]) {}
    fn stats(&self) -> ReduceStats {
        ReduceStats::default()
    }
}

/// Shard 0's `values` on every shard (what the others pass is ignored): its
/// length, then its values, each in one sum (x + 0 is x exactly). For what
/// one process reads and all need, e.g. a stopped run's state to resume.
pub fn from_root(comm: &dyn Communicator, values: Vec<f64>) -> Vec<f64> {
    if comm.size() == 1 {
        return values;
    }
    let root = comm.rank() == 0;
    let mut len = [if root { values.len() as f64 } else { 0.0 }];
    comm.sum(&mut len);
    let mut out = if root {
        values
    } else {
        vec![0.0; len[0] as usize]
    };
    comm.sum(&mut out);
    out
}

/// The contiguous block of `n` samples that shard `rank` of `size` holds:
/// the first n mod size shards hold one more.
pub fn shard_range(n: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

#[cfg(test)]
mod tests;
