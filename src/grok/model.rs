//! The decoder-only transformer of the grokking experiment, with standard
//! softmax attention (model a) or convex attention (model b, [`crate::layer`]).
//!
//! ```text
//! h⁰ = E[tok] + P[pos]                                   (token and position embeddings, D wide)
//! hˡ = hˡ⁻¹ + Attn(LN(hˡ⁻¹));  hˡ ← hˡ + MLP(LN(hˡ))       (pre-norm blocks, l = 1..L)
//! logits = U · LN(h^L[last]) + u                          (read out at the last position, `=`)
//! ```
//!
//! Attention is causal with h heads of width D/h and no biases; the MLP is
//! D → 4D → D with ReLU and biases; layer norms have ε = 1e-5. Initialization
//! follows PyTorch's defaults (embeddings N(0, 1), linear maps U(±1/√fan_in),
//! layer norms 1 and 0), and `scripts/grok_pytorch.py` builds the same network.
//!
//! Only the last position is read, so the last block computes its attention
//! query, its residual update and its MLP for that position alone (keys and
//! values still come from every position). The logits are exactly those of
//! the full computation; it saves most of the last block's work.
//!
//! On the CPU, layer norm, attention, bias additions and the convex token
//! mixing run as fused kernels with hand-written backward passes
//! ([`crate::nn::ops`]); the composed tensor-op versions
//! are kept (any device) and the tests check both against each other.

use candle_core::{DType, Device, Module, Result, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::layer::{ConvexAttention, ConvexAttentionConfig};
use crate::nn::attention::{attend, causal_bias, merge_heads, split_heads};

/// Which attention the blocks use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionKind {
    /// softmax(Q Kᵀ/√d_k) V, causal (SPEC §2).
    Softmax,
    /// Σ_j (W_j ∘ M) X V_j O_j with its group penalty ([`crate::layer`]).
    Convex,
}

/// The network's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TransformerConfig {
    pub vocab: usize,
    /// Output classes (p).
    pub n_classes: usize,
    pub seq_len: usize,
    /// D.
    pub width: usize,
    pub heads: usize,
    /// L ≥ 1 blocks.
    pub layers: usize,
    /// MLP hidden width as a multiple of D.
    pub mlp_ratio: usize,
    pub attention: AttentionKind,
}

impl TransformerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.layers == 0 || self.width == 0 || self.heads == 0 || self.seq_len == 0 {
            candle_core::bail!(
                "the transformer needs layers, width, heads and sequence length ≥ 1"
            );
        }
        if self.width % self.heads != 0 {
            candle_core::bail!(
                "the width {} must be a multiple of the number of heads {}",
                self.width,
                self.heads
            );
        }
        if self.mlp_ratio == 0 || self.vocab == 0 || self.n_classes == 0 {
            candle_core::bail!("MLP ratio, vocabulary and classes must be ≥ 1");
        }
        Ok(())
    }
}

/// Layer norm over the last dimension (composed of differentiable ops:
/// candle_nn's fused layer norm has no backward pass).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    /// The composed version (any device).
    pub fn forward_composed(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

impl Module for LayerNorm {
    /// A fused kernel on the CPU ([`crate::nn::ops::layer_norm()`]), composed ops elsewhere.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if fused(x) {
            return crate::nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps);
        }
        self.forward_composed(x)
    }
}

/// x·W (+ b): W is in×out.
#[derive(Clone, Debug)]
pub struct Dense {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Dense {
    /// Applies to the last dimension of a 2-D or 3-D x.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match x.dims() {
            [b, n, k] => x
                .reshape((b * n, *k))?
                .matmul(&self.weight)?
                .reshape((*b, *n, ()))?,
            _ => x.matmul(&self.weight)?,
        };
        match &self.bias {
            Some(b) if fused(&y) => crate::nn::ops::bias_add(&y, b),
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Causal multi-head softmax attention without biases.
#[derive(Clone, Debug)]
pub struct SoftmaxAttention {
    pub heads: usize,
    /// D×3D: Q, K, V side by side.
    pub qkv: Tensor,
    /// D×D.
    pub output: Tensor,
    /// n×n additive mask: 0 where visible, −1e9 above the diagonal.
    mask: Tensor,
}

impl SoftmaxAttention {
    /// X·[W_Q | W_K | W_V]: B×n×3D.
    fn project(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        x.reshape((b * n, d))?
            .matmul(&self.qkv)?
            .reshape((b, n, 3 * d))
    }

    /// Q, K and V of the fused projection (B, n, 3D), each (B, h, n, d_h).
    fn split(&self, qkv: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let d = qkv.dim(2)? / 3;
        let part = |i: usize| split_heads(&qkv.narrow(2, i * d, d)?, self.heads);
        Ok((part(0)?, part(1)?, part(2)?))
    }

    /// (B, n, D) → (B, n, D).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let mixed = if fused(x) {
            crate::nn::ops::causal_attention(&self.project(x)?, self.heads, false)?
        } else {
            self.attend_composed(x)?
        };
        mixed
            .reshape((b * n, d))?
            .matmul(&self.output)?
            .reshape((b, n, d))
    }

