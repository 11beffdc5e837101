//! numpy in and out. X arrives as (N, n, d) float64 or float32 in any
//! memory order: a C-ordered float64 array is lent to the core as it is (no
//! copy), anything else is copied once into the core's sample-major f64
//! layout. Targets arrive as real rows (N, c) or integer class labels (N,).

use convexformer::data::Dataset;
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::IntoPy;

/// The token matrices X, (N, n, d), sample-major: numpy's buffer (held
/// read-only while the core reads it) or a converted copy.
pub struct Tokens<'py> {
    values: Values<'py>,
    pub shape: (usize, usize, usize),
}

enum Values<'py> {
    /// A C-contiguous float64 array: the core reads its buffer.
    Lent(PyReadonlyArrayDyn<'py, f64>),
    /// Any other layout or float32: one copy in C order.
    Copied(Vec<f64>),
}

impl Tokens<'_> {
    /// N·n·d values, sample-major.
    pub fn values(&self) -> &[f64] {
        match &self.values {
            Values::Lent(a) => a.as_slice().expect("checked C-contiguous when lent"),
            Values::Copied(v) => v,
        }
    }

    /// Whether the core reads numpy's own buffer.
    pub fn is_lent(&self) -> bool {
        matches!(self.values, Values::Lent(_))
    }
}

/// X from `x`: lent when it is a C-contiguous float64 array, else copied.
pub fn tokens<'py>(x: &Bound<'py, PyAny>) -> PyResult<Tokens<'py>> {
    let shape3 = |shape: &[usize]| -> PyResult<(usize, usize, usize)> {
        match *shape {
            [n, t, d] => Ok((n, t, d)),
            _ => Err(PyValueError::new_err(format!(
                "X must be 3-D, (samples, tokens, features); got shape {shape:?}"
            ))),
        }
    };
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, f64>>() {
        let shape = shape3(a.shape())?;
        // `as_slice` also grants an F-contiguous buffer, whose memory order
        // is not the logical one: only a C-ordered one is lent.
        let values = if a.is_c_contiguous() && a.as_slice().is_ok() {
            Values::Lent(a)
        } else {
            Values::Copied(a.as_array().iter().copied().collect())
        };
        return Ok(Tokens { values, shape });
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, f32>>() {
        let shape = shape3(a.shape())?;
        let values = Values::Copied(a.as_array().iter().map(|&v| v as f64).collect());
        return Ok(Tokens { values, shape });
    }
    Err(PyTypeError::new_err(format!(
        "X must be a numpy array of float64 or float32, got {}",
        describe(x)
    )))
}

/// Real targets as (N, c) f64 values, row-major, and c.
pub fn real_rows(y: &Bound<'_, PyAny>, n_samples: usize) -> PyResult<(Vec<f64>, usize)> {
    let a = y.extract::<PyReadonlyArrayDyn<'_, f64>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "y must be a numpy array of float64, got {}",
            describe(y)
        ))
    })?;
    let c = match *a.shape() {
        [n] if n == n_samples => 1,
        [n, c] if n == n_samples && c > 0 => c,
        ref s => {
            return Err(PyValueError::new_err(format!(
                "y must have shape ({n_samples},) or ({n_samples}, outputs) to match X's \
                 {n_samples} samples; got {s:?}"
            )))
        }
    };
    Ok((a.as_array().iter().copied().collect(), c))
}

/// Class labels in 0..n_classes, one per sample.
pub fn labels(y: &Bound<'_, PyAny>, n_samples: usize) -> PyResult<Vec<usize>> {
    let a = y.extract::<PyReadonlyArrayDyn<'_, i64>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "class labels must be a numpy array of int64, got {}",
            describe(y)
        ))
    })?;
    if a.shape() != [n_samples] {
        return Err(PyValueError::new_err(format!(
            "class labels must have shape ({n_samples},) to match X; got {:?}",
            a.shape()
        )));
    }
    label_codes(&a)
}

