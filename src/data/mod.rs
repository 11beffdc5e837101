//! Data sets: N samples of n×d token matrices and their targets.
//!
//! Storage is sample-major (`x[i][k][q]`, the layout of an `.npz` array `X` of
//! shape N×n×d), so one pass of the solver reads each sample's active token rows
//! as contiguous d-vectors.

pub mod npz;
pub mod synthetic;
pub mod tensors;

use crate::error::{invalid, Result};

/// A data set. Targets are always stored as an N×c matrix `y`; for class labels
/// `y` holds their one-hot encoding and `labels` the labels themselves.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// N, number of samples.
    pub n_samples: usize,
    /// n, tokens per sample.
    pub n_tokens: usize,
    /// d, features per token.
    pub n_features: usize,
    /// c, number of outputs (classes for class labels).
    pub n_outputs: usize,
    /// N·n·d values, sample-major.
    pub x: Vec<f64>,
    /// N·c values, sample-major.
    pub y: Vec<f64>,
    /// Class labels in 0..c when the targets are classes.
    pub labels: Option<Vec<usize>>,
}

impl Dataset {
    /// A data set with real targets (`y` is N×c, sample-major).
    pub fn new_real(
        x: Vec<f64>,
        shape: (usize, usize, usize),
        y: Vec<f64>,
        n_outputs: usize,
    ) -> Result<Self> {
        let ds = Dataset {
            n_samples: shape.0,
            n_tokens: shape.1,
            n_features: shape.2,
            n_outputs,
            x,
            y,
            labels: None,
        };
        ds.validate()?;
        Ok(ds)
    }

    /// A data set with class labels in `0..n_classes`.
    pub fn new_classes(
        x: Vec<f64>,
        shape: (usize, usize, usize),
        labels: Vec<usize>,
        n_classes: usize,
    ) -> Result<Self> {
        if n_classes < 2 {
            return invalid(format!(
                "class labels need at least 2 classes, got {n_classes}"
            ));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= n_classes) {
            return invalid(format!(
                "label {l} of sample {i} is out of range 0..{n_classes}"
            ));
        }
        let mut y = vec![0.0; labels.len() * n_classes];
        for (i, &l) in labels.iter().enumerate() {
            y[i * n_classes + l] = 1.0;
        }
        let ds = Dataset {
            n_samples: shape.0,
            n_tokens: shape.1,
            n_features: shape.2,
            n_outputs: n_classes,
            x,
            y,
            labels: Some(labels),
        };
        ds.validate()?;
        Ok(ds)
    }

    /// Checks shapes and finiteness; every constructor calls it.
    pub fn validate(&self) -> Result<()> {
        let (n, t, d, c) = (
            self.n_samples,
            self.n_tokens,
            self.n_features,
            self.n_outputs,
        );
        if n == 0 || t == 0 || d == 0 {
            return invalid(format!(
                "empty data: X has shape {n}×{t}×{d}; every dimension must be at least 1"
            ));
        }
        if c == 0 {
            return invalid("targets have 0 outputs");
        }
        let expected = n
            .checked_mul(t)
            .and_then(|v| v.checked_mul(d))
            .ok_or_else(|| crate::Error::TooLarge(format!("X of shape {n}×{t}×{d} overflows")))?;
        if self.x.len() != expected {
            return invalid(format!(
                "X holds {} values but its shape {n}×{t}×{d} needs {expected}",
                self.x.len()
            ));
        }
        if self.y.len() != n * c {
            return invalid(format!(
                "y holds {} values but X has {n} samples and y has {c} outputs (needs {})",
                self.y.len(),
                n * c
            ));
        }
        if let Some(labels) = &self.labels {
            if labels.len() != n {
                return invalid(format!(
                    "{} labels for {n} samples: y must have one label per sample",
                    labels.len()
                ));
            }
        }
        if let Some(p) = self.x.iter().position(|v| !v.is_finite()) {
            let (i, r) = (p / (t * d), p % (t * d));
            return invalid(format!(
                "X[{i}, {}, {}] is {}: remove or impute non-finite values",
                r / d,
                r % d,
                self.x[p]
            ));
        }
        if let Some(p) = self.y.iter().position(|v| !v.is_finite()) {
            return invalid(format!(
                "y[{}] is {}: remove or impute non-finite targets",
                p / c,
                self.y[p]
            ));
        }
        Ok(())
    }

