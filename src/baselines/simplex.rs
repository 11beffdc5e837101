//! Simplex attention (SPEC §3, scalar and vector), trained directly.
//!
//! The model, for h heads on a sample X ∈ R^{n×d}:
//!
//! ```text
//! f(X) = Σ_j (a_jᵀ X v_j) o_j + b        a_j ∈ Δ_n, v_j ∈ R^d, o_j ∈ R^c, b ∈ R^c (optional)
//! P    = Σ_i L(f(X_i), y_i) + β/2 Σ_j (‖v_j‖₂² + ‖o_j‖²)
//! ```
//!
//! with ‖o_j‖ = ‖o_j‖₁ for the scalar and ℓ₁ vector programs (P_s, P_v1) and
//! ‖o_j‖₂ for the ℓ₂ vector program (P_v2) — the output norm of the convex
//! program the model is compared with. ‖o‖₁² is not differentiable where an
//! entry of o is 0: autograd returns a subgradient there (candle's |x|' is +1
//! at 0, and 2‖o‖₁ = 0 when o = 0), which is accepted here: the trainers are
//! subgradient methods on that term.
//!
//! Storage: attention `A` (h×n), values `V` (d×h, column j is v_j), outputs
//! `O` (h×c, row j is o_j). Two ways to keep a_j in the simplex:
//! - [`Parametrization::Logits`]: A = softmax(logits) row-wise (never exactly
//!   one-hot, so the optimum is approached only as logits diverge);
//! - [`Parametrization::Projected`]: A is a parameter, and after every
//!   optimizer step each row is replaced by its Euclidean projection onto
//!   Δ_n ([`project_simplex`]).

