//! Standard multi-head softmax attention (SPEC §2), the nonconvex baseline.
//!
//! For h heads with key dimension d_k, on a sample X ∈ R^{n×d} (rows x_k):
//!
//! ```text
//! F(X)   = Σ_j softmax(X Q_j K_jᵀ Xᵀ / √d_k) X V_j O_j   ∈ R^{n×c}     (row-wise softmax)
//! f(X)   = F(X)[r, :] + b                                  ∈ R^c
//!        = Σ_j (p_j(X)ᵀ X) V_j O_j + b,   p_j(X) = softmax_k(x_rᵀ Q_j K_jᵀ x_k / √d_k) ∈ Δ_n
//! P_std  = Σ_i L(f(X_i), y_i) + β/2 Σ_j (‖Q_j‖² + ‖K_j‖² + ‖V_j‖² + ‖O_j‖²)      (Frobenius)
//! ```
//!
//! Q_j, K_j, V_j ∈ R^{d×d_k}; O_j ∈ R^{d_k×c} is the head's output projection,
//! which maps straight to the c outputs (so there is no separate output
//! layer, and weight decay covers all four matrices of every head, as in
//! SPEC §2). r is the designated read-out token (default the last, n − 1).
//! The optional intercept b ∈ R^c is not penalized.
//!
//! Only row r of F is needed, so the computation is arranged as products
//! of large matrices: W_j = Q_j K_jᵀ/√d_k (d×d) and V_j O_j (d×c) are formed
//! once per step, then u_j = x_rᵀ W_j for all samples in one product, the
//! scores u_j·x_k, the softmax over tokens, and p_jᵀ X.
//!
//! This is a different model class from simplex attention (SPEC §3): its
//! optimum can lie below the convex optimum, so no lower-bound check applies.

use candle_core::{DType, Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use super::{randn_vec, to_f64_vec, Evaluator, Learned, Objective, Trainable};
use crate::error::Result;
use crate::loss::SampleLoss;
use crate::nn::ops::{matmul_const_left, matmul_const_right};

/// A softmax-attention model with its trainable parameters.
pub struct SoftmaxModel {
    pub heads: usize,
    pub key_dim: usize,
    pub n_tokens: usize,
    pub n_features: usize,
    pub n_outputs: usize,
    /// The token whose output row is read.
    pub read_token: usize,
    /// h×d×d_k.
    pub query: Var,
    /// h×d×d_k.
    pub key: Var,
    /// h×d×d_k.
    pub value: Var,
    /// h×d_k×c.
    pub output: Var,
    /// 1×c when an intercept is fitted.
    pub intercept: Option<Var>,
}

/// The parameters of a [`SoftmaxModel`] in f64, row-major in the shapes above.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxParams {
    pub query: Vec<f64>,
    pub key: Vec<f64>,
    pub value: Vec<f64>,
    pub output: Vec<f64>,
    pub intercept: Option<Vec<f64>>,
}