    /// The last position's output row only: (B, n, D) → (B, D).
    pub fn forward_last(&self, x: &Tensor) -> Result<Tensor> {
        let (_, n, _) = x.dims3()?;
        let mixed = if fused(x) {
            crate::nn::ops::causal_attention(&self.project(x)?, self.heads, true)?
        } else {
            self.attend_composed(x)?.narrow(1, n - 1, 1)?.squeeze(1)?
        };
        mixed.matmul(&self.output)
    }

    /// softmax(QKᵀ/√d_h + mask) V with heads merged, before the output
    /// projection (B, n, D), composed of tensor ops (any device).
    pub fn attend_composed(&self, x: &Tensor) -> Result<Tensor> {
        let (q, k, v) = self.split(&self.project(x)?)?;
        merge_heads(&attend(&q, &k, &v, Some(&self.mask))?.0)
    }

    /// The fused kernel's output before the projection (for tests).
    pub fn attend_fused(&self, x: &Tensor, last: bool) -> Result<Tensor> {
        crate::nn::ops::causal_attention(&self.project(x)?, self.heads, last)
    }
}

/// One attention module of either kind.
#[derive(Clone, Debug)]
pub enum Attention {
    Softmax(SoftmaxAttention),
    Convex(ConvexAttention),
}

impl Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Attention::Softmax(a) => a.forward(x),
            Attention::Convex(a) => a.forward(x),
        }
    }
    fn forward_last(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Attention::Softmax(a) => a.forward_last(x),
            Attention::Convex(a) => a.forward_last(x),
        }
    }
}

/// A pre-norm block.
#[derive(Clone, Debug)]
pub struct Block {
    pub ln1: LayerNorm,
    pub attn: Attention,
    pub ln2: LayerNorm,
    pub mlp_in: Dense,
    pub mlp_out: Dense,
}

impl Block {
    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        self.mlp_out
            .forward(&self.mlp_in.forward(&self.ln2.forward(x)?)?.relu()?)
    }

    /// (B, n, D) → (B, n, D).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?)?)?;
        &x + self.mlp(&x)?
    }

    /// (B, n, D) → (B, D): the last position only.
    fn forward_last(&self, x: &Tensor) -> Result<Tensor> {
        let (_, n, _) = x.dims3()?;
        let a = self.attn.forward_last(&self.ln1.forward(x)?)?;
        let x = (x.narrow(1, n - 1, 1)?.squeeze(1)? + a)?;
        &x + self.mlp(&x)?
    }
}

/// A named trainable parameter.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub var: Var,
    /// Under the convex layer's group penalty (not weight decay).
    pub penalized: bool,
}

/// The transformer with its parameters.
#[derive(Clone, Debug)]
pub struct Transformer {
    pub config: TransformerConfig,
    pub tok_emb: Tensor,
    pub pos_emb: Tensor,
    pub blocks: Vec<Block>,
    pub ln_f: LayerNorm,
    pub unembed: Dense,
    pub params: Vec<Param>,
}

struct Init<'a> {
    rng: ChaCha8Rng,
    dtype: DType,
    dev: &'a Device,
    params: Vec<Param>,
}

impl Init<'_> {
    fn var(&mut self, name: String, data: Vec<f64>, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::from_slice(&data, shape, self.dev)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        self.params.push(Param {
            name,
            var,
            penalized: false,
        });
        Ok(out)
    }
    fn normal(&mut self, name: String, shape: &[usize]) -> Result<Tensor> {
        let len = shape.iter().product();
        let v = (0..len)
            .map(|_| self.rng.sample::<f64, _>(StandardNormal))
            .collect();
        self.var(name, v, shape)
    }
    fn uniform(&mut self, name: String, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        let b = 1.0 / (fan_in as f64).sqrt();
        let len = shape.iter().product();
        let v = (0..len).map(|_| self.rng.random_range(-b..b)).collect();
        self.var(name, v, shape)
    }
    fn constant(&mut self, name: String, len: usize, c: f64) -> Result<Tensor> {
        self.var(name, vec![c; len], &[len])
    }
    fn layer_norm(&mut self, name: &str, d: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.constant(format!("{name}.weight"), d, 1.0)?,
            bias: self.constant(format!("{name}.bias"), d, 0.0)?,
            eps: 1e-5,
        })
    }
    fn dense(&mut self, name: &str, i: usize, o: usize, bias: bool) -> Result<Dense> {
        Ok(Dense {
            weight: self.uniform(format!("{name}.weight"), &[i, o], i)?,
            bias: if bias {
                Some(self.uniform(format!("{name}.bias"), &[o], i)?)
            } else {
                None
            },
        })
    }
}

