//! The samples one shard of a data-parallel fit holds, from a file list, a
//! glob pattern or one file.

use super::tensors::read_dataset;
use super::Dataset;
use crate::comm::shard_range;
use crate::error::{invalid, Error, Result};
use std::path::PathBuf;

/// The files a `--data` value names: a comma-separated list, a glob
/// pattern (`*`, `?`, `[`; matches sorted by name), or one file.
pub fn shard_files(spec: &str) -> Result<Vec<PathBuf>> {
    if spec.contains(',') {
        return Ok(spec
            .split(',')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect());
    }
    if !spec.contains(['*', '?', '[']) {
        return Ok(vec![PathBuf::from(spec)]);
    }
    let paths =
        glob::glob(spec).map_err(|e| Error::Invalid(format!("--data pattern '{spec}': {e}")))?;
    let mut files = Vec::new();
    for p in paths {
        files.push(p.map_err(|e| Error::Io {
            path: e.path().to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?);
    }
    files.sort();
    if files.is_empty() {
        return invalid(format!("--data pattern '{spec}' matches no file"));
    }
    Ok(files)
}

/// Which samples shard `rank` of `size` reads from `files`: with several
/// files, a contiguous run of whole files (every shard at least one); with
/// one file, a contiguous block of its samples. Returns the shard's data
/// and the files it read.
pub fn read_shard(files: &[PathBuf], rank: usize, size: usize) -> Result<(Dataset, Vec<PathBuf>)> {
    match files {
        [] => invalid("no data files"),
        [one] => {
            // One file: every shard reads it and keeps its block of rows.
            let all = read_dataset(one)?;
            let rows: Vec<usize> = shard_range(all.n_samples, rank, size).collect();
            if rows.is_empty() {
                return invalid(format!(
                    "{} has {} samples, fewer than the {size} shards: use fewer processes",
                    one.display(),
                    all.n_samples
                ));
            }
            Ok((all.select(&rows), vec![one.clone()]))
        }
        many => {
            if many.len() < size {
                return invalid(format!(
                    "{} data files for {size} shards: give at least one file per process",
                    many.len()
                ));
            }
            let mine = &many[shard_range(many.len(), rank, size)];
            let mut data = read_dataset(&mine[0])?;
            for f in &mine[1..] {
                let next = read_dataset(f)?;
                data = concat(data, next, f)?;
            }
            Ok((data, mine.to_vec()))
        }
    }
}

/// `a` followed by the samples of `b` (read from `path`).
fn concat(mut a: Dataset, b: Dataset, path: &std::path::Path) -> Result<Dataset> {
    if (
        a.n_tokens,
        a.n_features,
        a.n_outputs,
        a.targets,
        a.labels.is_some(),
    ) != (
        b.n_tokens,
        b.n_features,
        b.n_outputs,
        b.targets,
        b.labels.is_some(),
    ) {
        return invalid(format!(
            "{} holds {} tokens × {} features and {} outputs, the shard's first file {} × {} \
             and {}: every file must come from the same data set",
            path.display(),
            b.n_tokens,
            b.n_features,
            b.n_outputs,
            a.n_tokens,
            a.n_features,
            a.n_outputs
        ));
    }
    a.n_samples += b.n_samples;
    a.x.extend_from_slice(&b.x);
    a.y.extend_from_slice(&b.y);
    if let (Some(la), Some(lb)) = (a.labels.as_mut(), b.labels) {
        la.extend(lb);
    }
    Ok(a)
}
