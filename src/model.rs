//! A fitted convex model on disk: `model.safetensors` holding the convex
//! coefficients `Z` (n_blocks × c × d) and `intercept` (c), with a JSON header
//! (program, loss, β, shapes, the heads) in the safetensors metadata under the
//! key `convexformer`.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::problem::Program;
use crate::recovery::Head;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// Everything needed to predict, plus what the model means.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ModelHeader {
    /// Format version of this header.
    pub format: u32,
    pub program: Program,
    pub loss: Loss,
    pub beta: f64,
    pub n_tokens: usize,
    pub n_features: usize,
    pub n_outputs: usize,
    /// Blocks (tokens, or gate × token pairs).
    pub n_blocks: usize,
    pub intercept: bool,
    /// The recovered attention heads.
    pub heads: Vec<Head>,
    /// How the gates were drawn (gated model only; tensor `gates`, P×n×d).
    #[serde(default)]
    pub gates: Option<crate::operator::GateSpec>,
}

/// A loaded model.
#[derive(Clone, Debug)]
pub struct Model {
    pub header: ModelHeader,
    /// n_blocks·c·d coefficients, block-major.
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
    /// Gate matrices, P×n×d (gated model only).
    pub gates: Option<Vec<f64>>,
}

const KEY: &str = "convexformer";

fn to_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Model {
    pub fn save(&self, path: &Path) -> Result<()> {
        let h = &self.header;
        let fmt = |e: safetensors::SafeTensorError| Error::Format {
            path: path.to_path_buf(),
            msg: format!("cannot serialize the model: {e}"),
        };
        let z = to_bytes(&self.coef);
        let b = to_bytes(&self.intercept);
        let zv = TensorView::new(Dtype::F64, vec![h.n_blocks, h.n_outputs, h.n_features], &z)
            .map_err(fmt)?;
        let bv = TensorView::new(Dtype::F64, vec![h.n_outputs], &b).map_err(fmt)?;
        let meta = HashMap::from([(
            KEY.to_string(),
            serde_json::to_string(h).expect("header serializes"),
        )]);
        let g = self.gates.as_deref().map(to_bytes);
        let mut views = vec![("Z", zv), ("intercept", bv)];
        if let (Some(g), Some(spec)) = (&g, h.gates) {
            let shape = vec![spec.n_gates, h.n_tokens, h.n_features];
            views.push(("gates", TensorView::new(Dtype::F64, shape, g).map_err(fmt)?));
        }
        let bytes = safetensors::serialize(views, Some(meta)).map_err(fmt)?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Loads `path`, or `path/model.safetensors` when `path` is a folder.
    pub fn load(path: &Path) -> Result<Model> {
        let file = if path.is_dir() {
            path.join("model.safetensors")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        let bad = |msg: String| Error::Format {
            path: file.clone(),
            msg,
        };
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let header: ModelHeader = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(KEY))
            .ok_or_else(|| {
                bad(format!(
                    "no '{KEY}' header: not a model written by convexformer"
                ))
            })
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| bad(format!("bad model header: {e}")))
            })?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let read = |name: &str, shape: Vec<usize>| -> Result<Vec<f64>> {
            let t = st
                .tensor(name)
                .map_err(|e| bad(format!("tensor '{name}': {e}")))?;
            if t.dtype() != Dtype::F64 || t.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "tensor '{name}' is {:?} {:?}, expected F64 {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect())
        };
        let coef = read(
            "Z",
            vec![header.n_blocks, header.n_outputs, header.n_features],
        )?;
        let intercept = read("intercept", vec![header.n_outputs])?;
        let gates = match header.gates {
            Some(spec) => Some(read(
                "gates",
                vec![spec.n_gates, header.n_tokens, header.n_features],
            )?),
            None => None,
        };
        Ok(Model {
            header,
            coef,
            intercept,
            gates,
        })
    }

    /// Predictions N×c on `data`, which must have the model's token shape.
    pub fn predict(&self, data: &Dataset) -> Result<Vec<f64>> {
        let h = &self.header;
        if data.n_tokens != h.n_tokens || data.n_features != h.n_features {
            return Err(Error::Invalid(format!(
                "the model was fitted on {}×{} token matrices, the data has {}×{}",
                h.n_tokens, h.n_features, data.n_tokens, data.n_features
            )));
        }
        // The operator's predictions need the data's output count to be the model's.
        let mut shaped = data.clone();
        if shaped.n_outputs != h.n_outputs {
            shaped.n_outputs = h.n_outputs;
            shaped.y = vec![0.0; data.n_samples * h.n_outputs];
            shaped.labels = None;
        }
        let masks = match (h.gates, &self.gates) {
            (Some(spec), Some(vectors)) => Some(
                crate::operator::Gates {
                    spec,
                    n_tokens: h.n_tokens,
                    n_features: h.n_features,
                    vectors: vectors.clone(),
                }
                .masks(&shaped)?,
            ),
            _ => None,
        };
        let op = crate::operator::TokenOperator::new(&shaped, masks.as_ref());
        Ok(op.predict(&self.coef, &self.intercept))
    }
}