impl Transformer {
    /// A freshly initialized network (seeded).
    pub fn init(config: TransformerConfig, dtype: DType, dev: &Device, seed: u64) -> Result<Self> {
        config.validate()?;
        let c = config;
        let d = c.width;
        let mut ini = Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
            dtype,
            dev,
            params: Vec::new(),
        };
        let tok_emb = ini.normal("tok_emb".into(), &[c.vocab, d])?;
        let pos_emb = ini.normal("pos_emb".into(), &[c.seq_len, d])?;
        let mut blocks = Vec::with_capacity(c.layers);
        for l in 0..c.layers {
            let ln1 = ini.layer_norm(&format!("blocks.{l}.ln1"), d)?;
            let attn = match c.attention {
                AttentionKind::Softmax => {
                    let qkv = ini.uniform(format!("blocks.{l}.attn.qkv"), &[d, 3 * d], d)?;
                    let output = ini.uniform(format!("blocks.{l}.attn.output"), &[d, d], d)?;
                    let mask = causal_bias(c.seq_len, dtype, dev)?;
                    Attention::Softmax(SoftmaxAttention {
                        heads: c.heads,
                        qkv,
                        output,
                        mask,
                    })
                }
                AttentionKind::Convex => {
                    let cfg = ConvexAttentionConfig {
                        heads: c.heads,
                        n_tokens: c.seq_len,
                        dim: d,
                        causal: true,
                    };
                    let (layer, vars) = ConvexAttention::init(cfg, dtype, dev, &mut ini.rng)?;
                    for (name, var) in ["mixing", "value", "output"].iter().zip(vars) {
                        ini.params.push(Param {
                            name: format!("blocks.{l}.attn.{name}"),
                            var,
                            penalized: true,
                        });
                    }
                    Attention::Convex(layer)
                }
            };
            let ln2 = ini.layer_norm(&format!("blocks.{l}.ln2"), d)?;
            let mlp_in = ini.dense(&format!("blocks.{l}.mlp_in"), d, c.mlp_ratio * d, true)?;
            let mlp_out = ini.dense(&format!("blocks.{l}.mlp_out"), c.mlp_ratio * d, d, true)?;
            blocks.push(Block {
                ln1,
                attn,
                ln2,
                mlp_in,
                mlp_out,
            });
        }
        let ln_f = ini.layer_norm("ln_f", d)?;
        let unembed = ini.dense("unembed", d, c.n_classes, true)?;
        Ok(Transformer {
            config,
            tok_emb,
            pos_emb,
            blocks,
            ln_f,
            unembed,
            params: ini.params,
        })
    }

    /// E[tok] + P[pos]: (B, n, D).
    fn embed(&self, tokens: &Tensor, b: usize, n: usize, d: usize) -> Result<Tensor> {
        let e = self.tok_emb.index_select(&tokens.flatten_all()?, 0)?;
        if fused(&e) {
            // The position table as a bias over rows of n·D.
            let pos = self.pos_emb.flatten_all()?;
            return crate::nn::ops::bias_add(&e.reshape((b, n * d))?, &pos)?.reshape((b, n, d));
        }
        e.reshape((b, n, d))?.broadcast_add(&self.pos_emb)
    }

    /// Logits (B, classes) for token ids (B, n) (u32).
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, n) = tokens.dims2()?;
        if n != self.config.seq_len {
            candle_core::bail!(
                "the model reads sequences of {} tokens, got {n}",
                self.config.seq_len
            );
        }
        let d = self.config.width;
        let mut h = self.embed(tokens, b, n, d)?;
        let (last, rest) = self.blocks.split_last().expect("at least one block");
        for blk in rest {
            h = blk.forward(&h)?;
        }
        let h = last.forward_last(&h)?;
        self.unembed.forward(&self.ln_f.forward(&h)?)
    }

    /// Logits of every position (B, n, classes): the full computation, for
    /// checking [`Transformer::forward`] (whose logits are this at n − 1).
    pub fn forward_all_positions(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, n) = tokens.dims2()?;
        let d = self.config.width;
        let mut h = self.embed(tokens, b, n, d)?;
        for blk in &self.blocks {
            h = blk.forward(&h)?;
        }
        self.unembed.forward(&self.ln_f.forward(&h)?)
    }

    /// The convex layers' group penalty Σ_l R_l (zero for softmax attention).
    pub fn group_penalty(&self) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for blk in &self.blocks {
            if let Attention::Convex(a) = &blk.attn {
                let p = a.penalty()?;
                total = Some(match total {
                    Some(t) => (t + p)?,
                    None => p,
                });
            }
        }
        Ok(total)
    }

    /// Number of trainable numbers (masked convex-mixing entries excluded).
    pub fn n_params(&self) -> usize {
        let masked: usize = self
            .blocks
            .iter()
            .map(|b| match &b.attn {
                Attention::Convex(a) => {
                    let c = a.config;
                    c.heads * c.n_tokens * (c.n_tokens - 1) / 2
                }
                Attention::Softmax(_) => 0,
            })
            .sum();
        self.params
            .iter()
            .map(|p| p.var.elem_count())
            .sum::<usize>()
            - masked
    }
}
