//! fit, path and beta_max: the core's [`convexformer::fit::Fit`] on numpy
//! arrays, solved without the GIL.

use convexformer::fit::{Fitted, PathBetas};
use convexformer::model::SavedModel;
use convexformer::sequence::{
    sequence_beta_max, sequence_path, solve_sequence_from, SequenceReport,
};
use convexformer::solver::Interrupt;
use numpy::{PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::prelude::*;

use crate::arrays::{array, dataset, dataset_per_position, flat, tokens};
use crate::config::Config;
use crate::errors::IntoPy;
use crate::model::Model;
use crate::solve::run_interruptible;

/// The report of a fit as JSON: the keys of the CLI's report.json.
fn report_json(f: &Fitted) -> String {
    serde_json::to_string(&f.report).expect("reports serialize")
}

/// Fits one β. Returns the model and the report (JSON).
#[pyfunction]
#[pyo3(signature = (x, y, config, n_classes=None, warm_coef=None, warm_intercept=None))]
pub fn fit(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    config: Config,
    n_classes: Option<usize>,
    warm_coef: Option<PyReadonlyArrayDyn<'_, f64>>,
    warm_intercept: Option<PyReadonlyArrayDyn<'_, f64>>,
) -> PyResult<(Model, String)> {
    let x = tokens(x)?;
    let data = dataset(&x, y, n_classes)?;
    let (warm_coef, warm_intercept) = (flat(warm_coef), flat(warm_intercept));
    let interrupt = Interrupt::new();
    let fit = config.to_fit(&interrupt)?;
    let warm = match (&warm_coef, &warm_intercept) {
        (Some(z), Some(b)) => Some((z.as_slice(), b.as_slice())),
        _ => None,
    };
    let fitted = run_interruptible(py, &interrupt, || fit.fit_from(&data, None, warm))?.py()?;
    let report = report_json(&fitted);
    Ok((Model::from(SavedModel::Token(fitted.model)), report))
}

/// The regularization path over `betas`, or over `n_betas` values from β_max
/// down to `ratio`·β_max. Returns β_max, the models, the reports (JSON),
/// the coefficients (K, n_blocks, c, d) and the intercepts (K, c).
#[pyfunction]
#[pyo3(signature = (x, y, config, n_classes=None, n_betas=10, ratio=0.01, betas=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn path<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    config: Config,
    n_classes: Option<usize>,
    n_betas: usize,
    ratio: f64,
    betas: Option<Vec<f64>>,
) -> PyResult<(
    f64,
    Vec<Model>,
    Vec<String>,
    Bound<'py, PyArrayDyn<f64>>,
    Bound<'py, PyArrayDyn<f64>>,
)> {
    let x = tokens(x)?;
    let data = dataset(&x, y, n_classes)?;
    let interrupt = Interrupt::new();
    let fit = config.to_fit(&interrupt)?;
    let grid = match betas {
        Some(v) => PathBetas::Values(v),
        None => PathBetas::Grid { n: n_betas, ratio },
    };
    let (fits, beta_max) = run_interruptible(py, &interrupt, || fit.path(&data, &grid))?.py()?;
    let reports = fits.iter().map(report_json).collect();
    let (k, c) = (fits.len(), data.n_outputs);
    let blocks = fits.first().map_or(0, |f| f.model.header.n_blocks);
    let coefs = fits
        .iter()
        .flat_map(|f| f.solution.coef.iter().copied())
        .collect();
    let intercepts = fits
        .iter()
        .flat_map(|f| f.solution.intercept.iter().copied())
        .collect();
    let models = fits
        .into_iter()
        .map(|f| Model::from(SavedModel::Token(f.model)))
        .collect();
    Ok((
        beta_max,
        models,
        reports,
        array(py, coefs, &[k, blocks, c, data.n_features])?,
        array(py, intercepts, &[k, c])?,
    ))
}

/// Whether a fit reads `x` in place (a C-ordered float64 array, lent to
/// the core) rather than a converted copy.
#[pyfunction]
pub fn reads_in_place(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(tokens(x)?.is_lent())
}

