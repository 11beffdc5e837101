//! What `fit` and `path` do differently as one rank of an MPI job: each
//! rank loads its shard of the samples, rank 0 alone writes, and what rank 0
//! reads from an output folder (to resume) reaches every rank.

use anyhow::bail;
use convexformer::comm::{from_root, shard_range, Communicator};
use convexformer::data::shards::{read_shard, shard_files};
use convexformer::data::{Dataset, Targets};
use convexformer::fit::PathResume;
use std::path::PathBuf;

/// How the samples were split across the ranks.
#[derive(Clone, Debug)]
pub struct ShardInfo {
    pub samples_per_rank: Vec<usize>,
    /// The files rank 0 read.
    pub rank0_files: Vec<PathBuf>,
}

/// This rank's samples of `--data` (targets per `layout`) and the whole
/// split: synthetic data drawn whole by every rank (`synthetic`, same seed)
/// and cut to its block; a file list, pattern or one file as
/// [`read_shard`] reads it.
pub fn load_shard(
    spec: &str,
    layout: Targets,
    comm: &dyn Communicator,
    synthetic: impl FnOnce() -> anyhow::Result<Dataset<'static>>,
) -> anyhow::Result<(Dataset<'static>, ShardInfo)> {
    let (rank, size) = (comm.rank(), comm.size());
    let (shard, files) = if spec == "synthetic" || spec.starts_with("synthetic:") {
        let all = synthetic()?;
        if all.n_samples < size {
            bail!(
                "{} samples for {size} ranks: use fewer processes",
                all.n_samples
            );
        }
        let rows: Vec<usize> = shard_range(all.n_samples, rank, size).collect();
        (all.select(&rows), Vec::new())
    } else {
        read_shard(&shard_files(spec)?, rank, size, layout)?
    };
    let mut counts = vec![0.0; size];
    counts[rank] = shard.n_samples as f64;
    comm.sum(&mut counts);
    Ok((
        shard,
        ShardInfo {
            samples_per_rank: counts.iter().map(|&c| c as usize).collect(),
            rank0_files: if rank == 0 { files } else { Vec::new() },
        },
    ))
}

/// report.json's `parallel` section: ranks, the split, and what the sums
/// moved (per rank; per solver iteration too).
pub fn parallel_json(
    comm: &dyn Communicator,
    info: &ShardInfo,
    iterations: usize,
) -> serde_json::Value {
    let stats = comm.stats();
    serde_json::json!({
        "ranks": comm.size(),
        "samples_per_rank": info.samples_per_rank,
        "rank0_files": info.rank0_files,
        "sums": stats.calls,
        "bytes_reduced": stats.bytes,
        "bytes_reduced_per_iteration": stats.bytes as f64 / iterations.max(1) as f64,
    })
}

/// Rank 0's warm start (coefficients, intercepts) on every rank.
pub fn share_warm(
    comm: &dyn Communicator,
    warm: Option<(Vec<f64>, Vec<f64>)>,
) -> Option<(Vec<f64>, Vec<f64>)> {
    if comm.size() == 1 {
        return warm;
    }
    let has = from_root(comm, vec![f64::from(u8::from(warm.is_some()))]);
    let (coef, intercept) = warm.unwrap_or_default();
    let coef = from_root(comm, coef);
    let intercept = from_root(comm, intercept);
    (has[0] > 0.0).then_some((coef, intercept))
}

/// Rank 0's record of a stopped path on every rank.
pub fn share_resume(comm: &dyn Communicator, resume: Option<PathResume>) -> PathResume {
    let r = resume.unwrap_or_default();
    if comm.size() == 1 {
        return r;
    }
    let grid = from_root(comm, r.grid);
    let done = from_root(comm, vec![r.done as f64])[0] as usize;
    let warm = share_warm(comm, r.warm);
    PathResume { grid, done, warm }
}
