//! Data sets: N samples of n×d token matrices and their targets.
//!
//! Storage is sample-major (`x[i][k][q]`, the layout of an `.npz` array `X` of
//! shape N×n×d), so one pass of the solver reads each sample's active token rows
//! as contiguous d-vectors.

pub mod npz;
pub mod shards;
pub mod synthetic;
pub mod tensors;

use crate::error::{invalid, Result};
use std::borrow::Cow;

/// Where the target rows of a data set sit: one per sample (the vector and
/// token programs, SPEC §4a–b) or one per position of each sample (the
/// sequence program, SPEC §4c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Targets {
    /// One row of c targets per sample: `y` is N×c.
    #[default]
    PerSample,
    /// One row of c targets per position (token) of each sample: `y` is N·n×c.
    PerPosition,
}

/// A data set. Targets are always stored as rows of c values `y` (one row per
/// sample or per position, as `targets` says); for class labels `y` holds
/// their one-hot encoding and `labels` the label of each row.
///
/// X is owned or borrowed (`'x`): a caller that already holds the values in
/// this layout (a numpy array, a memory map) lends them without a copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset<'x> {
    /// N, number of samples.
    pub n_samples: usize,
    /// n, tokens (positions) per sample.
    pub n_tokens: usize,
    /// d, features per token.
    pub n_features: usize,
    /// c, outputs per target row (classes for class labels).
    pub n_outputs: usize,
    /// N·n·d values, sample-major: `x[(i·n + k)·d + q]` = X_i[k, q].
    pub x: Cow<'x, [f64]>,
    /// (target rows)·c values, row-major: `y[row·c + l]`, with row = i per
    /// sample or row = i·n + r per position.
    pub y: Vec<f64>,
    /// Class labels in 0..c, one per target row, when the targets are classes.
    pub labels: Option<Vec<usize>>,
    /// One target row per sample or per position.
    pub targets: Targets,
}

impl<'x> Dataset<'x> {
    /// A data set with real targets, one row per sample (`y` is N×c, sample-major).
    pub fn new_real(
        x: impl Into<Cow<'x, [f64]>>,
        shape: (usize, usize, usize),
        y: Vec<f64>,
        n_outputs: usize,
    ) -> Result<Self> {
        Self::real(x, shape, y, n_outputs, Targets::PerSample)
    }

    /// A data set with one class label in `0..n_classes` per sample.
    pub fn new_classes(
        x: impl Into<Cow<'x, [f64]>>,
        shape: (usize, usize, usize),
        labels: Vec<usize>,
        n_classes: usize,
    ) -> Result<Self> {
        Self::classes(x, shape, labels, n_classes, Targets::PerSample)
    }

    /// A data set with real targets, one row per position: `y` holds N·n·c
    /// values, `y[(i·n + r)·c + l]` = Y_i[r, l].
    pub fn new_real_per_position(
        x: impl Into<Cow<'x, [f64]>>,
        shape: (usize, usize, usize),
        y: Vec<f64>,
        n_outputs: usize,
    ) -> Result<Self> {
        Self::real(x, shape, y, n_outputs, Targets::PerPosition)
    }

    /// A data set with one class label in `0..n_classes` per position (N·n
    /// labels, sample-major).
    pub fn new_classes_per_position(
        x: impl Into<Cow<'x, [f64]>>,
        shape: (usize, usize, usize),
        labels: Vec<usize>,
        n_classes: usize,
    ) -> Result<Self> {
        Self::classes(x, shape, labels, n_classes, Targets::PerPosition)
    }

    /// Real targets in either layout: `y` holds (target rows)·c values.
    pub fn real(
        x: impl Into<Cow<'x, [f64]>>,
        shape: (usize, usize, usize),
        y: Vec<f64>,
        n_outputs: usize,
        targets: Targets,
    ) -> Result<Self> {
        Self::build(x, shape, y, n_outputs, None, targets)
    }

