//! Data for the sequence program: N samples of n×d token matrices X_i with a
//! target row per position, Y_i ∈ R^{n×c} (real) or one class label per
//! position.
//!
//! `.npz` files hold `X` (float32/float64, N×n×d) and `y`: floats of shape
//! (N, n, c) are real targets, floats of shape (N, n) are real targets with
//! c = 1, integers of shape (N, n) are class labels 0..c per position. The
//! archive is read by the core's `.npz` reader internals, with the same
//! header checks before anything is allocated.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ndarray::{Array2, ArrayView3};
use ndarray_npy::NpzWriter;

use crate::data::npz::{self, format_error, io_error, RawArray, Values};
use crate::data::{checked_len, Dataset};
use crate::error::{invalid, Error, Result};
use crate::loss::Loss;

/// A sequence data set. Targets are stored as N·n rows of c values (`y`,
/// sample-major then position); for class labels `y` holds their one-hot
/// encoding and `labels` the N·n labels.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceDataset {
    /// N, number of samples.
    pub n_samples: usize,
    /// n, tokens (positions) per sample.
    pub n_tokens: usize,
    /// d, features per token.
    pub n_features: usize,
    /// c, outputs per position (classes for class labels).
    pub n_outputs: usize,
    /// N·n·d values, `x[(i·n + k)·d + q]` = X_i[k, q].
    pub x: Vec<f64>,
    /// N·n·c values, `y[(i·n + r)·c + l]` = Y_i[r, l].
    pub y: Vec<f64>,
    /// N·n class labels in 0..c (sample-major) when the targets are classes.
    pub labels: Option<Vec<usize>>,
}

