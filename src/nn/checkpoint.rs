//! The state a training run continues from, exactly: weights, AdamW moments,
//! the batch order and the shuffling stream's position, and the evaluations
//! so far (`R`: the grokking run's [`crate::grok::Record`], the teacher's
//! curve points). Saved as safetensors (the flat vectors in the run's dtype,
//! the rest as JSON metadata, with the parameter layout so the weights are
//! readable without convexformer), written atomically.

use std::collections::HashMap;
use std::path::Path;

use candle_core::DType;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

const KEY: &str = "convexformer-train-state";

/// A training run after `step` steps.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState<R> {
    pub step: usize,
    /// Training seconds so far (evaluation excluded).
    pub seconds: f64,
    /// f32 or f64: the dtype the run trains in, and the vectors are stored in
    /// (read back exactly: f32 → f64 → f32 is the identity).
    pub dtype: DType,
    /// The engine's flat parameters ([`crate::nn::Engine::params`]).
    pub params: Vec<f64>,
    pub adam_m: Vec<f64>,
    pub adam_v: Vec<f64>,
    pub adam_steps: i32,
    /// (name, offset, length) of each parameter in `params`.
    pub layout: Vec<(String, usize, usize)>,
    /// The current epoch's order of the training examples, and where the next
    /// minibatch starts in it.
    pub order: Vec<u32>,
    pub pos: usize,
    /// Word position of the shuffling ChaCha8 stream.
    pub rng_word_pos: u128,
    pub records: Vec<R>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta<R> {
    step: usize,
    seconds: f64,
    adam_steps: i32,
    pos: usize,
    /// As a decimal string: JSON numbers do not hold 128 bits.
    rng_word_pos: String,
    layout: Vec<(String, usize, usize)>,
    records: Vec<R>,
}

fn encode(v: &[f64], dtype: DType) -> (Dtype, Vec<u8>) {
    match dtype {
        DType::F32 => (
            Dtype::F32,
            v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
        ),
        _ => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    }
}

fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f64>> {
    match dtype {
        Dtype::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                .collect(),
        ),
        Dtype::F64 => Some(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        _ => None,
    }
}

impl<R: Clone + Serialize + DeserializeOwned> TrainState<R> {
    pub fn save(&self, path: &Path) -> Result<()> {
        let fail = |e: String| Error::Format {
            path: path.to_path_buf(),
            msg: format!("cannot encode the training state: {e}"),
        };
        let vectors = [
            ("params", encode(&self.params, self.dtype)),
            ("adam_m", encode(&self.adam_m, self.dtype)),
            ("adam_v", encode(&self.adam_v, self.dtype)),
        ];
        let order: Vec<u8> = self.order.iter().flat_map(|i| i.to_le_bytes()).collect();
        let mut views = Vec::new();
        for (name, (dt, bytes)) in &vectors {
            let n = bytes.len() * 8 / dt.bitsize();
            views.push((
                *name,
                TensorView::new(*dt, vec![n], bytes).map_err(|e| fail(e.to_string()))?,
            ));
        }
        views.push((
            "order",
            TensorView::new(Dtype::U32, vec![self.order.len()], &order)
                .map_err(|e| fail(e.to_string()))?,
        ));
        let meta = Meta {
            step: self.step,
            seconds: self.seconds,
            adam_steps: self.adam_steps,
            pos: self.pos,
            rng_word_pos: self.rng_word_pos.to_string(),
            layout: self.layout.clone(),
            records: self.records.clone(),
        };
        let meta = serde_json::to_string(&meta).map_err(|e| fail(e.to_string()))?;
        let bytes = safetensors::serialize(views, Some(HashMap::from([(KEY.to_string(), meta)])))
            .map_err(|e| fail(e.to_string()))?;
        crate::atomic::write(path, bytes)
    }

    pub fn load(path: &Path) -> Result<TrainState<R>> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |why: String| Error::Format {
            path: path.to_path_buf(),
            msg: format!("not a convexformer training checkpoint ({why})"),
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta: Meta<R> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(KEY))
            .ok_or_else(|| bad(format!("no '{KEY}' metadata")))
            .and_then(|m| serde_json::from_str(m).map_err(|e| bad(e.to_string())))?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut dtype = None;
        let mut vector = |name: &str| -> Result<Vec<f64>> {
            let t = tensors.tensor(name).map_err(|e| bad(e.to_string()))?;
            if dtype.is_some_and(|d| d != t.dtype()) {
                return Err(bad(format!(
                    "{name} is {:?}, unlike the weights",
                    t.dtype()
                )));
            }
            dtype = Some(t.dtype());
            decode(t.dtype(), t.data())
                .ok_or_else(|| bad(format!("{name} is {:?}, not F32 or F64", t.dtype())))
        };
        let (params, adam_m, adam_v) = (vector("params")?, vector("adam_m")?, vector("adam_v")?);
        let order = tensors.tensor("order").map_err(|e| bad(e.to_string()))?;
        if order.dtype() != Dtype::U32 {
            return Err(bad("order is not U32".into()));
        }
        let order = order
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Ok(TrainState {
            step: meta.step,
            seconds: meta.seconds,
            dtype: if dtype == Some(Dtype::F32) {
                DType::F32
            } else {
                DType::F64
            },
            params,
            adam_m,
            adam_v,
            adam_steps: meta.adam_steps,
            layout: meta.layout,
            order,
            pos: meta.pos,
            rng_word_pos: meta
                .rng_word_pos
                .parse()
                .map_err(|_| bad(format!("rng_word_pos '{}'", meta.rng_word_pos)))?,
            records: meta.records,
        })
    }
}

impl<R> TrainState<R> {
    /// Refuses a state that does not belong to this run: another network
    /// size, training set (`order` must be a permutation of `train`), dtype
    /// or a longer run. `record_step` reads a record's step.
    pub fn check(
        &self,
        n_params: usize,
        train: &[u32],
        dtype: DType,
        steps: usize,
        record_step: impl Fn(&R) -> usize,
    ) -> Result<()> {
        let mut sorted = self.order.clone();
        sorted.sort_unstable();
        let mut expect = train.to_vec();
        expect.sort_unstable();
        let why = if self.params.len() != n_params
            || self.adam_m.len() != n_params
            || self.adam_v.len() != n_params
        {
            format!(
                "it holds {} parameters, the network has {n_params}",
                self.params.len()
            )
        } else if sorted != expect || self.pos > train.len() {
            format!(
                "its batch order is for {} training examples, there are {} (or other ones)",
                self.order.len(),
                train.len()
            )
        } else if self.dtype != dtype {
            format!("it trains in {:?}, this run in {dtype:?}", self.dtype)
        } else if self.step > steps {
            format!("it is at step {}, past the run's {steps} steps", self.step)
        } else if self
            .records
            .last()
            .is_some_and(|r| record_step(r) > self.step)
        {
            "its evaluations run past its step".to_string()
        } else {
            return Ok(());
        };
        crate::error::invalid(format!("cannot continue from this checkpoint: {why}"))
    }
}
