//! The two maps of SPEC §4 between attention heads and convex points, and
//! the nonconvex objective of SPEC §3 evaluated directly on heads.
//!
//! Map (i), [`heads_to_coef`]: any heads give a convex point with the same
//! predictions and a penalty no larger (AM–GM). Map (ii), [`recover_heads`]:
//! a convex solution gives heads — one-hot attention rows — whose nonconvex
//! objective equals the convex one. Together they prove the programs equal;
//! the tests check both numerically.

use crate::data::Dataset;
use crate::loss::{Loss, SampleLoss};
use crate::operator::GateMasks;
use crate::penalty::{norm2, nuclear::block_svd, Penalty};

/// One attention head: f_j(X) = D_gate(X) · (aᵀ X v) · o.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Head {
    /// Attention row a ∈ Δ_n (one-hot for recovered heads).
    pub attention: Vec<f64>,
    /// Value vector v ∈ R^d.
    pub value: Vec<f64>,
    /// Output weights o ∈ R^c.
    pub output: Vec<f64>,
    /// Gate index for the gated-ReLU model (SPEC §4d), none otherwise.
    pub gate: Option<usize>,
}

/// The output norm of the head penalty β/2 Σ_j (‖v_j‖² + ‖o_j‖²).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum OutputNorm {
    /// ‖o‖₁ (SPEC P_v1; the scalar case too).
    L1,
    /// ‖o‖₂ (SPEC P_v2).
    L2,
}

impl From<Penalty> for OutputNorm {
    fn from(p: Penalty) -> Self {
        match p {
            // The sequence program's heads also penalise o² and an ℓ₁ norm.
            Penalty::GroupL2 | Penalty::RowSumCone { .. } => OutputNorm::L1,
            Penalty::Nuclear => OutputNorm::L2,
        }
    }
}

/// The head penalty ½(‖v‖² + ‖o‖²) (without β).
pub fn head_penalty(h: &Head, norm: OutputNorm) -> f64 {
    let vv: f64 = h.value.iter().map(|x| x * x).sum();
    let o = match norm {
        OutputNorm::L1 => h.output.iter().map(|x| x.abs()).sum::<f64>().powi(2),
        OutputNorm::L2 => h.output.iter().map(|x| x * x).sum::<f64>(),
    };
    0.5 * (vv + o)
}

/// Predictions of heads (plus intercept) on `data`, N×c, computed from the
/// heads alone (dense attention rows, no use of one-hotness).
pub fn head_predictions(
    heads: &[Head],
    data: &Dataset,
    gates: Option<&GateMasks>,
    intercept: &[f64],
) -> Vec<f64> {
    let (n, t, d, c) = data.shape();
    let mut out = Vec::with_capacity(n * c);
    let mut mixed = vec![0.0; d];
    for i in 0..n {
        let mut yi = intercept.to_vec();
        for h in heads {
            if let (Some(p), Some(g)) = (h.gate, gates) {
                if !g.mask[i * g.n_gates + p] {
                    continue;
                }
            }
            // aᵀ X_i, then · v.
            mixed.iter_mut().for_each(|v| *v = 0.0);
            for k in 0..t {
                let a = h.attention[k];
                if a != 0.0 {
                    for (m, x) in mixed.iter_mut().zip(data.token(i, k)) {
                        *m += a * x;
                    }
                }
            }
            let s: f64 = mixed.iter().zip(&h.value).map(|(a, b)| a * b).sum();
            for (y, o) in yi.iter_mut().zip(&h.output) {
                *y += s * o;
            }
        }
        out.extend_from_slice(&yi);
    }
    out
}

/// The nonconvex objective of SPEC §3: Σ_i L(f(X_i), y_i) + β Σ_j ½(‖v_j‖² + ‖o_j‖²).
pub fn nonconvex_objective(
    heads: &[Head],
    data: &Dataset,
    gates: Option<&GateMasks>,
    intercept: &[f64],
    loss: Loss,
    beta: f64,
    norm: OutputNorm,
) -> f64 {
    nonconvex_loss(heads, data, gates, intercept, loss) + nonconvex_penalty(heads, beta, norm)
}

