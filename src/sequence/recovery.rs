//! The two maps of SPEC §4c between sequence heads and convex points, and
//! both objectives evaluated directly (plain loops, no shared code with the
//! solver's matrix products: these are the references the solver is checked
//! against).
//!
//! A head is (W, V, o): W ∈ R^{n×n} row-stochastic, V ∈ R^{d×c}, o ∈ R, and
//! F(X) = Σ_j o_j W_j X V_j with penalty β/2 Σ_j (‖V_j‖₁² + o_j²) (eq. 30).
//!
//! - Map (i), [`sequence_heads_to_coef`]: C_{ql} = Σ_j o_j V_j[q, l] W_j has
//!   equal row sums, the same predictions, and ‖C_{ql}‖_{∞,1} ≤
//!   Σ_j |o_j V_j[q, l]|, so Σ_{ql} ‖C_{ql}‖_{∞,1} ≤ Σ_j |o_j| ‖V_j‖₁ ≤
//!   ½ Σ_j (‖V_j‖₁² + o_j²) (AM–GM).
//! - Map (ii), [`recover_sequence_heads`]: from C_{ql} with common row sum s
//!   and m = ‖C_{ql}‖_{∞,1}, t± = (m ± s)/2, C± = the positive/negative parts
//!   plus half the row slack (m − Σ_k |C[r, k]|)/2 on one entry of each row,
//!   W± = C±/t±, V = √t± e_q e_lᵀ, o = ±√t±: penalty β(t⁺ + t⁻) = β m.

use crate::error::{invalid, Result};
use crate::loss::{Loss, SampleLoss};

use crate::data::Dataset;

/// One sequence head: F_j(X) = o · W X V.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SequenceHead {
    /// W ∈ R^{n×n}, row-major, row-stochastic.
    pub mixing: Vec<f64>,
    /// V ∈ R^{d×c}, row-major.
    pub value: Vec<f64>,
    /// o ∈ R.
    pub output: f64,
}

/// How far (relative to ‖C_{ql}‖_{∞,1}) the row sums of a matrix given to
/// [`recover_sequence_heads`] may differ: rounding, not a modelling error.
pub const EQUAL_ROWS_TOL: f64 = 1e-9;

/// ‖M‖_{∞,1} = max_r Σ_k |M[r, k]| of a row-major n×n matrix.
pub fn norm_inf1(m: &[f64], n: usize) -> f64 {
    m.chunks_exact(n)
        .map(|row| row.iter().map(|v| v.abs()).sum::<f64>())
        .fold(0.0, f64::max)
}

/// Σ_{q,l} ‖C_{ql}‖_{∞,1} of matrix-major coefficients.
pub fn sequence_penalty(coef: &[f64], n: usize) -> f64 {
    coef.chunks_exact(n * n).map(|m| norm_inf1(m, n)).sum()
}

/// Predictions F(X_i)[r, l] = Σ_{q,k} C_{ql}[r, k] X_i[k, q] (N×n×c) of
/// matrix-major coefficients, by plain loops.
pub fn coef_predictions(coef: &[f64], data: &Dataset) -> Vec<f64> {
    let (n_s, n, d, c) = data.shape();
    let mut out = vec![0.0; n_s * n * c];
    for i in 0..n_s {
        let x = data.sample(i);
        let f = &mut out[i * n * c..(i + 1) * n * c];
        for q in 0..d {
            for l in 0..c {
                let m = &coef[(q * c + l) * n * n..(q * c + l + 1) * n * n];
                for r in 0..n {
                    let mut s = 0.0;
                    for k in 0..n {
                        s += m[r * n + k] * x[k * d + q];
                    }
                    f[r * c + l] += s;
                }
            }
        }
    }
    out
}

/// Σ_{i,r} L(ŷ_i[r, :], Y_i[r, :]) for predictions N×n×c.
pub fn fit_value(loss: Loss, data: &Dataset, yhat: &[f64]) -> f64 {
    let c = data.n_outputs;
    yhat.chunks_exact(c)
        .zip(data.y.chunks_exact(c))
        .map(|(p, y)| loss.value(p, y))
        .sum()
}

/// The convex objective Σ L + β Σ_{ql} ‖C_{ql}‖_{∞,1} (the equal-row-sum
/// constraint is not checked here).
pub fn sequence_objective(coef: &[f64], data: &Dataset, loss: Loss, beta: f64) -> f64 {
    fit_value(loss, data, &coef_predictions(coef, data))
        + beta * sequence_penalty(coef, data.n_tokens)
}