/// The labels as indices, refusing negative ones.
fn label_codes(a: &PyReadonlyArrayDyn<'_, i64>) -> PyResult<Vec<usize>> {
    a.as_array()
        .iter()
        .map(|&l| {
            usize::try_from(l).map_err(|_| {
                PyValueError::new_err(format!("class labels must be 0, 1, ...; got {l}"))
            })
        })
        .collect()
}

/// Optional warm-start values as one flat f64 vector (any shape, any
/// memory order): read from the array, no Python list in between.
pub fn flat(v: Option<PyReadonlyArrayDyn<'_, f64>>) -> Option<Vec<f64>> {
    v.map(|a| c_order(&a))
}

/// The values in C (row-major) order: one copy of the buffer when it is
/// C-contiguous, else element by element. (`as_slice` also accepts an
/// F-contiguous buffer, whose memory order is not the logical one.)
fn c_order(a: &PyReadonlyArrayDyn<'_, f64>) -> Vec<f64> {
    match a.as_slice() {
        Ok(s) if a.is_c_contiguous() => s.to_vec(),
        _ => a.as_array().iter().copied().collect(),
    }
}

/// A data set on `x`'s values with real targets, or class labels when
/// `n_classes` is given.
pub fn dataset<'a>(
    x: &'a Tokens<'_>,
    y: &Bound<'_, PyAny>,
    n_classes: Option<usize>,
) -> PyResult<Dataset<'a>> {
    let (xv, shape) = (x.values(), x.shape);
    match n_classes {
        Some(k) => Dataset::new_classes(xv, shape, labels(y, shape.0)?, k).py(),
        None => {
            let (yv, c) = real_rows(y, shape.0)?;
            Dataset::new_real(xv, shape, yv, c).py()
        }
    }
}

/// A data set with one target row per position (the sequence program): y
/// real of shape (N, n) or (N, n, c), or (N, n) int64 class labels when
/// `n_classes` is given.
pub fn dataset_per_position<'a>(
    x: &'a Tokens<'_>,
    y: &Bound<'_, PyAny>,
    n_classes: Option<usize>,
) -> PyResult<Dataset<'a>> {
    let (xv, shape) = (x.values(), x.shape);
    let (n_samples, n_tokens, _) = shape;
    let bad_shape = |got: &[usize]| {
        PyValueError::new_err(format!(
            "the sequence program needs a target per position: y of shape ({n_samples}, \
             {n_tokens}) or ({n_samples}, {n_tokens}, outputs); got {got:?}"
        ))
    };
    if let Some(k) = n_classes {
        let a = y.extract::<PyReadonlyArrayDyn<'_, i64>>().map_err(|_| {
            PyTypeError::new_err(format!("class labels must be int64, got {}", describe(y)))
        })?;
        if a.shape() != [n_samples, n_tokens] {
            return Err(bad_shape(a.shape()));
        }
        return Dataset::new_classes_per_position(xv, shape, label_codes(&a)?, k).py();
    }
    let a = y
        .extract::<PyReadonlyArrayDyn<'_, f64>>()
        .map_err(|_| PyTypeError::new_err(format!("y must be float64, got {}", describe(y))))?;
    let c = match *a.shape() {
        [n, t] if (n, t) == (n_samples, n_tokens) => 1,
        [n, t, c] if (n, t) == (n_samples, n_tokens) && c > 0 => c,
        ref s => return Err(bad_shape(s)),
    };
    let yv = a.as_array().iter().copied().collect();
    Dataset::new_real_per_position(xv, shape, yv, c).py()
}

/// X without targets (for predictions): c zero outputs per sample.
pub fn inputs<'a>(x: &'a Tokens<'_>, n_outputs: usize) -> PyResult<Dataset<'a>> {
    let shape = x.shape;
    Dataset::new_real(x.values(), shape, vec![0.0; shape.0 * n_outputs], n_outputs).py()
}

/// A numpy array of `shape` holding `v` (row-major).
pub fn array<'py>(
    py: Python<'py>,
    v: Vec<f64>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    PyArray1::from_vec(py, v).reshape(shape)
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.getattr("dtype") {
        Ok(dt) => format!("an array of {dt}"),
        Err(_) => obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "an unknown object".into()),
    }
}
