//! `convexformer predict` with a sequence model: N×n×c predictions.

use super::super::common::{check_out_file, write_json};
use super::super::predict::PredictArgs;
use anyhow::Context;
use convexformer::data::npz::read_npz_as;
use convexformer::data::Targets;
use convexformer::model::SequenceModel;
use convexformer::sequence::recovery::fit_value;
use convexformer::sequence::sequence_error;
use std::path::Path;

pub fn run(a: &PredictArgs, model: &SequenceModel) -> anyhow::Result<()> {
    let (data, has_y) = if a.data.starts_with("synthetic") {
        (super::load(&a.data)?, true)
    } else {
        read_npz_as(Path::new(&a.data), false, Some(Targets::PerPosition))?
    };
    let yhat = model.predict(&data)?;
    let (n_s, n, c) = (data.n_samples, data.n_tokens, model.header.n_outputs);
    write_npy3(&a.out, (n_s, n, c), &yhat)?;
    println!("wrote {} ({n_s}×{n}×{c})", a.out.display());
    // Metrics when the data has targets that match the model's outputs.
    if has_y && data.n_outputs == c {
        let loss = model.header.loss;
        let err = sequence_error(loss, &data, &yhat);
        let mean_loss = fit_value(loss, &data, &yhat) / (n_s * n) as f64;
        let kind = if loss.is_classification() {
            "error rate"
        } else {
            "mean squared error"
        };
        println!("{kind} per position {err:.6}, mean loss {mean_loss:.6}");
        let metrics = a.out.with_extension("metrics.json");
        check_out_file(&metrics, a.force)?;
        write_json(
            &metrics,
            &serde_json::json!({ "n_samples": n_s, "n_tokens": n, "error": err, "error_kind": kind, "mean_loss": mean_loss }),
        )?;
    }
    Ok(())
}

/// Writes N×n×c float64 values (row-major) as a `.npy` file.
fn write_npy3(path: &Path, shape: (usize, usize, usize), v: &[f64]) -> anyhow::Result<()> {
    let a = ndarray::ArrayView3::from_shape(shape, v).context("prediction shape")?;
    ndarray_npy::write_npy(path, &a).with_context(|| format!("cannot write {}", path.display()))
}
