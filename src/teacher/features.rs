//! The teacher's inputs and targets for every sentence, the input projection
//! of the convex student, and the per-position data sets.

use super::bert::{Teacher, Tokens};
use crate::data::Dataset;
use crate::error::{invalid, Error, Result};
use faer::{Mat, Side};

/// Teacher features of N sentences, padded to n tokens. Padding rows of `x`
/// and `y` are zero.
#[derive(Clone, Debug)]
pub struct Features {
    /// n, tokens per sentence after padding.
    pub n: usize,
    /// D, the model width (features per token and outputs per position).
    pub dim: usize,
    /// N·n·D hidden states entering the last layer.
    pub x: Vec<f32>,
    /// N·n·D targets: the last attention sublayer's output projection (see `bert`).
    pub y: Vec<f32>,
    /// Tokens of each sentence (≤ n).
    pub lengths: Vec<usize>,
    /// N·n·n: the teacher's last-layer attention, mean over heads.
    pub attention: Vec<f32>,
    /// Word pieces of each sentence, for plot labels.
    pub pieces: Vec<Vec<String>>,
}

impl Features {
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Row (sentence i, token k) of x or y.
    pub fn row<'a>(&self, v: &'a [f32], i: usize, k: usize) -> &'a [f32] {
        let o = (i * self.n + k) * self.dim;
        &v[o..o + self.dim]
    }
}

/// Runs the teacher on all sentences, `batch` at a time.
pub fn extract(
    teacher: &Teacher,
    tokens: &[Tokens],
    batch: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<Features> {
    let n = tokens.iter().map(|t| t.ids.len()).max().unwrap_or(0);
    if n == 0 {
        return invalid("no sentences to run the teacher on");
    }
    let dim = teacher.config.hidden_size;
    let total = tokens.len();
    let mut f = Features {
        n,
        dim,
        x: Vec::with_capacity(total * n * dim),
        y: Vec::with_capacity(total * n * dim),
        lengths: tokens.iter().map(|t| t.ids.len()).collect(),
        attention: Vec::with_capacity(total * n * n),
        pieces: tokens.iter().map(|t| t.pieces.clone()).collect(),
    };
    let flat = |t: candle_core::Tensor| -> Result<Vec<f32>> {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| Error::Invalid(format!("teacher output: {e}")))
    };
    for chunk in tokens.chunks(batch.max(1)) {
        let (x, y, probs) = teacher.run(chunk, n)?;
        let mean = probs
            .mean(1)
            .map_err(|e| Error::Invalid(format!("teacher attention: {e}")))?;
        let (mut xs, mut ys) = (flat(x)?, flat(y)?);
        for (i, t) in chunk.iter().enumerate() {
            let pad = i * n * dim + t.ids.len() * dim..(i + 1) * n * dim;
            xs[pad.clone()].fill(0.0);
            ys[pad].fill(0.0);
        }
        f.x.extend_from_slice(&xs);
        f.y.extend_from_slice(&ys);
        f.attention.extend_from_slice(&flat(mean)?);
        on_batch(chunk.len());
    }
    Ok(f)
}

/// x ↦ Λ^{-1/2} Pᵀx: onto the top `k` eigenvectors P of the uncentred second
/// moment M = (1/T) Σ x xᵀ of the T training tokens, whitened (Λ: their
/// eigenvalues), so the projected features have second moment I. Whitening
/// keeps the convex program well conditioned (BERT's hidden states are very
/// anisotropic: FISTA crawls on the raw directions); uncentred, so padding
/// (zero) rows stay zero and a linear model of the projected tokens is a
/// linear model of the tokens.
#[derive(Clone, Debug)]
pub struct Projection {
    pub dim_in: usize,
    pub dim_out: usize,
    /// dim_in × dim_out, column-major (column j: the j-th direction / √λ_j).
    pub basis: Vec<f64>,
    /// Fraction of Σ‖x‖² kept by the projection.
    pub energy_kept: f64,
}