/// Predictions Σ_j o_j W_j X_i V_j (N×n×c) of heads, by plain loops.
pub fn head_predictions(heads: &[SequenceHead], data: &Dataset) -> Vec<f64> {
    let (n_s, n, d, c) = data.shape();
    let mut out = vec![0.0; n_s * n * c];
    let mut xv = vec![0.0; n * c];
    for i in 0..n_s {
        let x = data.sample(i);
        let f = &mut out[i * n * c..(i + 1) * n * c];
        for h in heads {
            // X V (n×c), then o · W (X V).
            xv.iter_mut().for_each(|v| *v = 0.0);
            for k in 0..n {
                for q in 0..d {
                    let xkq = x[k * d + q];
                    for l in 0..c {
                        xv[k * c + l] += xkq * h.value[q * c + l];
                    }
                }
            }
            for r in 0..n {
                for k in 0..n {
                    let w = h.output * h.mixing[r * n + k];
                    if w != 0.0 {
                        for l in 0..c {
                            f[r * c + l] += w * xv[k * c + l];
                        }
                    }
                }
            }
        }
    }
    out
}

/// ½(‖V‖₁² + o²), the head's penalty without β.
pub fn head_penalty(h: &SequenceHead) -> f64 {
    let v1: f64 = h.value.iter().map(|v| v.abs()).sum();
    0.5 * (v1 * v1 + h.output * h.output)
}

/// The nonconvex objective of eq. (30), from the heads alone.
pub fn sequence_nonconvex_objective(
    heads: &[SequenceHead],
    data: &Dataset,
    loss: Loss,
    beta: f64,
) -> f64 {
    nonconvex_on_shard(heads, data, loss, beta, &|_| {})
}

/// [`sequence_nonconvex_objective`] where `data` is one shard of the
/// samples: `sum` adds the loss over rows across the shards.
pub(crate) fn nonconvex_on_shard(
    heads: &[SequenceHead],
    data: &Dataset,
    loss: Loss,
    beta: f64,
    sum: &dyn Fn(&mut [f64]),
) -> f64 {
    let mut fit = [fit_value(loss, data, &head_predictions(heads, data))];
    sum(&mut fit);
    fit[0] + beta * heads.iter().map(head_penalty).sum::<f64>()
}

fn check_head_shapes(heads: &[SequenceHead], n: usize, d: usize, c: usize) -> Result<()> {
    for (j, h) in heads.iter().enumerate() {
        if h.mixing.len() != n * n || h.value.len() != d * c {
            return invalid(format!(
                "head {j} has a {}-entry mixing matrix and a {}-entry value matrix; \
                 the data need n×n = {} and d×c = {}",
                h.mixing.len(),
                h.value.len(),
                n * n,
                d * c
            ));
        }
    }
    Ok(())
}

/// Map (i): C_{ql} = Σ_j o_j V_j[q, l] W_j, matrix-major (d·c·n²).
pub fn sequence_heads_to_coef(
    heads: &[SequenceHead],
    n: usize,
    d: usize,
    c: usize,
) -> Result<Vec<f64>> {
    check_head_shapes(heads, n, d, c)?;
    let mut coef = vec![0.0; d * c * n * n];
    for h in heads {
        for q in 0..d {
            for l in 0..c {
                let a = h.output * h.value[q * c + l];
                if a == 0.0 {
                    continue;
                }
                let m = &mut coef[(q * c + l) * n * n..(q * c + l + 1) * n * n];
                for (mv, w) in m.iter_mut().zip(&h.mixing) {
                    *mv += a * w;
                }
            }
        }
    }
    Ok(coef)
}

/// The C⁺/C⁻ split of SPEC §4c (ii) of one n×n matrix with common row sum
/// (to [`EQUAL_ROWS_TOL`]): returns (C⁺, t⁺, C⁻, t⁻), with C± ≥ 0, rows of
/// C± summing to t± (to rounding), C = C⁺ − C⁻ and t⁺ + t⁻ = ‖C‖_{∞,1}.
/// Errors when the row sums differ.
pub fn split_matrix(m: &[f64], n: usize) -> Result<(Vec<f64>, f64, Vec<f64>, f64)> {
    let norm = norm_inf1(m, n);
    let sums: Vec<f64> = m.chunks_exact(n).map(|r| r.iter().sum()).collect();
    let s = sums.iter().sum::<f64>() / n as f64;
    let dev = sums.iter().map(|v| (v - s).abs()).fold(0.0, f64::max);
    if dev > EQUAL_ROWS_TOL * norm {
        return invalid(format!(
            "the row sums of the matrix differ by up to {dev:.3e} (its ‖·‖∞,1 is {norm:.3e}): \
             only matrices with equal row sums come from attention heads"
        ));
    }
    let (tp, tm) = (0.5 * (norm + s), 0.5 * (norm - s));
    let mut cp = vec![0.0; n * n];
    let mut cm = vec![0.0; n * n];
    for r in 0..n {
        let row = &m[r * n..(r + 1) * n];
        let mut abs_sum = 0.0;
        let mut big = 0;
        for (k, &v) in row.iter().enumerate() {
            abs_sum += v.abs();
            if v.abs() > row[big].abs() {
                big = k;
            }
            if v > 0.0 {
                cp[r * n + k] = v;
            } else {
                cm[r * n + k] = -v;
            }
        }
        let slack = 0.5 * (norm - abs_sum).max(0.0);
        cp[r * n + big] += slack;
        cm[r * n + big] += slack;
    }
    Ok((cp, tp.max(0.0), cm, tm.max(0.0)))
}

