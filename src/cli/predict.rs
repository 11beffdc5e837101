//! `convexformer predict`: predictions of a fitted model.

use super::common::{check_out_file, load_data, write_json};
use anyhow::bail;
use clap::Args;
use convexformer::data::npz::write_npy_matrix;
use convexformer::model::SavedModel;
use convexformer::report::error;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The output folder of `fit` (or its model.safetensors).
    #[arg(long, alias = "model-file")]
    pub model: PathBuf,
    /// Data to predict on (.npz, .safetensors or synthetic:...); `y` is optional.
    #[arg(long)]
    pub data: String,
    /// Where to write the predictions (.npy): N×c, or N×n×c for a sequence model.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: PredictArgs) -> anyhow::Result<()> {
    if a.out.extension().and_then(|e| e.to_str()) != Some("npy") {
        bail!("--out must name a .npy file, got {}", a.out.display());
    }
    check_out_file(&a.out, a.force)?;
    let model = match SavedModel::load(&a.model)? {
        SavedModel::Token(m) => m,
        SavedModel::Sequence(m) => return super::sequence::predict::run(&a, &m),
    };
    let (data, has_y) = if a.data.starts_with("synthetic") {
        (load_data(&a.data)?.0, true)
    } else {
        convexformer::data::tensors::read_inputs(std::path::Path::new(&a.data), false)?
    };
    let yhat = model.predict(&data)?;
    let c = model.header.n_outputs;
    write_npy_matrix(&a.out, data.n_samples, c, &yhat)?;
    println!("wrote {} ({}×{})", a.out.display(), data.n_samples, c);
    // Metrics when the data has targets that match the model's outputs.
    if has_y && data.n_outputs == c {
        let loss = model.header.loss;
        let err = error(loss, &data, &yhat);
        let mean_loss = convexformer::problem::mean_loss(loss, &data, &yhat);
        let kind = if loss.is_classification() {
            "error rate"
        } else {
            "mean squared error"
        };
        println!("{kind} {err:.6}, mean loss {mean_loss:.6}");
        let metrics = a.out.with_extension("metrics.json");
        check_out_file(&metrics, a.force)?;
        write_json(
            &metrics,
            &serde_json::json!({ "n_samples": data.n_samples, "error": err, "error_kind": kind, "mean_loss": mean_loss }),
        )?;
    }
    Ok(())
}