use candle_core::{DType, Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use super::{randn_vec, to_f64_vec, Evaluator, Learned, Objective, Parametrization, Trainable};
use crate::error::Result;
use crate::recovery::{head_predictions, nonconvex_objective};
use crate::recovery::{Head, OutputNorm};

/// A simplex-attention model with its trainable parameters.
pub struct SimplexModel {
    pub heads: usize,
    pub n_tokens: usize,
    pub n_features: usize,
    pub n_outputs: usize,
    pub parametrization: Parametrization,
    /// h×n: logits or simplex rows, per `parametrization`.
    pub attn: Var,
    /// d×h.
    pub value: Var,
    /// h×c.
    pub output: Var,
    /// 1×c when an intercept is fitted.
    pub intercept: Option<Var>,
}

impl SimplexModel {
    /// Random initialization from `rng`: near-uniform attention, v_j with
    /// N(0, 1/d) entries, o_j with N(0, 1/h) entries, intercept 0.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        heads: usize,
        shape: (usize, usize, usize),
        parametrization: Parametrization,
        intercept: bool,
        dtype: DType,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let (n, d, c) = shape;
        let h = heads;
        let attn = match parametrization {
            Parametrization::Logits => randn_vec(rng, h * n, 0.1),
            Parametrization::Projected => {
                let mut a: Vec<f64> = randn_vec(rng, h * n, 0.1 / n as f64)
                    .into_iter()
                    .map(|v| v + 1.0 / n as f64)
                    .collect();
                a.chunks_exact_mut(n).for_each(project_simplex);
                a
            }
        };
        let value = randn_vec(rng, d * h, 1.0 / (d as f64).sqrt());
        let output = randn_vec(rng, h * c, 1.0 / (h as f64).sqrt());
        Self::from_parts(
            (h, n, d, c),
            parametrization,
            attn,
            value,
            output,
            intercept.then(|| vec![0.0; c]),
            dtype,
        )
    }

    /// A model holding given heads (attention rows in Δ_n). With logits,
    /// the logits are ln a (entries of a must then be positive).
    pub fn from_heads(
        heads: &[Head],
        intercept: Option<&[f64]>,
        parametrization: Parametrization,
        dtype: DType,
    ) -> Result<Self> {
        let h = heads.len();
        let (n, d, c) = match heads.first() {
            Some(hd) => (hd.attention.len(), hd.value.len(), hd.output.len()),
            None => return crate::error::invalid("from_heads needs at least one head"),
        };
        let mut attn = Vec::with_capacity(h * n);
        let mut value = vec![0.0; d * h];
        let mut output = Vec::with_capacity(h * c);
        for (j, hd) in heads.iter().enumerate() {
            match parametrization {
                Parametrization::Logits => attn.extend(hd.attention.iter().map(|a| a.ln())),
                Parametrization::Projected => attn.extend_from_slice(&hd.attention),
            }
            for (q, v) in hd.value.iter().enumerate() {
                value[q * h + j] = *v;
            }
            output.extend_from_slice(&hd.output);
        }
        Self::from_parts(
            (h, n, d, c),
            parametrization,
            attn,
            value,
            output,
            intercept.map(|b| b.to_vec()),
            dtype,
        )
    }

    fn from_parts(
        (h, n, d, c): (usize, usize, usize, usize),
        parametrization: Parametrization,
        attn: Vec<f64>,
        value: Vec<f64>,
        output: Vec<f64>,
        intercept: Option<Vec<f64>>,
        dtype: DType,
    ) -> Result<Self> {
        let var = |v: Vec<f64>, shape: (usize, usize)| -> Result<Var> {
            let t = Tensor::from_vec(v, shape, &Device::Cpu).and_then(|t| t.to_dtype(dtype))?;
            Var::from_tensor(&t).map_err(crate::Error::from)
        };
        Ok(SimplexModel {
            heads: h,
            n_tokens: n,
            n_features: d,
            n_outputs: c,
            parametrization,
            attn: var(attn, (h, n))?,
            value: var(value, (d, h))?,
            output: var(output, (h, c))?,
            intercept: match intercept {
                Some(b) => Some(var(b, (1, c))?),
                None => None,
            },
        })
    }

    /// The attention matrix A (h×n), rows in Δ_n, as a tensor in the graph.
    pub fn attention(&self) -> candle_core::Result<Tensor> {
        match self.parametrization {
            Parametrization::Logits => candle_nn::ops::softmax(self.attn.as_tensor(), 1),
            Parametrization::Projected => Ok(self.attn.as_tensor().clone()),
        }
    }

    /// Predictions (B×c) for a batch `x` of shape B×n×d.
    pub fn predict(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let h = self.heads;
        // (X v_j)_k for every token k and head j: B×(n·h).
        let xv =
            crate::nn::ops::matmul_const_left(&x.reshape((b * n, d))?, self.value.as_tensor())?
                .reshape((b, n * h))?;
        // s_{ij} = Σ_k a_{jk} (X_i v_j)_k as one product with the (n·h)×h
        // block matrix E[(k, j'), j] = a_{jk} δ_{jj'} (no strided reduction).
        let eye = Tensor::eye(h, x.dtype(), x.device())?.reshape((1, h, h))?;
        let blocks = self
            .attention()?
            .t()?
            .reshape((n, h, 1))?
            .broadcast_mul(&eye)?
            .reshape((n * h, h))?;
        let s = xv.matmul(&blocks)?;
        let yhat = s.matmul(self.output.as_tensor())?;
        match &self.intercept {
            Some(bias) => yhat.broadcast_add(bias.as_tensor()),
            None => Ok(yhat),
        }
    }

    /// β/2 Σ_j (‖v_j‖² + ‖o_j‖²) with the output norm `norm`.
    pub fn penalty(&self, beta: f64, norm: OutputNorm) -> candle_core::Result<Tensor> {
        let vv = self.value.as_tensor().sqr()?.sum_all()?;
        let oo = match norm {
            // Subgradient at o_{jl} = 0: see the module comment.
            OutputNorm::L1 => self.output.as_tensor().abs()?.sum(1)?.sqr()?.sum_all()?,
            OutputNorm::L2 => self.output.as_tensor().sqr()?.sum_all()?,
        };
        (vv + oo)? * (0.5 * beta)
    }

    /// The part of the penalty that is not a plain weight decay: β/2 Σ_j ‖o_j‖₁²
    /// for the ℓ₁ program with c > 1 outputs, none otherwise.
    fn non_decay_penalty(
        &self,
        beta: f64,
        norm: OutputNorm,
    ) -> candle_core::Result<Option<Tensor>> {
        if norm == OutputNorm::L1 && self.n_outputs > 1 {
            let oo = self.output.as_tensor().abs()?.sum(1)?.sqr()?.sum_all()?;
            return Ok(Some((oo * (0.5 * beta))?));
        }
        Ok(None)
    }

    /// The parameters under the ℓ₂ part of the penalty (v, and o for ℓ₂ outputs).
    pub fn decayed_vars(&self, norm: OutputNorm) -> Vec<Var> {
        let mut v = vec![self.value.clone()];
        if norm == OutputNorm::L2 || self.n_outputs == 1 {
            v.push(self.output.clone());
        }
        v
    }

    /// The attention rows when they are projected onto the simplex (the
    /// optimizer treats them apart), none with logits.
    pub fn projected_vars(&self) -> Vec<Var> {
        match self.parametrization {
            Parametrization::Projected => vec![self.attn.clone()],
            Parametrization::Logits => vec![],
        }
    }

    /// The other parameters (logits, ℓ₁ outputs, intercept).
    pub fn plain_vars(&self, norm: OutputNorm) -> Vec<Var> {
        let mut v = Vec::new();
        if self.parametrization == Parametrization::Logits {
            v.push(self.attn.clone());
        }
        if !(norm == OutputNorm::L2 || self.n_outputs == 1) {
            v.push(self.output.clone());
        }
        v.extend(self.intercept.iter().cloned());
        v
    }

    /// The attention rows in f64, exactly on Δ_n: softmax computed in f64 from
    /// the logits, or the stored rows projected again in f64 (a no-op up to the
    /// rounding of the parameter dtype). Every head this returns is feasible,
    /// which the lower-bound check of `compare` relies on.
    pub fn attention_f64(&self) -> Result<Vec<f64>> {
        let mut a = to_f64_vec(self.attn.as_tensor())?;
        for row in a.chunks_exact_mut(self.n_tokens) {
            match self.parametrization {
                Parametrization::Logits => {
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    row.iter_mut().for_each(|v| *v = (*v - m).exp());
                    let s: f64 = row.iter().sum();
                    row.iter_mut().for_each(|v| *v /= s);
                }
                Parametrization::Projected => project_simplex(row),
            }
        }
        Ok(a)
    }

    /// The heads in f64, for the recovery code's `nonconvex_objective`.
    pub fn to_heads(&self) -> Result<Vec<Head>> {
        let (h, n, d) = (self.heads, self.n_tokens, self.n_features);
        let c = self.n_outputs;
        let a = self.attention_f64()?;
        let v = to_f64_vec(self.value.as_tensor())?;
        let o = to_f64_vec(self.output.as_tensor())?;
        Ok((0..h)
            .map(|j| Head {
                attention: a[j * n..(j + 1) * n].to_vec(),
                value: (0..d).map(|q| v[q * h + j]).collect(),
                output: o[j * c..(j + 1) * c].to_vec(),
                gate: None,
            })
            .collect())
    }

    /// The intercept in f64 (zeros without one).
    pub fn intercept_f64(&self) -> Result<Vec<f64>> {
        match &self.intercept {
            Some(b) => to_f64_vec(b.as_tensor()),
            None => Ok(vec![0.0; self.n_outputs]),
        }
    }
}

