//! The samples one shard of a data-parallel fit holds, from a file list, a
//! glob pattern or one file.

use super::tensors::{read_inputs_as, read_safetensors_rows};
use super::{Dataset, Targets};
use crate::comm::shard_range;
use crate::error::{invalid, Error, Result};
use std::path::{Path, PathBuf};

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
/// and the files it read. `layout`: targets per sample (the token programs)
/// or per position (the sequence program).
pub fn read_shard(
    files: &[PathBuf],
    rank: usize,
    size: usize,
    layout: Targets,
) -> Result<(Dataset<'static>, Vec<PathBuf>)> {
    let read = |f: &Path| read_inputs_as(f, true, Some(layout)).map(|(d, _)| d);
    match files {
        [] => invalid("no data files"),
        [one] => Ok((read_rows(one, rank, size, layout)?, vec![one.clone()])),
        many => {
            if many.len() < size {
                return invalid(format!(
                    "{} data files for {size} shards: give at least one file per process",
                    many.len()
                ));
            }
            let mine = &many[shard_range(many.len(), rank, size)];
            let mut data = read(&mine[0])?;
            for f in &mine[1..] {
                let next = read(f)?;
                data = concat(data, next, f)?;
            }
            Ok((data, mine.to_vec()))
        }
    }
}

/// Shard `rank`'s contiguous block of the samples of one file: only that
/// block's bytes from a `.safetensors` file (memory-mapped); all of an
/// `.npz` file (its members may be compressed), keeping the block.
fn read_rows(path: &Path, rank: usize, size: usize, layout: Targets) -> Result<Dataset<'static>> {
    let is_safetensors = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let (n, data) = if is_safetensors {
        let n = safetensors_samples(path)?;
        let rows = shard_range(n, rank, size);
        (
            n,
            (!rows.is_empty())
                .then(|| read_safetensors_rows(path, rows, layout))
                .transpose()?,
        )
    } else {
        let (all, _) = read_inputs_as(path, true, Some(layout))?;
        let rows: Vec<usize> = shard_range(all.n_samples, rank, size).collect();
        (all.n_samples, (!rows.is_empty()).then(|| all.select(&rows)))
    };
    data.map_or_else(
        || {
            invalid(format!(
                "{} has {n} samples, fewer than the {size} shards: use fewer processes",
                path.display()
            ))
        },
        Ok,
    )
}

/// The length of `X`'s first axis in a `.safetensors` file (its header only).
fn safetensors_samples(path: &Path) -> Result<usize> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    // SAFETY: as in `read_safetensors_rows`: read-only, while this runs.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let st = safetensors::SafeTensors::deserialize(&map).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: format!("not a valid .safetensors file, or truncated: {e}"),
    })?;
    let x = st.tensor("X").map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: format!("cannot read tensor 'X': {e}"),
    })?;
    Ok(x.shape().first().copied().unwrap_or(0))
}