impl SoftmaxModel {
    /// Random initialization: Q, K, V with N(0, 1/d) entries, O with
    /// N(0, 1/(h·d_k)) entries, intercept 0.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        heads: usize,
        key_dim: usize,
        read_token: usize,
        shape: (usize, usize, usize),
        intercept: bool,
        dtype: DType,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let (_, d, c) = shape;
        let (h, k) = (heads, key_dim);
        let s = 1.0 / (d as f64).sqrt();
        let p = SoftmaxParams {
            query: randn_vec(rng, h * d * k, s),
            key: randn_vec(rng, h * d * k, s),
            value: randn_vec(rng, h * d * k, s),
            output: randn_vec(rng, h * k * c, 1.0 / ((h * k) as f64).sqrt()),
            intercept: intercept.then(|| vec![0.0; c]),
        };
        Self::from_params(&p, heads, key_dim, read_token, shape, dtype)
    }

    /// A model holding `p`.
    pub fn from_params(
        p: &SoftmaxParams,
        heads: usize,
        key_dim: usize,
        read_token: usize,
        (n, d, c): (usize, usize, usize),
        dtype: DType,
    ) -> Result<Self> {
        let var = |v: &[f64], shape: &[usize]| -> Result<Var> {
            let t = Tensor::from_slice(v, shape, &Device::Cpu).and_then(|t| t.to_dtype(dtype))?;
            Var::from_tensor(&t).map_err(crate::Error::from)
        };
        let (h, k) = (heads, key_dim);
        Ok(SoftmaxModel {
            heads,
            key_dim,
            n_tokens: n,
            n_features: d,
            n_outputs: c,
            read_token,
            query: var(&p.query, &[h, d, k])?,
            key: var(&p.key, &[h, d, k])?,
            value: var(&p.value, &[h, d, k])?,
            output: var(&p.output, &[h, k, c])?,
            intercept: match &p.intercept {
                Some(b) => Some(var(b, &[1, c])?),
                None => None,
            },
        })
    }

    /// The parameters in f64.
    pub fn params(&self) -> Result<SoftmaxParams> {
        Ok(SoftmaxParams {
            query: to_f64_vec(self.query.as_tensor())?,
            key: to_f64_vec(self.key.as_tensor())?,
            value: to_f64_vec(self.value.as_tensor())?,
            output: to_f64_vec(self.output.as_tensor())?,
            intercept: match &self.intercept {
                Some(b) => Some(to_f64_vec(b.as_tensor())?),
                None => None,
            },
        })
    }

    /// The attention of the read-out row: B×h×n, row j is p_j(X_i) ∈ Δ_n.
    pub fn read_attention(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, _, d) = x.dims3()?;
        let (h, k) = (self.heads, self.key_dim);
        // W_j = Q_j K_jᵀ / √d_k (d×d), side by side: d×(h·d).
        let w = (self
            .query
            .as_tensor()
            .matmul(&self.key.as_tensor().transpose(1, 2)?)?
            * (1.0 / (k as f64).sqrt()))?;
        let wcat = w.transpose(0, 1)?.contiguous()?.reshape((d, h * d))?;
        // u_j = x_rᵀ W_j for every sample: B×h×d.
        let xr = x.narrow(1, self.read_token, 1)?.reshape((b, d))?;
        let u = matmul_const_left(&xr, &wcat)?.reshape((b, h, d))?;
        // Scores u_j · x_k: B×h×n, softmax over the tokens (last dimension).
        let scores = matmul_const_right(&u, &x.transpose(1, 2)?)?;
        candle_nn::ops::softmax(&scores, 2)
    }

    /// Predictions (B×c) for a batch `x` of shape B×n×d.
    pub fn predict(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, _, d) = x.dims3()?;
        let (h, c) = (self.heads, self.n_outputs);
        // Mixed tokens p_jᵀ X: B×h×d.
        let m = matmul_const_right(&self.read_attention(x)?, x)?;
        // V_j O_j: h×d×c.
        let vo = self.value.as_tensor().matmul(self.output.as_tensor())?;
        let yhat = m.reshape((b, h * d))?.matmul(&vo.reshape((h * d, c))?)?;
        match &self.intercept {
            Some(bias) => yhat.broadcast_add(bias.as_tensor()),
            None => Ok(yhat),
        }
    }

    /// β/2 (‖Q‖² + ‖K‖² + ‖V‖² + ‖O‖²), all heads.
    pub fn penalty(&self, beta: f64) -> candle_core::Result<Tensor> {
        let mut s = self.query.as_tensor().sqr()?.sum_all()?;
        for v in [&self.key, &self.value, &self.output] {
            s = (s + v.as_tensor().sqr()?.sum_all()?)?;
        }
        s * (0.5 * beta)
    }

    /// Q, K, V, O: all under the penalty.
    pub fn decayed_vars(&self) -> Vec<Var> {
        vec![
            self.query.clone(),
            self.key.clone(),
            self.value.clone(),
            self.output.clone(),
        ]
    }

    /// The intercept, if any.
    pub fn plain_vars(&self) -> Vec<Var> {
        self.intercept.iter().cloned().collect()
    }

    /// This model's parameters converted to f64 (for exact evaluation).
    pub fn to_f64(&self) -> Result<SoftmaxModel> {
        let shape = (self.n_tokens, self.n_features, self.n_outputs);
        Self::from_params(
            &self.params()?,
            self.heads,
            self.key_dim,
            self.read_token,
            shape,
            DType::F64,
        )
    }
}

impl Trainable for SoftmaxModel {
    fn vars(&self, _: &Objective) -> (Vec<Var>, Vec<Var>, Vec<Var>) {
        (self.decayed_vars(), self.plain_vars(), vec![])
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.predict(x)
    }
    /// With `decoupled` nothing: AdamW's weight decay covers all of it.
    fn graph_penalty(
        &self,
        obj: &Objective,
        decoupled: bool,
    ) -> candle_core::Result<Option<Tensor>> {
        if decoupled {
            Ok(None)
        } else {
            Ok(Some(self.penalty(obj.beta)?))
        }
    }
    fn evaluate(&self, ev: &Evaluator) -> Result<(f64, f64, Option<f64>)> {
        let o = &ev.obj;
        let m64 = self.to_f64()?;
        let p = m64.params()?;
        let yhat = to_f64_vec(&m64.predict(&ev.x_train)?)?;
        let c = ev.train.n_outputs;
        let fit: f64 = yhat
            .chunks_exact(c)
            .enumerate()
            .map(|(i, y)| o.loss.value(y, ev.train.target(i)))
            .sum();
        let sq = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
        let pen = 0.5 * o.beta * (sq(&p.query) + sq(&p.key) + sq(&p.value) + sq(&p.output));
        let test = match (ev.test, &ev.x_test) {
            (Some(t), Some(xt)) => {
                let yt = to_f64_vec(&m64.predict(xt)?)?;
                Some(crate::report::error(o.loss, t, &yt))
            }
            _ => None,
        };
        Ok((
            fit + pen,
            crate::report::error(o.loss, ev.train, &yhat),
            test,
        ))
    }
    fn summary(&self, ev: &Evaluator) -> Result<Learned> {
        let m64 = self.to_f64()?;
        let p = m64.read_attention(&ev.x_train)?;
        // Mean over samples: h×n.
        let mean = p.mean(0)?;
        let c = ev.train.n_outputs;
        let b = m64.params()?.intercept.unwrap_or_else(|| vec![0.0; c]);
        Ok((to_f64_vec(&mean)?, None, b))
    }
}
