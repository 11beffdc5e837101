//! The frozen teacher: a BERT-family model read from a local folder
//! (config.json, model.safetensors, tokenizer.json), run up to its last layer.
//!
//! Layers 0..L−2 run through candle-transformers' `BertModel` (loaded with
//! `num_hidden_layers = L−1` from the same weights). The last layer's
//! self-attention is computed here, because its internals are the target:
//!
//! - input X: the hidden states entering layer L−1 (after layer L−2's output
//!   LayerNorm), B×n×D;
//! - target Y: `encoder.layer.{L−1}.attention.output.dense` applied to the
//!   concatenated heads' context, bias included, *before* dropout, the
//!   residual and the LayerNorm: Y = Σ_j softmax(X Q_j K_jᵀ Xᵀ/√d_k + mask) X V_j O_j + b
//!   (with the query/key/value biases), i.e. SPEC §2's F(X) of the teacher.
//!
//! The tests complete the layer from Y (residual, LayerNorm, feed-forward) and
//! check it against candle-transformers' full model.

use crate::error::{invalid, Error, Result};
use crate::nn::attention::{attend, merge_heads, padding_bias, split_heads};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

/// The last layer's self-attention sublayer, up to its output projection.
pub struct LastAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    heads: usize,
}

impl LastAttention {
    /// `vb` points at `encoder.layer.{L−1}.attention`.
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        let d = config.hidden_size;
        let heads = config.num_attention_heads;
        Ok(LastAttention {
            query: linear(d, d, vb.pp("self.query"))?,
            key: linear(d, d, vb.pp("self.key"))?,
            value: linear(d, d, vb.pp("self.value"))?,
            dense: linear(d, d, vb.pp("output.dense"))?,
            heads,
        })
    }

    /// (Y, attention probabilities B×H×n×n) for hidden states `x` (B×n×D)
    /// and a key mask (B×n, 1 = token, 0 = padding).
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let split = |t: Tensor| split_heads(&t, self.heads);
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let (ctx, probs) = attend(&q, &k, &v, Some(&padding_bias(mask)?))?;
        Ok((self.dense.forward(&merge_heads(&ctx)?)?, probs))
    }
}

/// A teacher loaded from a model folder.
pub struct Teacher {
    pub config: Config,
    pub dir: PathBuf,
    frozen: BertModel,
    last: LastAttention,
    tokenizer: Tokenizer,
    device: Device,
}

/// One tokenized sentence: ids with [CLS]/[SEP], truncated to the budget.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub pieces: Vec<String>,
}

impl Teacher {
    /// Loads config.json, model.safetensors and tokenizer.json from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            if !dir.join(f).is_file() {
                return invalid(format!(
                    "{} has no {f}: --model-dir must be a BERT-family folder with config.json, model.safetensors and tokenizer.json (run scripts/setup_teacher.sh to install all-MiniLM-L6-v2 into teacher-assets/)",
                    dir.display()
                ));
            }
        }
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| Error::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let config: Config = serde_json::from_str(&text).map_err(|e| {
            Error::Invalid(format!(
                "{}: not a BERT config ({e})",
                dir.join("config.json").display()
            ))
        })?;
        let layers = config.num_hidden_layers;
        if layers == 0 || config.num_attention_heads == 0 {
            return invalid("the teacher needs at least one layer and one head");
        }
        if config.hidden_size % config.num_attention_heads != 0 {
            return invalid(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            ));
        }
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only; candle copies what it keeps.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| Error::Invalid(format!("{}: {e}", weights.display())))?;
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let mut frozen_cfg = config.clone();
        frozen_cfg.num_hidden_layers = layers - 1;
        let frozen = BertModel::load(vb.clone(), &frozen_cfg)?;
        let last = LastAttention::load(
            vb.pp(format!("encoder.layer.{}.attention", layers - 1)),
            &config,
        )?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
            Error::Invalid(format!("{}: {e}", dir.join("tokenizer.json").display()))
        })?;
        Ok(Teacher {
            config,
            dir: dir.to_path_buf(),
            frozen,
            last,
            tokenizer,
            device,
        })
    }

    /// Tokenizes with the model's special tokens, truncated to `max_tokens`.
    pub fn tokenize(&self, sentences: &[String], max_tokens: usize) -> Result<Vec<Tokens>> {
        if max_tokens < 3 || max_tokens > self.config.max_position_embeddings {
            return invalid(format!(
                "--max-tokens must be in 3..={} (the model's positions), got {max_tokens}",
                self.config.max_position_embeddings
            ));
        }
        let mut tok = self.tokenizer.clone();
        tok.with_padding(None);
        tok.with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(|e| Error::Invalid(format!("tokenizer: {e}")))?;
        sentences
            .iter()
            .map(|s| {
                let enc = tok
                    .encode(s.as_str(), true)
                    .map_err(|e| Error::Invalid(format!("tokenizer on {s:?}: {e}")))?;
                Ok(Tokens {
                    ids: enc.get_ids().to_vec(),
                    pieces: enc.get_tokens().to_vec(),
                })
            })
            .collect()
    }

    /// Runs a batch padded to `n` tokens: (X, Y, probabilities), with X the
    /// hidden states entering the last layer. `n` ≥ every sentence's length.
    pub fn run(&self, batch: &[Tokens], n: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let b = batch.len();
        let mut ids = vec![self.config.pad_token_id as u32; b * n];
        let mut mask = vec![0u32; b * n];
        for (i, t) in batch.iter().enumerate() {
            if t.ids.len() > n {
                return invalid(format!(
                    "a sentence has {} tokens, more than {n}",
                    t.ids.len()
                ));
            }
            ids[i * n..i * n + t.ids.len()].copy_from_slice(&t.ids);
            mask[i * n..i * n + t.ids.len()].fill(1);
        }
        let dev = &self.device;
        let ids = Tensor::from_vec(ids, (b, n), dev)?;
        let mask = Tensor::from_vec(mask, (b, n), dev)?;
        let types = ids.zeros_like()?;
        let x = self.frozen.forward(&ids, &types, Some(&mask))?;
        let (y, probs) = self.last.forward(&x, &mask)?;
        Ok((x, y, probs))
    }
}