    /// The d-vector of token `k` of sample `i`.
    #[inline]
    pub fn token(&self, i: usize, k: usize) -> &[f64] {
        let d = self.n_features;
        let off = (i * self.n_tokens + k) * d;
        &self.x[off..off + d]
    }

    /// The n×d token matrix of sample `i`.
    #[inline]
    pub fn sample(&self, i: usize) -> &[f64] {
        let s = self.n_tokens * self.n_features;
        &self.x[i * s..(i + 1) * s]
    }

    /// The c targets of sample `i`.
    #[inline]
    pub fn target(&self, i: usize) -> &[f64] {
        let c = self.n_outputs;
        &self.y[i * c..(i + 1) * c]
    }

    /// The subset of samples `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let s = self.n_tokens * self.n_features;
        let c = self.n_outputs;
        let mut x = Vec::with_capacity(idx.len() * s);
        let mut y = Vec::with_capacity(idx.len() * c);
        for &i in idx {
            x.extend_from_slice(self.sample(i));
            y.extend_from_slice(self.target(i));
        }
        Dataset {
            n_samples: idx.len(),
            n_tokens: self.n_tokens,
            n_features: self.n_features,
            n_outputs: c,
            x,
            y,
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
        }
    }

    /// Splits off a validation fraction `frac` in (0, 1), shuffled with `seed`.
    pub fn split(&self, frac: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        if !(frac > 0.0 && frac < 1.0) {
            return invalid(format!("validation fraction must be in (0, 1), got {frac}"));
        }
        let n_val = ((self.n_samples as f64) * frac).round() as usize;
        if n_val == 0 || n_val >= self.n_samples {
            return invalid(format!(
                "validation fraction {frac} of {} samples leaves an empty train or validation set",
                self.n_samples
            ));
        }
        let mut idx: Vec<usize> = (0..self.n_samples).collect();
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let (val, train) = idx.split_at(n_val);
        Ok((self.select(train), self.select(val)))
    }

    /// Shape as (N, n, d, c).
    pub fn shape(&self) -> (usize, usize, usize, usize) {
        (
            self.n_samples,
            self.n_tokens,
            self.n_features,
            self.n_outputs,
        )
    }
}

/// Largest array, in bytes, that the readers and the synthetic generator will
/// allocate: a corrupt header or a typo in a size must fail cleanly instead of
/// aborting on a failed allocation.
pub const MAX_ARRAY_BYTES: u64 = 1 << 36;

/// The number of elements of an array `what` of `shape` with `elem_bytes`-byte
/// elements, or `Error::TooLarge` (naming the byte count) when it overflows or
/// exceeds [`MAX_ARRAY_BYTES`].
pub fn checked_len(what: &str, shape: &[usize], elem_bytes: usize) -> Result<usize> {
    let len = shape.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s));
    let bytes = len.and_then(|l| (l as u64).checked_mul(elem_bytes as u64));
    match (len, bytes) {
        (Some(len), Some(bytes)) if bytes <= MAX_ARRAY_BYTES => Ok(len),
        (_, Some(bytes)) => Err(crate::Error::TooLarge(format!(
            "{what} of shape {shape:?} needs {bytes} bytes, above the limit of {MAX_ARRAY_BYTES} bytes"
        ))),
        _ => Err(crate::Error::TooLarge(format!(
            "{what} of shape {shape:?} needs more than 2^64 bytes"
        ))),
    }
}