/// The data term of [`nonconvex_objective`], Σ_i L(f(X_i), y_i), over the
/// samples of `data` (one shard's part of the sum, in a data-parallel fit).
pub fn nonconvex_loss(
    heads: &[Head],
    data: &Dataset,
    gates: Option<&GateMasks>,
    intercept: &[f64],
    loss: Loss,
) -> f64 {
    let c = data.n_outputs;
    let yhat = head_predictions(heads, data, gates, intercept);
    yhat.chunks_exact(c)
        .enumerate()
        .map(|(i, p)| loss.value(p, data.target(i)))
        .sum()
}

/// The penalty term of [`nonconvex_objective`], β Σ_j ½(‖v_j‖² + ‖o_j‖²).
pub fn nonconvex_penalty(heads: &[Head], beta: f64, norm: OutputNorm) -> f64 {
    beta * heads.iter().map(|h| head_penalty(h, norm)).sum::<f64>()
}

/// Map (ii): heads from convex coefficients (n_blocks·c·d, block b = p·n + k).
/// Group penalty: one head per nonzero (block, output) with o = √‖z‖ e_l,
/// v = z/√‖z‖. Nuclear: one head per singular triple, v = √σ u, o = √σ w.
pub fn recover_heads(
    coef: &[f64],
    penalty: Penalty,
    n_tokens: usize,
    c: usize,
    d: usize,
    gated: bool,
) -> Vec<Head> {
    let mut heads = Vec::new();
    for (b, block) in coef.chunks_exact(c * d).enumerate() {
        let (p, k) = (b / n_tokens, b % n_tokens);
        let one_hot: Vec<f64> = (0..n_tokens)
            .map(|j| if j == k { 1.0 } else { 0.0 })
            .collect();
        let gate = gated.then_some(p);
        match penalty {
            Penalty::GroupL2 => {
                for (l, z) in block.chunks_exact(d).enumerate() {
                    let nrm = norm2(z);
                    if nrm == 0.0 {
                        continue;
                    }
                    let s = nrm.sqrt();
                    heads.push(Head {
                        attention: one_hot.clone(),
                        value: z.iter().map(|v| v / s).collect(),
                        output: (0..c).map(|j| if j == l { s } else { 0.0 }).collect(),
                        gate,
                    });
                }
            }
            Penalty::Nuclear => {
                if block.iter().all(|&v| v == 0.0) {
                    continue;
                }
                let (u, sig, v) = block_svd(block, c, d);
                for (r, &sr) in sig.iter().enumerate() {
                    if sr <= 0.0 {
                        continue;
                    }
                    let s = sr.sqrt();
                    heads.push(Head {
                        attention: one_hot.clone(),
                        value: (0..d).map(|q| s * u[(q, r)]).collect(),
                        output: (0..c).map(|l| s * v[(l, r)]).collect(),
                        gate,
                    });
                }
            }
            // Sequence heads mix tokens: `sequence::recover_sequence_heads`.
            Penalty::RowSumCone { .. } => {}
        }
    }
    heads
}

/// Map (i): the convex point of heads: z_{b,l} = Σ_{j on block's gate} a_{jk} o_{jl} v_j.
pub fn heads_to_coef(
    heads: &[Head],
    n_blocks: usize,
    n_tokens: usize,
    c: usize,
    d: usize,
) -> Vec<f64> {
    let mut coef = vec![0.0; n_blocks * c * d];
    for h in heads {
        let p = h.gate.unwrap_or(0);
        for (k, &a) in h.attention.iter().enumerate() {
            let b = p * n_tokens + k;
            for l in 0..c {
                for q in 0..d {
                    coef[(b * c + l) * d + q] += a * h.output[l] * h.value[q];
                }
            }
        }
    }
    coef
}

#[cfg(test)]
mod tests;
