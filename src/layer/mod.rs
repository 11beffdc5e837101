//! A convex-attention layer for deep models (issue #4, item 4): a candle
//! module with the sequence-output parametrization of SPEC §4c, usable as a
//! drop-in for a multi-head attention block, with its group penalty.
//!
//! # The parametrization
//!
//! SPEC §4c writes a sequence-output attention layer in convex variables: for
//! every input feature q and output feature l a matrix C_{ql} ∈ R^{n×n}, and
//!
//! ```text
//! out[r, l] = Σ_k Σ_q C_{ql}[r, k] · X[k, q]          (r, k ∈ tokens; q, l ∈ features)
//! ```
//!
//! Stored in full that is n²·D² numbers. This layer keeps the same form with
//! a headed, low-rank C that has the shapes of multi-head attention: h heads,
//! head j owning a free (signed) token-mixing matrix W_j ∈ R^{n×n} (simplex
//! attention of SPEC §3 with the row-stochastic constraint dropped) and a
//! value projection V_j ∈ R^{D×D/h} and output projection O_j ∈ R^{D/h×D}:
//!
//! ```text
//! out = Σ_j W̃_j X V_j O_j,      C_{ql} = Σ_j (V_j O_j)[q, l] · W̃_j,      W̃_j = W_j ∘ M
//! ```
//!
//! where M is the causal mask (1 for k ≤ r) or all ones. Parameters:
//! h·n² + 2·D² (multi-head attention has 4·D²). [`ConvexAttention::convex_variables`]
//! returns C itself (n×n×D×D), and the tests check the identity above.
//!
//! # The penalty, and why this one
//!
//! ```text
//! R(θ) = ½ Σ_j ‖W̃_j‖²_{∞,1} + ½ ‖V‖²_F + ½ ‖O‖²_F,     ‖W‖_{∞,1} = max_r Σ_k |W[r, k]|
//! ```
//!
//! The mixing matrices are measured in the norm that SPEC §4c puts on the
//! convex variables, ‖·‖_{∞,1} (the largest total weight that one output
//! position puts on the inputs). We chose it over the group-ℓ₂ of §4d
//! because it is the norm of the sequence-output program this layer
//! parametrizes, and because it reduces to the standard recipe on simplex
//! heads: a row-stochastic W has ‖W‖_{∞,1} = 1, so R is then the weight decay
//! ½(‖V‖² + ‖O‖²) of §2/§3 plus a constant, while a signed W is charged for
//! mixing more than a convex combination of tokens would. Squares make R
//! homogeneous of degree 2 in the parameters, like weight decay, so its
//! coefficient is on the same scale as a weight-decay coefficient. R ≥ 0,
//! R = 0 exactly when every parameter of the layer is zero, and the convex
//! penalty of the represented point is controlled by the factors:
//! Σ_{q,l} ‖C_{ql}‖_{∞,1} ≤ Σ_j ‖W̃_j‖_{∞,1} ‖V_j O_j‖₁ (checked by a test;
//! [`ConvexAttention::convex_penalty`] computes the left side).
//!
//! # What is convex, and what is not
//!
//! One such layer on *fixed* inputs X, trained in the convex variables C
//! with a convex loss and the penalty β Σ ‖C_{ql}‖_{∞,1} (plus the equal-row-sum
//! constraint that makes C representable by simplex heads), is the convex
//! program C_m of SPEC §4c; `crate::sequence` solves it to a certified gap.
//! **This module is not that program.** Here C is factored into heads
//! (W, V, O), the factors are trained by a gradient method, the inputs X come
//! from the layers below (which change during training), and the layer is
//! stacked with layer norms, MLPs and further layers: a stack is no longer a
//! convex program, and nothing here is certified. What carries over is the
//! model class (input-independent signed token mixing per head) and its
//! regularizer.
//!
//! Use: `layer.forward(&x)` with x of shape (B, n, D) gives (B, n, D);
//! [`ConvexAttention::forward_last`] gives only the last position's output
//! row (B, D), for a read-out at the last token; add `λ · layer.penalty()` to
//! the training loss (and keep the layer's parameters out of decoupled weight
//! decay, which would penalize them twice).