/// β_max: the smallest β at which the zero model is optimal (of the
/// sequence program when `config` names it).
#[pyfunction]
#[pyo3(signature = (x, y, config, n_classes=None))]
pub fn beta_max(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    config: Config,
    n_classes: Option<usize>,
) -> PyResult<f64> {
    if config.is_sequence() {
        let x = tokens(x)?;
        let data = dataset_per_position(&x, y, n_classes)?;
        let (loss, _, _) = config.sequence(&Interrupt::new())?;
        return py.detach(|| sequence_beta_max(&data, loss)).py();
    }
    let x = tokens(x)?;
    let data = dataset(&x, y, n_classes)?;
    let fit = config.to_fit(&Interrupt::new())?;
    py.detach(|| fit.beta_max(&data)).py()
}

/// Fits the sequence program (SPEC §4c: an output at every position; no
/// intercept). Returns the model and the report (JSON).
#[pyfunction]
#[pyo3(signature = (x, y, config, n_classes=None, warm_coef=None))]
pub fn fit_sequence(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    config: Config,
    n_classes: Option<usize>,
    warm_coef: Option<PyReadonlyArrayDyn<'_, f64>>,
) -> PyResult<(Model, String)> {
    let x = tokens(x)?;
    let data = dataset_per_position(&x, y, n_classes)?;
    let warm_coef = flat(warm_coef);
    let interrupt = Interrupt::new();
    let (loss, beta, opts) = config.sequence(&interrupt)?;
    let run = || -> convexformer::Result<_> {
        let bmax = sequence_beta_max(&data, loss)?;
        let beta = beta.resolve(bmax)?;
        let sol = solve_sequence_from(&data, loss, beta, &opts, warm_coef.as_deref())?;
        let report = SequenceReport::new(&data, loss, &sol, bmax, None)?;
        Ok((sol.to_model(loss), report))
    };
    let (model, report) = run_interruptible(py, &interrupt, run)?.py()?;
    let json = serde_json::to_string(&report).expect("reports serialize");
    Ok((Model::from(SavedModel::Sequence(model)), json))
}

/// The sequence program's regularization path over `betas`, or over
/// `n_betas` values from β_max down to `ratio`·β_max. Returns β_max, the
/// models, the reports (JSON) and the coefficients (K, d, c, n, n).
#[pyfunction]
#[pyo3(signature = (x, y, config, n_classes=None, n_betas=10, ratio=0.01, betas=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn path_sequence<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    config: Config,
    n_classes: Option<usize>,
    n_betas: usize,
    ratio: f64,
    betas: Option<Vec<f64>>,
) -> PyResult<(f64, Vec<Model>, Vec<String>, Bound<'py, PyArrayDyn<f64>>)> {
    let x = tokens(x)?;
    let data = dataset_per_position(&x, y, n_classes)?;
    let interrupt = Interrupt::new();
    let (loss, _, opts) = config.sequence(&interrupt)?;
    let grid = match betas {
        Some(v) => PathBetas::Values(v),
        None => PathBetas::Grid { n: n_betas, ratio },
    };
    let run = || -> convexformer::Result<_> {
        let (sols, bmax) = sequence_path(&data, loss, &grid, &opts)?;
        let reports = sols
            .iter()
            .map(|s| SequenceReport::new(&data, loss, s, bmax, None))
            .collect::<convexformer::Result<Vec<_>>>()?;
        Ok((sols, reports, bmax))
    };
    let (sols, reports, bmax) = run_interruptible(py, &interrupt, run)?.py()?;
    let (_, n, d, c) = data.shape();
    let coefs = sols.iter().flat_map(|s| s.coef.iter().copied()).collect();
    let models = sols
        .iter()
        .map(|s| Model::from(SavedModel::Sequence(s.to_model(loss))))
        .collect();
    let reports = reports
        .iter()
        .map(|r| serde_json::to_string(r).expect("reports serialize"))
        .collect();
    Ok((
        bmax,
        models,
        reports,
        array(py, coefs, &[sols.len(), d, c, n, n])?,
    ))
}