/// `a` followed by the samples of `b` (read from `path`).
fn concat(
    mut a: Dataset<'static>,
    b: Dataset<'static>,
    path: &std::path::Path,
) -> Result<Dataset<'static>> {
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
    a.x.to_mut().extend_from_slice(&b.x);
    a.y.extend_from_slice(&b.y);
    if let (Some(la), Some(lb)) = (a.labels.as_mut(), b.labels) {
        la.extend(lb);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{generate, SyntheticSpec, TargetKind};
    use crate::data::tensors::write_safetensors;

    /// `ds` written as `dir/name.safetensors` and `dir/name.npz`.
    fn in_both_formats(dir: &Path, name: &str, ds: &Dataset) -> [PathBuf; 2] {
        let st = dir.join(format!("{name}.safetensors"));
        let npz = dir.join(format!("{name}.npz"));
        write_safetensors(&st, ds).unwrap();
        crate::data::npz::write_npz(&npz, ds).unwrap();
        [st, npz]
    }

    #[test]
    fn one_file_splits_into_the_shards_blocks_of_samples() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [TargetKind::Real, TargetKind::Classes] {
            let (ds, _) = generate(&SyntheticSpec {
                n_samples: 23,
                n_tokens: 3,
                n_features: 2,
                n_outputs: 3,
                kind,
                ..Default::default()
            })
            .unwrap();
            let files = in_both_formats(dir.path(), "d", &ds);
            for file in &files {
                for size in [1, 2, 5] {
                    let mut n = 0;
                    for rank in 0..size {
                        let (shard, files) =
                            read_shard(std::slice::from_ref(file), rank, size, Targets::PerSample)
                                .unwrap();
                        let rows: Vec<usize> = shard_range(23, rank, size).collect();
                        let want = ds.select(&rows);
                        assert_eq!((shard.x, shard.y), (want.x, want.y), "{}", file.display());
                        assert_eq!(files, vec![file.clone()]);
                        n += shard.n_samples;
                    }
                    assert_eq!(n, 23);
                }
                let err = read_shard(std::slice::from_ref(file), 23, 24, Targets::PerSample)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("fewer than the 24 shards"), "{err}");
            }
            let err = read_safetensors_rows(&files[0], 20..30, Targets::PerSample)
                .unwrap_err()
                .to_string();
            assert!(err.contains("23 rows"), "{err}");
        }
    }

    #[test]
    fn sequence_data_split_keeps_a_target_row_per_position() {
        use crate::sequence::{generate_sequence, SequenceSyntheticSpec};
        let dir = tempfile::tempdir().unwrap();
        for kind in [TargetKind::Real, TargetKind::Classes] {
            let (ds, _) = generate_sequence(&SequenceSyntheticSpec {
                n_samples: 11,
                n_tokens: 3,
                n_features: 2,
                n_outputs: 3,
                kind,
                ..Default::default()
            })
            .unwrap();
            assert_eq!(ds.targets, Targets::PerPosition);
            for file in &in_both_formats(dir.path(), "s", &ds) {
                for rank in 0..3 {
                    let (shard, _) =
                        read_shard(std::slice::from_ref(file), rank, 3, Targets::PerPosition)
                            .unwrap();
                    let want = ds.select(&shard_range(11, rank, 3).collect::<Vec<_>>());
                    assert_eq!(shard.targets, Targets::PerPosition);
                    assert_eq!((shard.x, shard.y), (want.x, want.y), "{}", file.display());
                    assert_eq!(shard.labels, want.labels);
                    assert_eq!(shard.n_outputs, 3, "classes counted over the whole file");
                }
            }
        }
    }

    #[test]
    fn file_lists_and_patterns_give_each_shard_a_run_of_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let (ds, _) = generate(&SyntheticSpec {
            n_samples: 40,
            ..Default::default()
        })
        .unwrap();
        for k in 0..4 {
            let rows: Vec<usize> = (k * 10..(k + 1) * 10).collect();
            let f = dir.path().join(format!("p{k}.npz"));
            crate::data::npz::write_npz(&f, &ds.select(&rows)).unwrap();
        }
        let pattern = format!("{}/p*.npz", dir.path().display());
        let files = shard_files(&pattern).unwrap();
        assert_eq!(files.len(), 4);
        let (first, mine) = read_shard(&files, 0, 3, Targets::PerSample).unwrap();
        assert_eq!(mine.len(), 2, "4 files on 3 shards: 2, 1, 1");
        assert_eq!(first.x, ds.select(&(0..20).collect::<Vec<_>>()).x);
        let list = format!("{},{}", files[3].display(), files[0].display());
        assert_eq!(
            shard_files(&list).unwrap(),
            vec![files[3].clone(), files[0].clone()]
        );
        let err = read_shard(&files, 0, 5, Targets::PerSample)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one file per process"), "{err}");
        let none = format!("{}/q*.npz", dir.path().display());
        assert!(shard_files(&none)
            .unwrap_err()
            .to_string()
            .contains("matches no file"));
        let other = generate(&SyntheticSpec {
            n_samples: 5,
            n_features: 3,
            ..Default::default()
        })
        .unwrap()
        .0;
        let bad = dir.path().join("p1b.npz");
        crate::data::npz::write_npz(&bad, &other).unwrap();
        let files = vec![files[0].clone(), bad];
        let err = read_shard(&files, 0, 1, Targets::PerSample)
            .unwrap_err()
            .to_string();
        assert!(err.contains("same data set"), "{err}");
    }
}