impl Projection {
    /// Fitted on the real tokens of sentences `idx`; `k = D` keeps all
    /// directions. Directions with λ_j ≤ 1e-12·λ_max are refused (fewer
    /// tokens than features).
    pub fn fit(f: &Features, idx: &[usize], k: usize) -> Result<Self> {
        let d = f.dim;
        if k == 0 || k > d {
            return invalid(format!(
                "--proj-dim must be in 1..={d} (the model width), got {k}"
            ));
        }
        let mut m = Mat::<f64>::zeros(d, d);
        let tokens: usize = idx.iter().map(|&i| f.lengths[i]).sum();
        for &i in idx {
            for t in 0..f.lengths[i] {
                let r = f.row(&f.x, i, t);
                for a in 0..d {
                    let ra = r[a] as f64;
                    for b in 0..=a {
                        m[(a, b)] += ra * r[b] as f64;
                    }
                }
            }
        }
        let eig = m.self_adjoint_eigen(Side::Lower).map_err(|e| {
            Error::Invalid(format!("projection: eigen-decomposition failed ({e:?})"))
        })?;
        let s = eig.S().column_vector();
        let total: f64 = (0..d).map(|j| s[j].max(0.0)).sum();
        let u = eig.U();
        // Eigenvalues ascend: the top k are the last k columns, largest first.
        let cols: Vec<usize> = (d - k..d).rev().collect();
        let top = s[d - 1].max(0.0);
        if let Some(&j) = cols.iter().find(|&&j| s[j] <= 1e-12 * top) {
            return invalid(format!(
                "direction {} of the tokens has no variance ({} tokens, width {d}): lower --proj-dim to at most {}",
                d - j,
                tokens,
                d - 1 - j
            ));
        }
        let basis = cols
            .iter()
            .flat_map(|&j| {
                let scale = (s[j] / tokens as f64).sqrt();
                (0..d).map(move |a| u[(a, j)] / scale)
            })
            .collect();
        let kept: f64 = cols.iter().map(|&j| s[j].max(0.0)).sum();
        Ok(Projection {
            dim_in: d,
            dim_out: k,
            basis,
            energy_kept: if total > 0.0 { kept / total } else { 1.0 },
        })
    }

    fn apply(&self, row: &[f32], out: &mut [f64]) {
        for (j, o) in out.iter_mut().enumerate() {
            let col = &self.basis[j * self.dim_in..(j + 1) * self.dim_in];
            *o = col.iter().zip(row).map(|(u, &x)| u * x as f64).sum();
        }
    }
}

/// The §4b data set of output position `r`: the sentences of `idx` that have
/// a token at r; X their projected tokens (N_r×n×k), y the teacher's output at
/// r (N_r×D). Returns the data set and the sentences it holds.
pub fn position_dataset(
    f: &Features,
    idx: &[usize],
    r: usize,
    proj: &Projection,
) -> Result<(Dataset<'static>, Vec<usize>)> {
    let keep: Vec<usize> = idx.iter().copied().filter(|&i| f.lengths[i] > r).collect();
    if keep.is_empty() {
        return invalid(format!(
            "no sentence has a token at position {r}; choose smaller --positions"
        ));
    }
    let (n, k, d) = (f.n, proj.dim_out, f.dim);
    let mut x = vec![0.0; keep.len() * n * k];
    let mut y = Vec::with_capacity(keep.len() * d);
    for (s, &i) in keep.iter().enumerate() {
        for t in 0..f.lengths[i] {
            let o = (s * n + t) * k;
            proj.apply(f.row(&f.x, i, t), &mut x[o..o + k]);
        }
        y.extend(f.row(&f.y, i, r).iter().map(|&v| v as f64));
    }
    Ok((Dataset::new_real(x, (keep.len(), n, k), y, d)?, keep))
}

/// (Σ‖ŷ − y‖², Σ‖y − ȳ‖²) over rows of D values (`ȳ` = `mean`, the
/// training targets' mean). Their ratio is the relative error: the fraction
/// of variance left unexplained, 1 for the constant prediction ȳ. Sums, so
/// that positions and batches pool exactly.
pub fn squared_errors<T: Into<f64> + Copy>(yhat: &[T], y: &[T], mean: &[f64]) -> (f64, f64) {
    let d = mean.len();
    let mut num = 0.0;
    let mut den = 0.0;
    for (p, t) in yhat.chunks_exact(d).zip(y.chunks_exact(d)) {
        for q in 0..d {
            let (p, t) = (p[q].into(), t[q].into());
            num += (p - t).powi(2);
            den += (t - mean[q]).powi(2);
        }
    }
    (num, den)
}

/// Column means of an N×D matrix.
pub fn column_mean(y: &[f64], d: usize) -> Vec<f64> {
    let mut m = vec![0.0; d];
    let rows = (y.len() / d).max(1) as f64;
    for r in y.chunks_exact(d) {
        for (a, v) in m.iter_mut().zip(r) {
            *a += v / rows;
        }
    }
    m
}