    fn build(
        x: impl Into<Cow<'x, [f64]>>,
        shape: (usize, usize, usize),
        y: Vec<f64>,
        n_outputs: usize,
        labels: Option<Vec<usize>>,
        targets: Targets,
    ) -> Result<Self> {
        let ds = Dataset {
            n_samples: shape.0,
            n_tokens: shape.1,
            n_features: shape.2,
            n_outputs,
            x: x.into(),
            y,
            labels,
            targets,
        };
        ds.validate()?;
        Ok(ds)
    }

    /// One class label in `0..n_classes` per target row, in either layout.
    pub fn classes(
        x: impl Into<Cow<'x, [f64]>>,
        shape: (usize, usize, usize),
        labels: Vec<usize>,
        n_classes: usize,
        targets: Targets,
    ) -> Result<Self> {
        if n_classes < 2 {
            return invalid(format!(
                "class labels need at least 2 classes, got {n_classes}"
            ));
        }
        if let Some((p, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= n_classes) {
            let at = match targets {
                Targets::PerSample => format!("sample {p}"),
                Targets::PerPosition => {
                    let n = shape.1.max(1);
                    format!("sample {}, position {}", p / n, p % n)
                }
            };
            return invalid(format!("label {l} of {at} is out of range 0..{n_classes}"));
        }
        checked_len("one-hot y", &[labels.len(), n_classes], 8)?;
        let mut y = vec![0.0; labels.len() * n_classes];
        for (p, &l) in labels.iter().enumerate() {
            y[p * n_classes + l] = 1.0;
        }
        Self::build(x, shape, y, n_classes, Some(labels), targets)
    }

    /// Target rows per sample: 1, or n for targets per position.
    #[inline]
    pub fn rows_per_sample(&self) -> usize {
        match self.targets {
            Targets::PerSample => 1,
            Targets::PerPosition => self.n_tokens,
        }
    }

    /// Number of target rows: N, or N·n for targets per position.
    #[inline]
    pub fn n_rows(&self) -> usize {
        self.n_samples * self.rows_per_sample()
    }

    /// The index of target row `row` as written in messages: `i` per sample,
    /// `i, r` per position.
    pub fn row_name(&self, row: usize) -> String {
        match self.targets {
            Targets::PerSample => row.to_string(),
            Targets::PerPosition => {
                let n = self.n_tokens.max(1);
                format!("{}, {}", row / n, row % n)
            }
        }
    }

    /// Checks shapes and finiteness; every constructor calls it.
    pub fn validate(&self) -> Result<()> {
        let (n, t, d, c) = self.shape();
        let per_position = self.targets == Targets::PerPosition;
        if n == 0 || t == 0 || d == 0 {
            return invalid(format!(
                "empty data: X has shape {n}×{t}×{d}; every dimension must be at least 1"
            ));
        }
        if c == 0 {
            return invalid(if per_position {
                "targets have 0 outputs per position"
            } else {
                "targets have 0 outputs"
            });
        }
        let nx = checked_len("X", &[n, t, d], 8)?;
        let rows = self.n_rows();
        let ny = checked_len("y", &[rows, c], 8)?;
        if self.x.len() != nx {
            return invalid(format!(
                "X holds {} values but its shape {n}×{t}×{d} needs {nx}",
                self.x.len()
            ));
        }
        if self.y.len() != ny {
            return invalid(if per_position {
                format!(
                    "y holds {} values but a sequence target of shape {n}×{t}×{c} needs {ny}",
                    self.y.len()
                )
            } else {
                format!(
                    "y holds {} values but X has {n} samples and y has {c} outputs (needs {ny})",
                    self.y.len()
                )
            });
        }
        if let Some(labels) = &self.labels {
            if labels.len() != rows {
                return invalid(if per_position {
                    format!(
                        "{} labels for {n} samples of {t} positions: y needs one label per position",
                        labels.len()
                    )
                } else {
                    format!(
                        "{} labels for {n} samples: y must have one label per sample",
                        labels.len()
                    )
                });
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
            let at = if per_position {
                format!("{}, {}", self.row_name(p / c), p % c)
            } else {
                self.row_name(p / c)
            };
            return invalid(format!(
                "y[{at}] is {}: remove or impute non-finite targets",
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

    /// The c targets of target row `row` (sample `row` per sample; sample
    /// row / n, position row % n per position).
    #[inline]
    pub fn target(&self, row: usize) -> &[f64] {
        let c = self.n_outputs;
        &self.y[row * c..(row + 1) * c]
    }

    /// The c targets of position `r` of sample `i` (targets per position).
    #[inline]
    pub fn position_target(&self, i: usize, r: usize) -> &[f64] {
        debug_assert_eq!(self.targets, Targets::PerPosition);
        self.target(i * self.n_tokens + r)
    }

    /// All target rows of sample `i`, row-major: c values per sample, n×c
    /// per position.
    #[inline]
    pub fn sample_targets(&self, i: usize) -> &[f64] {
        let s = self.rows_per_sample() * self.n_outputs;
        &self.y[i * s..(i + 1) * s]
    }

    /// The subset of samples `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset<'static> {
        let s = self.n_tokens * self.n_features;
        let rows = self.rows_per_sample();
        let mut x = Vec::with_capacity(idx.len() * s);
        let mut y = Vec::with_capacity(idx.len() * rows * self.n_outputs);
        for &i in idx {
            x.extend_from_slice(self.sample(i));
            y.extend_from_slice(self.sample_targets(i));
        }
        Dataset {
            n_samples: idx.len(),
            x: x.into(),
            y,
            labels: self.labels.as_ref().map(|l| {
                idx.iter()
                    .flat_map(|&i| l[i * rows..(i + 1) * rows].iter().copied())
                    .collect()
            }),
            ..*self
        }
    }

    /// The same tokens with the targets of one position `r` only, as a data
    /// set with targets per sample (the vector program per output row, SPEC
    /// §4c's advice for long sequences). Needs targets per position.
    pub fn position_dataset(&self, r: usize) -> Result<Dataset<'_>> {
        let (n_s, n, d, c) = self.shape();
        if self.targets != Targets::PerPosition {
            return invalid("the data set has one target per sample, not per position");
        }
        if r >= n {
            return invalid(format!("position {r} is out of range 0..{n}"));
        }
        match &self.labels {
            Some(labels) => {
                let l = (0..n_s).map(|i| labels[i * n + r]).collect();
                Dataset::new_classes(&self.x[..], (n_s, n, d), l, c)
            }
            None => {
                let y = (0..n_s)
                    .flat_map(|i| self.position_target(i, r).to_vec())
                    .collect();
                Dataset::new_real(&self.x[..], (n_s, n, d), y, c)
            }
        }
    }

    /// Splits off a validation fraction `frac` in (0, 1), shuffled with `seed`.
    pub fn split(&self, frac: f64, seed: u64) -> Result<(Dataset<'static>, Dataset<'static>)> {
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

    /// The same data set owning its X (a copy when X is borrowed).
    pub fn into_owned(self) -> Dataset<'static> {
        Dataset {
            n_samples: self.n_samples,
            n_tokens: self.n_tokens,
            n_features: self.n_features,
            n_outputs: self.n_outputs,
            x: Cow::Owned(self.x.into_owned()),
            y: self.y,
            labels: self.labels,
            targets: self.targets,
        }
    }

    /// Whether X is borrowed from the caller rather than owned.
    pub fn borrows_x(&self) -> bool {
        matches!(self.x, Cow::Borrowed(_))
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

#[cfg(test)]
mod tests {
    use super::npz::{read_npz_bytes_as, write_npz};
    use super::tensors::{read_inputs_as, write_safetensors};
    use super::*;
    use crate::loss::Loss;
    use ndarray::{Array1, Array2, Array3};
    use ndarray_npy::NpzWriter;

    fn x(n_s: usize, n: usize, d: usize) -> Vec<f64> {
        (0..n_s * n * d).map(|v| v as f64 * 0.5 - 1.0).collect()
    }

    #[test]
    fn per_position_targets_select_and_slice() {
        let (n_s, n, d) = (3, 2, 2);
        let labels = vec![0, 1, 2, 2, 1, 0];
        let ds = Dataset::new_classes_per_position(x(n_s, n, d), (n_s, n, d), labels, 3).unwrap();
        assert_eq!(ds.targets, Targets::PerPosition);
        assert_eq!((ds.rows_per_sample(), ds.n_rows()), (2, 6));
        assert_eq!(ds.position_target(1, 0), &[0.0, 0.0, 1.0]);
        assert_eq!(ds.target(3), ds.position_target(1, 1));
        assert_eq!(ds.sample_targets(2), &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        let sub = ds.select(&[2, 0]);
        assert_eq!(sub.labels.as_deref(), Some(&[1, 0, 0, 1][..]));
        assert_eq!(sub.targets, Targets::PerPosition);
        sub.validate().unwrap();
        let row = ds.position_dataset(1).unwrap();
        assert_eq!(row.targets, Targets::PerSample);
        assert_eq!(row.labels.as_deref(), Some(&[1, 2, 0][..]));
        assert!(row.position_dataset(0).is_err());
        assert!(ds.position_dataset(2).is_err());
        // Per sample, the same accessors read one row per sample.
        let ps = Dataset::new_real(x(n_s, n, d), (n_s, n, d), vec![1.0, 2.0, 3.0], 1).unwrap();
        assert_eq!((ps.rows_per_sample(), ps.n_rows()), (1, 3));
        assert_eq!(ps.sample_targets(1), ps.target(1));
        assert_eq!(ps.select(&[2, 1]).y, vec![3.0, 2.0]);
    }

    #[test]
    fn borrowed_x_is_read_in_place_and_checked_alike() {
        let (n_s, n, d) = (3, 2, 2);
        let values = x(n_s, n, d);
        let lent = Dataset::new_real(&values[..], (n_s, n, d), vec![0.0; 3], 1).unwrap();
        assert!(lent.borrows_x() && std::ptr::eq(lent.x.as_ptr(), values.as_ptr()));
        let owned = Dataset::new_real(values.clone(), (n_s, n, d), vec![0.0; 3], 1).unwrap();
        assert!(!owned.borrows_x() && owned == lent);
        // Views keep borrowing; selections and into_owned copy.
        let ds = Dataset::new_real_per_position(&values[..], (n_s, n, d), vec![0.5; 6], 1).unwrap();
        assert!(ds.position_dataset(1).unwrap().borrows_x());
        assert!(!ds.select(&[0]).borrows_x());
        let kept = ds.clone().into_owned();
        assert!(!kept.borrows_x() && kept == ds);
        // A borrowed X is validated like an owned one.
        let mut bad = values.clone();
        bad[5] = f64::NAN;
        let e = Dataset::new_real(&bad[..], (n_s, n, d), vec![0.0; 3], 1).unwrap_err();
        assert!(e.to_string().contains("X[1, 0, 1] is NaN"), "{e}");
        assert!(Dataset::new_real(&values[..4], (n_s, n, d), vec![0.0; 3], 1).is_err());
    }

    #[test]
    fn validation_names_the_layout() {
        let e = Dataset::new_real_per_position(x(2, 3, 1), (2, 3, 1), vec![0.0; 2], 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sequence target of shape 2×3×1"), "{e}");
        let e = Dataset::new_real(x(2, 3, 1), (2, 3, 1), vec![0.0; 6], 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("X has 2 samples"), "{e}");
        let mut y = vec![0.0; 6];
        y[4] = f64::NAN;
        let e = Dataset::new_real_per_position(x(2, 3, 1), (2, 3, 1), y, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("y[1, 1, 0] is NaN"), "{e}");
        let e = Dataset::new_classes_per_position(x(2, 3, 1), (2, 3, 1), vec![0, 1, 0, 1, 5, 0], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sample 1, position 1"), "{e}");
    }

    #[test]
    fn loss_checks_targets_in_either_layout() {
        let y = vec![1.0, -1.0, 1.0, 0.5];
        let ds = Dataset::new_real_per_position(x(2, 2, 1), (2, 2, 1), y.clone(), 1).unwrap();
        let e = Loss::Logistic.check_targets(&ds).unwrap_err().to_string();
        assert!(e.contains("y[1, 1] = 0.5"), "{e}");
        let e = Loss::CrossEntropy
            .check_targets(&ds)
            .unwrap_err()
            .to_string();
        assert!(e.contains("per position"), "{e}");
        let ds = Dataset::new_real(x(4, 1, 1), (4, 1, 1), y, 1).unwrap();
        let e = Loss::Logistic.check_targets(&ds).unwrap_err().to_string();
        assert!(e.contains("y[3] = 0.5"), "{e}");
        let probs = vec![0.5, 0.5, 1.0, 0.2];
        let ds = Dataset::new_real_per_position(x(1, 2, 1), (1, 2, 1), probs, 2).unwrap();
        let e = Loss::CrossEntropy
            .check_targets(&ds)
            .unwrap_err()
            .to_string();
        assert!(e.contains("y[0, 1] sums to"), "{e}");
    }

    fn npz(add: impl FnOnce(&mut NpzWriter<std::io::Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut w = NpzWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_array("X", &Array3::<f64>::zeros((2, 3, 1))).unwrap();
        add(&mut w);
        w.finish().unwrap().into_inner()
    }

    /// One reader: without a requested layout, `y`'s rank and type pick it.
    #[test]
    fn the_reader_infers_the_layout() {
        let cases: Vec<(Vec<u8>, Targets, usize)> = vec![
            (
                npz(|w| w.add_array("y", &Array1::<f64>::zeros(2)).unwrap()),
                Targets::PerSample,
                1,
            ),
            (
                npz(|w| w.add_array("y", &Array2::<f64>::zeros((2, 3))).unwrap()),
                Targets::PerSample,
                3,
            ),
            (
                npz(|w| w.add_array("y", &Array1::from(vec![0i64, 1])).unwrap()),
                Targets::PerSample,
                2,
            ),
            (
                npz(|w| w.add_array("y", &Array3::<f64>::zeros((2, 3, 2))).unwrap()),
                Targets::PerPosition,
                2,
            ),
            (
                npz(|w| {
                    let y = Array2::from_shape_fn((2, 3), |(i, r)| ((i + r) % 2) as i32);
                    w.add_array("y", &y).unwrap()
                }),
                Targets::PerPosition,
                2,
            ),
        ];
        for (bytes, layout, c) in cases {
            let ds = read_npz_bytes_as(&bytes, None).unwrap();
            assert_eq!((ds.targets, ds.n_outputs), (layout, c));
            // Asking for the layout the file has gives the same data set.
            assert_eq!(read_npz_bytes_as(&bytes, Some(layout)).unwrap(), ds);
        }
        // (N, n) floats are N×c targets per sample unless asked per position.
        let b = npz(|w| w.add_array("y", &Array2::<f64>::zeros((2, 3))).unwrap());
        let ds = read_npz_bytes_as(&b, Some(Targets::PerPosition)).unwrap();
        assert_eq!((ds.targets, ds.n_outputs), (Targets::PerPosition, 1));
        // Asking per sample keeps the per-sample messages.
        let b = npz(|w| w.add_array("y", &Array3::<f64>::zeros((2, 3, 2))).unwrap());
        let e = read_npz_bytes_as(&b, Some(Targets::PerSample)).unwrap_err();
        assert!(e.to_string().contains("2-D (N×c)"), "{e}");
    }

    #[test]
    fn files_round_trip_targets_per_position() {
        let dir = tempfile::tempdir().unwrap();
        let real = Dataset::new_real_per_position(
            x(2, 3, 2),
            (2, 3, 2),
            (0..12).map(|v| v as f64).collect(),
            2,
        )
        .unwrap();
        let classes =
            Dataset::new_classes_per_position(x(2, 3, 2), (2, 3, 2), vec![0, 1, 2, 2, 1, 0], 3)
                .unwrap();
        for ds in [real, classes] {
            for name in ["d.npz", "d.safetensors"] {
                let p = dir.path().join(name);
                if name.ends_with("npz") {
                    write_npz(&p, &ds).unwrap();
                } else {
                    write_safetensors(&p, &ds).unwrap();
                }
                let (back, has_y) = read_inputs_as(&p, true, None).unwrap();
                assert!(has_y);
                assert_eq!(back, ds, "{name}");
            }
        }
    }
}
