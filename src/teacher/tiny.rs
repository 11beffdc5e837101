//! A tiny randomly initialised BERT (config.json, model.safetensors,
//! tokenizer.json with a word-level WordPiece vocabulary of the given text),
//! so that tests and smoke runs of `convexformer teacher` need no download.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::collections::HashMap;
use std::path::Path;

/// Sizes of the tiny model.
#[derive(Clone, Copy, Debug)]
pub struct TinySize {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
}

impl Default for TinySize {
    fn default() -> Self {
        TinySize {
            layers: 2,
            hidden: 16,
            heads: 2,
            intermediate: 32,
            max_positions: 64,
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the model into `dir` (created if needed); the vocabulary holds the
/// special tokens and every lowercased word and punctuation mark of `text`.
pub fn write_tiny_bert(dir: &Path, text: &str, size: TinySize, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        .map(String::from)
        .to_vec();
    let mut word = String::new();
    let push = |w: &str, vocab: &mut Vec<String>| {
        if !w.is_empty() && !vocab.iter().any(|v| v == w) {
            vocab.push(w.to_string());
        }
    };
    for ch in text.chars().flat_map(char::to_lowercase) {
        if ch.is_alphanumeric() {
            word.push(ch);
        } else {
            push(&word, &mut vocab);
            word.clear();
            if !ch.is_whitespace() {
                push(&ch.to_string(), &mut vocab);
            }
        }
    }
    push(&word, &mut vocab);
    let ids: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids},
    });
    let config = serde_json::json!({
        "vocab_size": vocab.len(), "hidden_size": size.hidden, "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads, "intermediate_size": size.intermediate,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "max_position_embeddings": size.max_positions,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "model_type": "bert",
    });
    for (name, value) in [("tokenizer.json", &tokenizer), ("config.json", &config)] {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_string_pretty(value).unwrap_or_default())
            .map_err(io(&p))?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut add = |name: String, shape: &[usize], scale: f64, offset: f64| -> Result<()> {
        let len: usize = shape.iter().product();
        let v: Vec<f32> = (0..len)
            .map(|_| (offset + scale * rng.sample::<f64, _>(StandardNormal)) as f32)
            .collect();
        let tensor = Tensor::from_vec(v, shape, &Device::Cpu)
            .map_err(|e| Error::Invalid(format!("tiny model: {e}")))?;
        t.insert(name, tensor);
        Ok(())
    };
    let (h, m) = (size.hidden, size.intermediate);
    let e = "embeddings";
    add(
        format!("{e}.word_embeddings.weight"),
        &[vocab.len(), h],
        1.0,
        0.0,
    )?;
    add(
        format!("{e}.position_embeddings.weight"),
        &[size.max_positions, h],
        0.5,
        0.0,
    )?;
    add(
        format!("{e}.token_type_embeddings.weight"),
        &[2, h],
        0.1,
        0.0,
    )?;
    layer_norm_params(&mut add, &format!("{e}.LayerNorm"), h)?;
    let w = 1.0 / (h as f64).sqrt();
    for l in 0..size.layers {
        let p = format!("encoder.layer.{l}");
        for part in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            add(format!("{p}.{part}.weight"), &[h, h], w, 0.0)?;
            add(format!("{p}.{part}.bias"), &[h], 0.1, 0.0)?;
        }
        layer_norm_params(&mut add, &format!("{p}.attention.output.LayerNorm"), h)?;
        add(format!("{p}.intermediate.dense.weight"), &[m, h], w, 0.0)?;
        add(format!("{p}.intermediate.dense.bias"), &[m], 0.1, 0.0)?;
        add(
            format!("{p}.output.dense.weight"),
            &[h, m],
            1.0 / (m as f64).sqrt(),
            0.0,
        )?;
        add(format!("{p}.output.dense.bias"), &[h], 0.1, 0.0)?;
        layer_norm_params(&mut add, &format!("{p}.output.LayerNorm"), h)?;
    }
    let p = dir.join("model.safetensors");
    candle_core::safetensors::save(&t, &p)
        .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
}

/// LayerNorm weights near 1 and biases near 0.
fn layer_norm_params<F>(add: &mut F, prefix: &str, h: usize) -> Result<()>
where
    F: FnMut(String, &[usize], f64, f64) -> Result<()>,
{
    add(format!("{prefix}.weight"), &[h], 0.1, 1.0)?;
    add(format!("{prefix}.bias"), &[h], 0.1, 0.0)
}
