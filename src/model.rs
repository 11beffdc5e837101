//! A fitted convex model on disk: `model.safetensors` holding the convex
//! coefficients `Z` (n_blocks × c × d) and `intercept` (c), with a JSON header
//! (program, loss, β, shapes, the heads) in the safetensors metadata under the
//! key `convexformer`. A sequence model (SPEC §4c) holds `C` (d × c × n × n)
//! instead, and its header says `"program": "sequence"` ([`SavedModel`]
//! tells the two apart).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::operator::LinearOperator;
use crate::problem::Program;
use crate::recovery::Head;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    /// The bytes of `model.safetensors` (what [`Model::save`] writes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let h = &self.header;
        let fmt = |e: safetensors::SafeTensorError| {
            Error::Invalid(format!("cannot serialize the model: {e}"))
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
        safetensors::serialize(views, Some(meta)).map_err(fmt)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write(path, self.to_bytes()?)
    }

    /// A token model from the bytes of a `model.safetensors` (`origin`
    /// names them in errors).
    pub fn from_bytes(bytes: Vec<u8>, origin: &Path) -> Result<Model> {
        Self::token_only(SavedModel::from_bytes(bytes, origin)?, origin)
    }

    /// Loads `path`, or `path/model.safetensors` when `path` is a folder.
    pub fn load(path: &Path) -> Result<Model> {
        Self::token_only(SavedModel::load(path)?, path)
    }

    fn token_only(saved: SavedModel, origin: &Path) -> Result<Model> {
        match saved {
            SavedModel::Token(m) => Ok(m),
            SavedModel::Sequence(_) => Err(Error::Invalid(format!(
                "{} holds a sequence model (N×n×c predictions), not a token model",
                origin.display()
            ))),
        }
    }

    fn from_file(file: &ModelFile, header: ModelHeader) -> Result<Model> {
        let coef = file.tensor(
            "Z",
            vec![header.n_blocks, header.n_outputs, header.n_features],
        )?;
        let intercept = file.tensor("intercept", vec![header.n_outputs])?;
        let gates = match header.gates {
            Some(spec) => Some(file.tensor(
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

/// The bytes of a model file and its JSON header, before the program is known.
struct ModelFile {
    path: PathBuf,
    bytes: Vec<u8>,
    header: String,
}

impl ModelFile {
    fn read(path: &Path) -> Result<ModelFile> {
        let file = if path.is_dir() {
            path.join("model.safetensors")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        Self::parse(bytes, file)
    }

    fn parse(bytes: Vec<u8>, file: PathBuf) -> Result<ModelFile> {
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| format_err(&file, format!("not a safetensors file: {e}")))?;
        let header = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(KEY))
            .cloned()
            .ok_or_else(|| {
                format_err(
                    &file,
                    format!("no '{KEY}' header: not a model written by convexformer"),
                )
            })?;
        Ok(ModelFile {
            path: file,
            bytes,
            header,
        })
    }

    fn bad(&self, msg: String) -> Error {
        format_err(&self.path, msg)
    }

    /// The header's `program`, read loosely so that any program dispatches.
    fn program(&self) -> Result<String> {
        let v: serde_json::Value = serde_json::from_str(&self.header)
            .map_err(|e| self.bad(format!("bad model header: {e}")))?;
        Ok(v["program"].as_str().unwrap_or_default().to_string())
    }

    fn parse_header<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.header).map_err(|e| self.bad(format!("bad model header: {e}")))
    }

    /// The F64 tensor `name`, which must have `shape`.
    fn tensor(&self, name: &str, shape: Vec<usize>) -> Result<Vec<f64>> {
        let st = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| self.bad(format!("not a safetensors file: {e}")))?;
        let t = st
            .tensor(name)
            .map_err(|e| self.bad(format!("tensor '{name}': {e}")))?;
        if t.dtype() != Dtype::F64 || t.shape() != shape.as_slice() {
            return Err(self.bad(format!(
                "tensor '{name}' is {:?} {:?}, expected F64 {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }
}

fn format_err(path: &Path, msg: String) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg,
    }
}

/// The program name a sequence model's header carries.
pub const SEQUENCE_PROGRAM: &str = "sequence";

/// What a sequence model means (SPEC §4c). The heads are not stored: they
/// follow from `C` by [`crate::sequence::recover_sequence_heads`], and for
/// n² entries each they would swell the JSON header.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SequenceModelHeader {
    pub format: u32,
    /// Always [`SEQUENCE_PROGRAM`].
    pub program: String,
    pub loss: Loss,
    pub beta: f64,
    pub n_tokens: usize,
    pub n_features: usize,
    pub n_outputs: usize,
    pub n_heads: usize,
}

/// A fitted sequence model: tensor `C` (d × c × n × n, C_{ql}[r, k]).
#[derive(Clone, Debug)]
pub struct SequenceModel {
    pub header: SequenceModelHeader,
    /// Matrix-major coefficients, as [`crate::sequence::SequenceSolution::coef`].
    pub coef: Vec<f64>,
}

impl SequenceModel {
    fn shape(&self) -> Vec<usize> {
        let h = &self.header;
        vec![h.n_features, h.n_outputs, h.n_tokens, h.n_tokens]
    }

    /// The bytes of `model.safetensors` (what [`SequenceModel::save`] writes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let fmt = |e: safetensors::SafeTensorError| {
            Error::Invalid(format!("cannot serialize the model: {e}"))
        };
        let c = to_bytes(&self.coef);
        let view = TensorView::new(Dtype::F64, self.shape(), &c).map_err(fmt)?;
        let meta = HashMap::from([(
            KEY.to_string(),
            serde_json::to_string(&self.header).expect("header serializes"),
        )]);
        safetensors::serialize(vec![("C", view)], Some(meta)).map_err(fmt)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write(path, self.to_bytes()?)
    }

    fn from_file(file: &ModelFile) -> Result<SequenceModel> {
        let header: SequenceModelHeader = file.parse_header()?;
        let mut m = SequenceModel {
            header,
            coef: Vec::new(),
        };
        m.coef = file.tensor("C", m.shape())?;
        Ok(m)
    }

    /// Predictions N×n×c on `data`, which must have the model's n and d
    /// (its targets, if any, are ignored).
    pub fn predict(&self, data: &crate::data::Dataset) -> Result<Vec<f64>> {
        let h = &self.header;
        let (_, n, d, _) = data.shape();
        if (n, d) != (h.n_tokens, h.n_features) {
            return Err(Error::Invalid(format!(
                "the sequence model was fitted on n×d = {}×{} token matrices, the data has \
                 {n}×{d}: give data with {} tokens of {} features",
                h.n_tokens, h.n_features, h.n_tokens, h.n_features
            )));
        }
        // The reference predictions read c from the data: give it the model's.
        let mut shaped = data.clone();
        if shaped.n_outputs != h.n_outputs {
            shaped.n_outputs = h.n_outputs;
            shaped.y = vec![0.0; data.n_samples * n * h.n_outputs];
            shaped.labels = None;
        }
        Ok(crate::sequence::recovery::coef_predictions(
            &self.coef, &shaped,
        ))
    }
}

/// Either kind of model file, told apart by the header's `program`.
#[derive(Clone, Debug)]
pub enum SavedModel {
    Token(Model),
    Sequence(SequenceModel),
}

impl SavedModel {
    /// Loads `path`, or `path/model.safetensors` when `path` is a folder.
    pub fn load(path: &Path) -> Result<SavedModel> {
        Self::from_file(ModelFile::read(path)?)
    }

    /// A model from the bytes of a `model.safetensors` (`origin` names them
    /// in errors).
    pub fn from_bytes(bytes: Vec<u8>, origin: &Path) -> Result<SavedModel> {
        Self::from_file(ModelFile::parse(bytes, origin.to_path_buf())?)
    }

    /// The bytes of its `model.safetensors`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        match self {
            SavedModel::Token(m) => m.to_bytes(),
            SavedModel::Sequence(m) => m.to_bytes(),
        }
    }

    fn from_file(file: ModelFile) -> Result<SavedModel> {
        if file.program()? == SEQUENCE_PROGRAM {
            return Ok(SavedModel::Sequence(SequenceModel::from_file(&file)?));
        }
        let header: ModelHeader = file.parse_header()?;
        Ok(SavedModel::Token(Model::from_file(&file, header)?))
    }
}