/// A part C± with t± ≤ this times ‖C_{ql}‖_{∞,1} is rounding (of s = m or
/// s = −m) and gets no head.
const DROP_TOL: f64 = 1e-12;

/// Map (ii): heads from matrix-major coefficients, one per (q, l, sign)
/// with t± > 10⁻¹²·‖C_{ql}‖_{∞,1} (a smaller part is rounding), in the order
/// q, l, +, −. The rows of each W are normalised by their own sums, so W is
/// row-stochastic to the last bit and the heads' predictions differ from
/// C's by at most the row-sum deviation of C (rounding). Errors when a
/// matrix's row sums differ by more than [`EQUAL_ROWS_TOL`]·‖C_{ql}‖_{∞,1}.
pub fn recover_sequence_heads(
    coef: &[f64],
    n: usize,
    d: usize,
    c: usize,
) -> Result<Vec<SequenceHead>> {
    if coef.len() != d * c * n * n {
        return invalid(format!(
            "{} coefficients, the sequence program with n = {n}, d = {d}, c = {c} has {}",
            coef.len(),
            d * c * n * n
        ));
    }
    let mut heads = Vec::new();
    for q in 0..d {
        for l in 0..c {
            let m = &coef[(q * c + l) * n * n..(q * c + l + 1) * n * n];
            let norm = norm_inf1(m, n);
            if norm == 0.0 {
                continue;
            }
            let (cp, tp, cm, tm) = split_matrix(m, n)
                .map_err(|e| crate::Error::Invalid(format!("matrix C[q={q}, l={l}]: {e}")))?;
            for (mut part, t, sign) in [(cp, tp, 1.0), (cm, tm, -1.0)] {
                if t <= DROP_TOL * norm {
                    continue;
                }
                // Each row sums to t up to the row-sum deviation (rounding):
                // normalise rows by their own sums so W is row-stochastic.
                for row in part.chunks_exact_mut(n) {
                    let rs: f64 = row.iter().sum();
                    row.iter_mut().for_each(|v| *v /= rs);
                }
                let root = t.sqrt();
                let mut value = vec![0.0; d * c];
                value[q * c + l] = root;
                heads.push(SequenceHead {
                    mixing: part,
                    value,
                    output: sign * root,
                });
            }
        }
    }
    Ok(heads)
}

/// Replaces each n×n matrix by its orthogonal projection onto the
/// equal-row-sum subspace (row r shifted by (s̄ − s_r)/n): a no-op in exact
/// arithmetic on C⁺ − C⁻, it removes the rounding of the row sums.
pub fn equalize_rows(coef: &mut [f64], n: usize) {
    for m in coef.chunks_exact_mut(n * n) {
        let sums: Vec<f64> = m.chunks_exact(n).map(|r| r.iter().sum()).collect();
        let mean = sums.iter().sum::<f64>() / n as f64;
        for (row, s) in m.chunks_exact_mut(n).zip(&sums) {
            let shift = (mean - s) / n as f64;
            if shift != 0.0 {
                row.iter_mut().for_each(|v| *v += shift);
            }
        }
    }
}

/// The split (C⁺, C⁻) ∈ K × K of matrix-major coefficients with equal row
/// sums, matrix by matrix (SPEC §4c (ii)), as the solver's blocks (C⁺_b then
/// C⁻_b): a feasible point whose split-form objective equals the convex
/// objective at C.
pub fn split_coef(coef: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(2 * coef.len());
    for m in coef.chunks_exact(n * n) {
        let (cp, _, cm, _) = split_matrix(m, n)?;
        out.extend(cp);
        out.extend(cm);
    }
    Ok(out)
}
