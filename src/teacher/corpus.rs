//! The text corpus: one sentence per line, split into train, validation and
//! test sets by sentence with a seed.

use crate::error::{invalid, Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;

/// Sentences of a corpus file: trimmed non-empty lines, duplicates dropped
/// (first occurrence kept), at most `max` when given.
pub fn read_corpus(path: &Path, max: Option<usize>) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let s = line.trim();
        if !s.is_empty() && seen.insert(s.to_string()) {
            out.push(s.to_string());
            if max.is_some_and(|m| out.len() >= m) {
                break;
            }
        }
    }
    if out.len() < 10 {
        return invalid(format!(
            "{} has {} distinct non-empty lines; the experiment needs at least 10 sentences, one per line",
            path.display(),
            out.len()
        ));
    }
    Ok(out)
}

/// Indices of the train, validation and test sentences: a seeded shuffle,
/// then the last `test_frac` for test and the `val_frac` before it for validation.
pub fn split(n: usize, val_frac: f64, test_frac: f64, seed: u64) -> Result<[Vec<usize>; 3]> {
    for (name, f) in [("--val-frac", val_frac), ("--test-frac", test_frac)] {
        if !(f > 0.0 && f < 1.0) {
            return invalid(format!("{name} must be in (0, 1), got {f}"));
        }
    }
    let n_test = ((n as f64) * test_frac).round() as usize;
    let n_val = ((n as f64) * val_frac).round() as usize;
    if n_test == 0 || n_val == 0 || n_test + n_val >= n {
        return invalid(format!(
            "{n} sentences with --val-frac {val_frac} and --test-frac {test_frac} leave an empty set; use more sentences or other fractions"
        ));
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let test = idx.split_off(n - n_test);
    let val = idx.split_off(idx.len() - n_val);
    Ok([idx, val, test])
}