#[cfg(test)]
mod tests;

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Shapes and options of a [`ConvexAttention`] layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConvexAttentionConfig {
    /// h ≥ 1, dividing `dim`.
    pub heads: usize,
    /// n, the (fixed) sequence length.
    pub n_tokens: usize,
    /// D, the model width.
    pub dim: usize,
    /// Output position r reads only the inputs k ≤ r.
    pub causal: bool,
}

impl ConvexAttentionConfig {
    pub fn validate(&self) -> Result<()> {
        if self.heads == 0 || self.n_tokens == 0 || self.dim == 0 {
            candle_core::bail!(
                "convex attention needs heads, tokens and width ≥ 1, got h={}, n={}, D={}",
                self.heads,
                self.n_tokens,
                self.dim
            );
        }
        if self.dim % self.heads != 0 {
            candle_core::bail!(
                "convex attention: the width D={} must be a multiple of the number of heads h={}",
                self.dim,
                self.heads
            );
        }
        Ok(())
    }

    /// D/h.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }
}

/// The mask M: n×n, 1 where output r may read input k.
pub fn mixing_mask(n: usize, causal: bool, dtype: DType, dev: &Device) -> Result<Tensor> {
    if causal {
        Tensor::tril2(n, dtype, dev)
    } else {
        Tensor::ones((n, n), dtype, dev)
    }
}

/// Convex attention: `out = Σ_j (W_j ∘ M) X V_j O_j` (see the module doc).
#[derive(Clone, Debug)]
pub struct ConvexAttention {
    pub config: ConvexAttentionConfig,
    /// h×n×n mixing matrices W_j (masked entries are kept at zero).
    pub mixing: Tensor,
    /// D×D: the value projections V_j side by side (columns j·D/h..(j+1)·D/h).
    pub value: Tensor,
    /// D×D: the output projections O_j stacked (rows j·D/h..(j+1)·D/h).
    pub output: Tensor,
    /// n×n mask.
    mask: Tensor,
}

impl ConvexAttention {
    /// A layer over the given tensors (the trainable parameters are whatever
    /// `Var`s they belong to).
    pub fn from_tensors(
        config: ConvexAttentionConfig,
        mixing: Tensor,
        value: Tensor,
        output: Tensor,
    ) -> Result<Self> {
        config.validate()?;
        let (h, n, d) = (config.heads, config.n_tokens, config.dim);
        if mixing.dims() != [h, n, n] || value.dims() != [d, d] || output.dims() != [d, d] {
            candle_core::bail!(
                "convex attention: mixing {:?}, value {:?}, output {:?}; expected [{h}, {n}, {n}], [{d}, {d}], [{d}, {d}]",
                mixing.dims(),
                value.dims(),
                output.dims()
            );
        }
        let mask = mixing_mask(n, config.causal, mixing.dtype(), mixing.device())?;
        Ok(ConvexAttention {
            config,
            mixing,
            value,
            output,
            mask,
        })
    }

