//! A fitted model, token (SPEC §4a/b/d) or sequence (§4c): predicts, saves
//! in the CLI's `model.safetensors` format (so `convexformer predict` reads
//! it, and Python reads the CLI's), and pickles as those same bytes.

use convexformer::model::SavedModel;
use numpy::PyArrayDyn;
use pyo3::exceptions::PyFileExistsError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::{Path, PathBuf};

use crate::arrays::{array, inputs, tokens};
use crate::errors::IntoPy;

#[pyclass(module = "convexformer._core", frozen)]
pub struct Model {
    inner: SavedModel,
}

impl From<SavedModel> for Model {
    fn from(inner: SavedModel) -> Self {
        Model { inner }
    }
}

impl Model {
    /// (n_tokens, n_features, n_outputs).
    fn shape(&self) -> (usize, usize, usize) {
        match &self.inner {
            SavedModel::Token(m) => (m.header.n_tokens, m.header.n_features, m.header.n_outputs),
            SavedModel::Sequence(m) => (m.header.n_tokens, m.header.n_features, m.header.n_outputs),
        }
    }
}

#[pymethods]
impl Model {
    /// Predictions: (N, c) for a token model, (N, n, c) for a sequence
    /// model; real outputs, or logits for classification losses.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (n, _, c) = self.shape();
        let x = tokens(x)?;
        let data = inputs(&x, c)?;
        let (yhat, shape) = match &self.inner {
            SavedModel::Token(m) => (
                py.detach(|| m.predict(&data)).py()?,
                vec![data.n_samples, c],
            ),
            SavedModel::Sequence(m) => (
                py.detach(|| m.predict(&data)).py()?,
                vec![data.n_samples, n, c],
            ),
        };
        array(py, yhat, &shape)
    }

    /// Writes `path` (a `model.safetensors` file). An existing file is kept
    /// unless `overwrite`; the write goes to a temporary file renamed into
    /// place, so no reader sees half a model.
    #[pyo3(signature = (path, overwrite=false))]
    fn save(&self, path: PathBuf, overwrite: bool) -> PyResult<()> {
        if path.exists() && !overwrite {
            return Err(PyFileExistsError::new_err(format!(
                "{} exists: pass overwrite=True to replace it",
                path.display()
            )));
        }
        let bytes = self.inner.to_bytes().py()?;
        convexformer::atomic::write(&path, bytes).py()
    }

    /// Reads a `model.safetensors` (or a folder holding one) written by the
    /// CLI or by [`Model::save`].
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Model> {
        Ok(SavedModel::load(&path).py()?.into())
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.to_bytes().py()?))
    }

    #[staticmethod]
    fn from_bytes(data: Vec<u8>) -> PyResult<Model> {
        Ok(SavedModel::from_bytes(data, Path::new("<bytes>"))
            .py()?
            .into())
    }

    /// Pickles as the safetensors bytes.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        Ok((from_bytes, (slf.get().to_bytes(py)?,)))
    }

    /// The convex coefficients: Z of shape (n_blocks, c, d) for a token
    /// model, C of shape (d, c, n, n) for a sequence model.
    #[getter]
    fn coef<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        match &self.inner {
            SavedModel::Token(m) => {
                let h = &m.header;
                array(py, m.coef.clone(), &[h.n_blocks, h.n_outputs, h.n_features])
            }
            SavedModel::Sequence(m) => {
                let h = &m.header;
                let (n, d, c) = (h.n_tokens, h.n_features, h.n_outputs);
                array(py, m.coef.clone(), &[d, c, n, n])
            }
        }
    }

    /// The intercept (c,); zeros for a sequence model, which fits none.
    #[getter]
    fn intercept<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let b = match &self.inner {
            SavedModel::Token(m) => m.intercept.clone(),
            SavedModel::Sequence(m) => vec![0.0; m.header.n_outputs],
        };
        let c = b.len();
        array(py, b, &[c])
    }

    /// The header (program, loss, β, shapes; a token model's heads) as JSON.
    #[getter]
    fn header_json(&self) -> String {
        match &self.inner {
            SavedModel::Token(m) => serde_json::to_string(&m.header),
            SavedModel::Sequence(m) => serde_json::to_string(&m.header),
        }
        .expect("headers serialize")
    }

    fn __repr__(&self) -> String {
        let (n, d, c) = self.shape();
        let (program, loss, beta) = match &self.inner {
            SavedModel::Token(m) => (m.header.program.name(), m.header.loss, m.header.beta),
            SavedModel::Sequence(m) => ("sequence", m.header.loss, m.header.beta),
        };
        format!(
            "Model(program={program}, loss={}, beta={beta}, n_tokens={n}, n_features={d}, n_outputs={c})",
            loss.name()
        )
    }
}