/// Euclidean projection of `v` onto the unit simplex Δ_n, in place
/// (sort-based, O(n log n)): with u sorted decreasingly,
/// ρ = max{j : u_j − (Σ_{r≤j} u_r − 1)/j > 0}, τ = (Σ_{r≤ρ} u_r − 1)/ρ,
/// and the projection is max(v − τ, 0).
pub fn project_simplex(v: &mut [f64]) {
    if v.is_empty() {
        return;
    }
    let mut u = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let mut cum = 0.0;
    let mut tau = 0.0;
    for (j, &uj) in u.iter().enumerate() {
        cum += uj;
        let t = (cum - 1.0) / (j + 1) as f64;
        if uj - t > 0.0 {
            tau = t;
        }
    }
    v.iter_mut().for_each(|x| *x = (*x - tau).max(0.0));
}

impl Trainable for SimplexModel {
    fn vars(&self, obj: &Objective) -> (Vec<Var>, Vec<Var>, Vec<Var>) {
        (
            self.decayed_vars(obj.output_norm),
            self.plain_vars(obj.output_norm),
            self.projected_vars(),
        )
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.predict(x)
    }
    /// With `decoupled` the ℓ₂ parts are the optimizer's weight decay.
    fn graph_penalty(
        &self,
        obj: &Objective,
        decoupled: bool,
    ) -> candle_core::Result<Option<Tensor>> {
        if decoupled {
            self.non_decay_penalty(obj.beta, obj.output_norm)
        } else {
            Ok(Some(self.penalty(obj.beta, obj.output_norm)?))
        }
    }
    fn evaluate(&self, ev: &Evaluator) -> Result<(f64, f64, Option<f64>)> {
        let o = &ev.obj;
        let heads = self.to_heads()?;
        let b = self.intercept_f64()?;
        let objective =
            nonconvex_objective(&heads, ev.train, None, &b, o.loss, o.beta, o.output_norm);
        let yhat = head_predictions(&heads, ev.train, None, &b);
        let test = ev.test.map(|t| {
            let yt = head_predictions(&heads, t, None, &b);
            crate::report::error(o.loss, t, &yt)
        });
        Ok((
            objective,
            crate::report::error(o.loss, ev.train, &yhat),
            test,
        ))
    }
    fn summary(&self, _: &Evaluator) -> Result<Learned> {
        Ok((
            self.attention_f64()?,
            Some(self.to_heads()?),
            self.intercept_f64()?,
        ))
    }
}