    /// Seeded initialization, returning the layer and its three `Var`s
    /// (mixing, value, output). W_j starts as uniform averaging over the
    /// readable tokens (row r: 1/(r+1) causal, 1/n otherwise) plus N(0, 0.02²)
    /// noise, masked; V and O are U(±1/√D) (PyTorch's `nn.Linear` default).
    pub fn init(
        config: ConvexAttentionConfig,
        dtype: DType,
        dev: &Device,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Self, [Var; 3])> {
        config.validate()?;
        let (h, n, d) = (config.heads, config.n_tokens, config.dim);
        let mut w = Vec::with_capacity(h * n * n);
        for _ in 0..h {
            for r in 0..n {
                for k in 0..n {
                    let visible = !config.causal || k <= r;
                    let base = if config.causal {
                        1.0 / (r + 1) as f64
                    } else {
                        1.0 / n as f64
                    };
                    let noise: f64 = rng.sample::<f64, _>(StandardNormal) * 0.02;
                    w.push(if visible { base + noise } else { 0.0 });
                }
            }
        }
        let bound = 1.0 / (d as f64).sqrt();
        let mut uni = |len: usize| -> Vec<f64> {
            (0..len).map(|_| rng.random_range(-bound..bound)).collect()
        };
        let v = uni(d * d);
        let o = uni(d * d);
        let var = |data: &[f64], shape: &[usize]| -> Result<Var> {
            Var::from_tensor(&Tensor::from_slice(data, shape, dev)?.to_dtype(dtype)?)
        };
        let mixing = var(&w, &[h, n, n])?;
        let value = var(&v, &[d, d])?;
        let output = var(&o, &[d, d])?;
        let layer = Self::from_tensors(
            config,
            mixing.as_tensor().clone(),
            value.as_tensor().clone(),
            output.as_tensor().clone(),
        )?;
        Ok((layer, [mixing, value, output]))
    }

    /// Builds the layer from a `VarBuilder` (names `mixing`, `value`,
    /// `output`), for use with a `VarMap` like any candle_nn layer. The
    /// initializers are candle's (not seeded): W_j ~ U(0, 2/n) (mean: uniform
    /// averaging), V, O ~ U(±1/√D).
    pub fn new(config: ConvexAttentionConfig, vb: candle_nn::VarBuilder) -> Result<Self> {
        config.validate()?;
        let (h, n, d) = (config.heads, config.n_tokens, config.dim);
        let mixing = vb.get_with_hints(
            (h, n, n),
            "mixing",
            candle_nn::Init::Uniform {
                lo: 0.0,
                up: 2.0 / n as f64,
            },
        )?;
        let b = 1.0 / (d as f64).sqrt();
        let uni = candle_nn::Init::Uniform { lo: -b, up: b };
        let value = vb.get_with_hints((d, d), "value", uni)?;
        let output = vb.get_with_hints((d, d), "output", uni)?;
        Self::from_tensors(config, mixing, value, output)
    }

    /// W̃_j = W_j ∘ M: h×n×n.
    pub fn masked_mixing(&self) -> Result<Tensor> {
        if self.config.causal {
            self.mixing.broadcast_mul(&self.mask)
        } else {
            Ok(self.mixing.clone())
        }
    }

    /// X V for all heads, arranged h×n×(B·D/h) for the composed token mixing.
    fn values_by_head(&self, xv: &Tensor) -> Result<Tensor> {
        let (b, n, _) = xv.dims3()?;
        let (h, dh) = (self.config.heads, self.config.head_dim());
        xv.reshape((b, n, h, dh))?
            .permute((2, 1, 0, 3))?
            .contiguous()?
            .reshape((h, n, b * dh))
    }

    fn check_input(&self, x: &Tensor) -> Result<(usize, usize, usize)> {
        let (b, n, d) = x.dims3()?;
        if (n, d) != (self.config.n_tokens, self.config.dim) {
            candle_core::bail!(
                "convex attention was built for sequences of {} tokens of width {}, got {n}×{d}",
                self.config.n_tokens,
                self.config.dim
            );
        }
        Ok((b, n, d))
    }

    /// X V: (B, n, D).
    fn values(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = self.check_input(x)?;
        x.reshape((b * n, d))?
            .matmul(&self.value)?
            .reshape((b, n, d))
    }

    /// The token mixing Σ_k W̃_j[r, k] (XV_j)[k] of every position r (B, n, D),
    /// or of r = n − 1 only (B, D). On the CPU a fused kernel
    /// ([`crate::nn::ops::token_mix`]); elsewhere composed tensor ops.
    pub fn mix(&self, xv: &Tensor, last: bool) -> Result<Tensor> {
        let fused = xv.device().is_cpu() && matches!(xv.dtype(), DType::F32 | DType::F64);
        if fused {
            return crate::nn::ops::token_mix(xv, &self.masked_mixing()?, self.config.heads, last);
        }
        self.mix_composed(xv, last)
    }

