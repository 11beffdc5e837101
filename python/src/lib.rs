//! `convexformer._core`: the certified core of convexformer for Python.
//! The scikit-learn estimators (`convexformer.ConvexAttentionRegressor`, ...)
//! are written in Python on top of these few functions:
//!
//! - [`fit::fit`], [`fit::fit_sequence`], [`fit::path`], [`fit::path_sequence`],
//!   [`fit::beta_max`]:
//!   solves on numpy arrays,
//!   with the GIL released and Ctrl-C honoured;
//! - [`model::Model`]: predicts, saves and loads `model.safetensors`, pickles.

mod arrays;
mod config;
mod errors;
mod fit;
mod model;
mod solve;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit::fit, m)?)?;
    m.add_function(wrap_pyfunction!(fit::fit_sequence, m)?)?;
    m.add_function(wrap_pyfunction!(fit::path, m)?)?;
    m.add_function(wrap_pyfunction!(fit::path_sequence, m)?)?;
    m.add_function(wrap_pyfunction!(fit::beta_max, m)?)?;
    m.add_function(wrap_pyfunction!(fit::reads_in_place, m)?)?;
    m.add_class::<model::Model>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