impl SequenceDataset {
    /// Real targets: `y` holds N·n·c values.
    pub fn new_real(
        x: Vec<f64>,
        shape: (usize, usize, usize),
        y: Vec<f64>,
        n_outputs: usize,
    ) -> Result<Self> {
        let ds = SequenceDataset {
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

    /// One class label in `0..n_classes` per position (N·n labels).
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
        if let Some((p, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= n_classes) {
            let n = shape.1.max(1);
            return invalid(format!(
                "label {l} of sample {}, position {} is out of range 0..{n_classes}",
                p / n,
                p % n
            ));
        }
        checked_len("one-hot y", &[labels.len(), n_classes], 8)?;
        let mut y = vec![0.0; labels.len() * n_classes];
        for (p, &l) in labels.iter().enumerate() {
            y[p * n_classes + l] = 1.0;
        }
        let ds = SequenceDataset {
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
        let (n_s, n, d, c) = self.shape();
        if n_s == 0 || n == 0 || d == 0 {
            return invalid(format!(
                "empty data: X has shape {n_s}×{n}×{d}; every dimension must be at least 1"
            ));
        }
        if c == 0 {
            return invalid("targets have 0 outputs per position");
        }
        let nx = checked_len("X", &[n_s, n, d], 8)?;
        let ny = checked_len("y", &[n_s, n, c], 8)?;
        if self.x.len() != nx {
            return invalid(format!(
                "X holds {} values but its shape {n_s}×{n}×{d} needs {nx}",
                self.x.len()
            ));
        }
        if self.y.len() != ny {
            return invalid(format!(
                "y holds {} values but a sequence target of shape {n_s}×{n}×{c} needs {ny}",
                self.y.len()
            ));
        }
        if let Some(labels) = &self.labels {
            if labels.len() != n_s * n {
                return invalid(format!(
                    "{} labels for {n_s} samples of {n} positions: y needs one label per position",
                    labels.len()
                ));
            }
        }
        if let Some(p) = self.x.iter().position(|v| !v.is_finite()) {
            let (i, rest) = (p / (n * d), p % (n * d));
            return invalid(format!(
                "X[{i}, {}, {}] is {}: remove or impute non-finite values",
                rest / d,
                rest % d,
                self.x[p]
            ));
        }
        if let Some(p) = self.y.iter().position(|v| !v.is_finite()) {
            let (i, rest) = (p / (n * c), p % (n * c));
            return invalid(format!(
                "y[{i}, {}, {}] is {}: remove or impute non-finite targets",
                rest / c,
                rest % c,
                self.y[p]
            ));
        }
        Ok(())
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

    /// The n×d token matrix of sample `i`, row-major.
    #[inline]
    pub fn sample(&self, i: usize) -> &[f64] {
        let s = self.n_tokens * self.n_features;
        &self.x[i * s..(i + 1) * s]
    }

    /// The n×c targets of sample `i`, row-major.
    #[inline]
    pub fn targets(&self, i: usize) -> &[f64] {
        let s = self.n_tokens * self.n_outputs;
        &self.y[i * s..(i + 1) * s]
    }

    /// The c targets of position `r` of sample `i`.
    #[inline]
    pub fn target(&self, i: usize, r: usize) -> &[f64] {
        let c = self.n_outputs;
        let off = (i * self.n_tokens + r) * c;
        &self.y[off..off + c]
    }

    /// The subset of samples `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> SequenceDataset {
        let (_, n, _, c) = self.shape();
        let mut x = Vec::with_capacity(idx.len() * n * self.n_features);
        let mut y = Vec::with_capacity(idx.len() * n * c);
        for &i in idx {
            x.extend_from_slice(self.sample(i));
            y.extend_from_slice(self.targets(i));
        }
        SequenceDataset {
            n_samples: idx.len(),
            n_tokens: n,
            n_features: self.n_features,
            n_outputs: c,
            x,
            y,
            labels: self.labels.as_ref().map(|l| {
                idx.iter()
                    .flat_map(|&i| l[i * n..(i + 1) * n].to_vec())
                    .collect()
            }),
        }
    }

    /// The same tokens with the targets of one position `r` only, as a
    /// core [`Dataset`] (the vector program per output row, SPEC §4c's advice
    /// for long sequences).
    pub fn position(&self, r: usize) -> Result<Dataset> {
        let (n_s, n, d, c) = self.shape();
        if r >= n {
            return invalid(format!("position {r} is out of range 0..{n}"));
        }
        match &self.labels {
            Some(labels) => {
                let l = (0..n_s).map(|i| labels[i * n + r]).collect();
                Dataset::new_classes(self.x.clone(), (n_s, n, d), l, c)
            }
            None => {
                let y = (0..n_s).flat_map(|i| self.target(i, r).to_vec()).collect();
                Dataset::new_real(self.x.clone(), (n_s, n, d), y, c)
            }
        }
    }
}

/// Checks that the per-position targets suit `loss` (as
/// [`Loss::check_targets`] does per sample).
pub fn check_sequence_targets(loss: Loss, ds: &SequenceDataset) -> Result<()> {
    let c = ds.n_outputs;
    match loss {
        Loss::Squared | Loss::Huber(_) => Ok(()),
        Loss::Logistic => {
            if c != 1 {
                return invalid(format!(
                    "logistic loss needs one output per position with y in {{-1, +1}}, the data has {c}: use cross-entropy for classes"
                ));
            }
            match ds.y.iter().position(|&v| v != 1.0 && v != -1.0) {
                Some(p) => invalid(format!(
                    "logistic loss needs y in {{-1, +1}}; y[{}, {}] = {}: recode the labels",
                    p / ds.n_tokens,
                    p % ds.n_tokens,
                    ds.y[p]
                )),
                None => Ok(()),
            }
        }
        Loss::CrossEntropy => {
            if c < 2 {
                return invalid(
                    "cross-entropy needs class labels per position (integer y of shape N×n) \
                     or a probability row per position with at least 2 classes",
                );
            }
            for (p, row) in ds.y.chunks_exact(c).enumerate() {
                let s: f64 = row.iter().sum();
                if row.iter().any(|&v| v < 0.0) || (s - 1.0).abs() > 1e-9 {
                    return invalid(format!(
                        "cross-entropy targets must be class labels or probability rows; \
                         y[{}, {}] sums to {s}",
                        p / ds.n_tokens,
                        p % ds.n_tokens
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Reads a sequence data set from a `.npz` file (see the module doc).
pub fn read_sequence_npz(path: &Path) -> Result<SequenceDataset> {
    if path.is_dir() {
        return Err(format_error(path, "is a directory, not a .npz file"));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    read_from(&bytes, path)
}

/// As [`read_sequence_npz`], from the bytes of a file (errors name `<memory>`).
pub fn read_sequence_npz_bytes(bytes: &[u8]) -> Result<SequenceDataset> {
    read_from(bytes, Path::new("<memory>"))
}

/// Inputs to predict on: as [`read_sequence_npz`], but `y` may be absent
/// (then the data set has c = 1 zero targets). Returns whether `y` was there.
pub fn read_sequence_inputs(path: &Path) -> Result<(SequenceDataset, bool)> {
    if path.is_dir() {
        return Err(format_error(path, "is a directory, not a .npz file"));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let (mut z, names) = open_npz(&bytes, path, &["X"])?;
    let x = npz::read_array(&mut z, "X", path)?;
    if names.iter().any(|n| n == "y") {
        let y = npz::read_array(&mut z, "y", path)?;
        return Ok((from_arrays(x, y, path)?, true));
    }
    let &[n_s, n, _] = x.shape.as_slice() else {
        return Err(format_error(
            path,
            format!("X must be 3-D (N×n×d), got shape {:?}", x.shape),
        ));
    };
    let y = RawArray {
        shape: vec![n_s, n],
        dtype: x.dtype,
        values: Values::Float(vec![0.0; checked_len("y", &[n_s, n], 8)?]),
    };
    Ok((from_arrays(x, y, path)?, false))
}

/// An archive read from memory.
type MemNpz<'a> = npz::MemArchive<'a>;

/// Opens the archive and checks that it holds the arrays `want`;
/// returns it with the names of its arrays.
fn open_npz<'a>(bytes: &'a [u8], path: &Path, want: &[&str]) -> Result<(MemNpz<'a>, Vec<String>)> {
    let (z, names) = npz::open_archive(bytes, path)?;
    for &w in want {
        if !names.iter().any(|n| n == w) {
            return Err(format_error(
                path,
                format!(
                    "no array '{w}' in the archive, which holds {names:?}; expected X \
                     (N×n×d) and y (N×n×c floats, or N×n integer labels)"
                ),
            ));
        }
    }
    Ok((z, names))
}

fn read_from(bytes: &[u8], path: &Path) -> Result<SequenceDataset> {
    let (mut z, _) = open_npz(bytes, path, &["X", "y"])?;
    let x = npz::read_array(&mut z, "X", path)?;
    let y = npz::read_array(&mut z, "y", path)?;
    from_arrays(x, y, path)
}

fn from_arrays(x: RawArray, y: RawArray, path: &Path) -> Result<SequenceDataset> {
    let &[n_s, n, d] = x.shape.as_slice() else {
        return Err(format_error(
            path,
            format!("X must be 3-D (N×n×d), got shape {:?}", x.shape),
        ));
    };
    let Values::Float(xv) = x.values else {
        return Err(format_error(
            path,
            format!("X must be float32 or float64, got {}", x.dtype.name()),
        ));
    };
    if y.shape.len() < 2 || y.shape[0] != n_s || y.shape[1] != n {
        return Err(format_error(
            path,
            format!(
                "a sequence target y must have shape (N, n, c) or (N, n) = ({n_s}, {n}, …) \
                 to match X of shape {:?}, got {:?}",
                x.shape, y.shape
            ),
        ));
    }
    let bad = |what: &str| -> Result<SequenceDataset> {
        Err(format_error(
            path,
            format!(
                "{what} y of shape {:?} ({}): expected floats (N, n, c) or (N, n), or integer \
                 labels (N, n)",
                y.shape,
                y.dtype.name()
            ),
        ))
    };
    match y.values {
        Values::Float(yv) => {
            let c = match y.shape.as_slice() {
                [_, _] => 1,
                [_, _, c] => *c,
                _ => return bad("unsupported"),
            };
            SequenceDataset::new_real(xv, (n_s, n, d), yv, c)
        }
        Values::Int(yv) => {
            if y.shape.len() != 2 {
                return bad("integer");
            }
            if let Some((p, v)) = yv.iter().enumerate().find(|(_, &v)| v < 0) {
                return Err(format_error(
                    path,
                    format!(
                        "y[{}, {}] = {v} is negative: class labels must be 0, 1, 2, …",
                        p / n,
                        p % n
                    ),
                ));
            }
            let max = yv.iter().copied().max().unwrap_or(0);
            if max >= npz::MAX_CLASSES as i64 {
                return Err(format_error(
                    path,
                    format!(
                        "label {max} in y implies {max} + 1 classes; at most {} are supported",
                        npz::MAX_CLASSES
                    ),
                ));
            }
            let labels = yv.iter().map(|&v| v as usize).collect();
            SequenceDataset::new_classes(xv, (n_s, n, d), labels, max as usize + 1)
        }
    }
}

/// Writes `ds` as an uncompressed `.npz`: `X` float64 (N, n, d), `y` float64
/// (N, n, c) for real targets or int64 (N, n) for class labels.
pub fn write_sequence_npz(path: &Path, ds: &SequenceDataset) -> Result<()> {
    ds.validate()?;
    let (n_s, n, d, c) = ds.shape();
    let write_err =
        |e: &dyn std::fmt::Display| io_error(path, std::io::Error::other(e.to_string()));
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let mut z = NpzWriter::new(BufWriter::new(file));
    let shape_bug = |e: ndarray::ShapeError| Error::Invalid(format!("internal shape error: {e}"));
    let x = ArrayView3::from_shape((n_s, n, d), &ds.x).map_err(shape_bug)?;
    z.add_array("X", &x).map_err(|e| write_err(&e))?;
    match &ds.labels {
        Some(labels) => {
            let y = Array2::from_shape_vec((n_s, n), labels.iter().map(|&l| l as i64).collect())
                .map_err(shape_bug)?;
            z.add_array("y", &y).map_err(|e| write_err(&e))?;
        }
        None => {
            let y = ArrayView3::from_shape((n_s, n, c), &ds.y).map_err(shape_bug)?;
            z.add_array("y", &y).map_err(|e| write_err(&e))?;
        }
    }
    z.finish().map_err(|e| write_err(&e))?;
    Ok(())
}