    /// [`ConvexAttention::mix`] with composed tensor ops (any device).
    pub fn mix_composed(&self, xv: &Tensor, last: bool) -> Result<Tensor> {
        let (b, n, d) = xv.dims3()?;
        let (h, dh) = (self.config.heads, self.config.head_dim());
        let v = self.values_by_head(xv)?;
        if last {
            // Row n−1 of every W̃_j (all of it is visible, causal or not).
            return self
                .mixing
                .narrow(1, n - 1, 1)?
                .matmul(&v)?
                .reshape((h, b, dh))?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((b, d));
        }
        self.masked_mixing()?
            .matmul(&v)?
            .reshape((h, n, b, dh))?
            .permute((2, 1, 0, 3))?
            .contiguous()?
            .reshape((b, n, d))
    }

    /// The output row of the last position only: (B, n, D) → (B, D). Equal to
    /// `forward(x)` at position n − 1, for a fraction of the cost.
    pub fn forward_last(&self, x: &Tensor) -> Result<Tensor> {
        self.mix(&self.values(x)?, true)?.matmul(&self.output)
    }

    /// The group penalty R(θ) = ½ Σ_j ‖W̃_j‖²_{∞,1} + ½‖V‖²_F + ½‖O‖²_F, a
    /// scalar tensor (see the module doc).
    pub fn penalty(&self) -> Result<Tensor> {
        let w = self.masked_mixing()?;
        // ‖W̃_j‖_{∞,1} = max_r Σ_k |W̃_j[r, k]|: h values.
        let norms = w.abs()?.sum(2)?.max(1)?;
        let a = norms.sqr()?.sum_all()?;
        let v = self.value.sqr()?.sum_all()?;
        let o = self.output.sqr()?.sum_all()?;
        ((a + v)? + o)? * 0.5
    }

    /// The convex variables C of SPEC §4c that the layer represents, as an
    /// n×n×D×D tensor: C[r, k, q, l] = Σ_j W̃_j[r, k] (V_j O_j)[q, l], so that
    /// out[r, l] = Σ_{k,q} C[r, k, q, l] X[k, q].
    pub fn convex_variables(&self) -> Result<Tensor> {
        let (h, n, d) = (self.config.heads, self.config.n_tokens, self.config.dim);
        let m = self.head_maps()?.reshape((h, d * d))?;
        let w = self.masked_mixing()?.reshape((h, n * n))?;
        w.t()?.matmul(&m)?.reshape((n, n, d, d))
    }

    /// The value–output maps M_j = V_j O_j: h×D×D.
    pub fn head_maps(&self) -> Result<Tensor> {
        let (h, d, dh) = (self.config.heads, self.config.dim, self.config.head_dim());
        // V as h×D×dh, O as h×dh×D.
        let v = self
            .value
            .reshape((d, h, dh))?
            .transpose(0, 1)?
            .contiguous()?;
        let o = self.output.reshape((h, dh, d))?;
        v.matmul(&o)
    }

    /// Σ_{q,l} ‖C_{ql}‖_{∞,1}: the §4c penalty of the represented convex
    /// point (a diagnostic; training uses [`ConvexAttention::penalty`]).
    pub fn convex_penalty(&self) -> Result<Tensor> {
        // |C| summed over k: n×D×D; max over r; sum over (q, l).
        self.convex_variables()?.abs()?.sum(1)?.max(0)?.sum_all()
    }

    /// Number of trainable numbers (masked mixing entries excluded).
    pub fn n_params(&self) -> usize {
        let (h, n, d) = (self.config.heads, self.config.n_tokens, self.config.dim);
        let mixing = if self.config.causal {
            h * n * (n + 1) / 2
        } else {
            h * n * n
        };
        mixing + 2 * d * d
    }
}

impl Module for ConvexAttention {
    /// (B, n, D) → (B, n, D).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = self.check_input(x)?;
        self.mix(&self.values(x)?, false)?
            .reshape((b * n, d))?
            .matmul(&self.output)?
            .reshape((b, n, d))
    }
}
