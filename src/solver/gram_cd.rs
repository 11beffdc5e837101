//! Block coordinate descent on a quadratic model given by a Gram matrix:
//!
//! ```text
//! min_v Σ_l (a_lᵀv_l + ½ v_lᵀ G v_l) + β Σ_b Ω(Z_b)
//! ```
//!
//! over one vector v_l ∈ R^m per output l: the d coefficients of each block
//! of the working set, then the intercept when the model has one. Once the
//! Gram is built an epoch reads no data: it costs O(m²c), not O(N·m·c)
//! (skglm's GramCD). Each block is minimised exactly in the metric of its
//! own Gram G_bb where the penalty allows (group ℓ₂: a secular equation on
//! G_bb's eigendecomposition, which preconditions ill-conditioned blocks),
//! and by a prox-gradient step with step 1/λ_max(G_bb) otherwise. Anderson
//! acceleration extrapolates every K epochs (skglm's AndersonCD).

use super::fista::Budget;
use crate::operator::kernels::{axpy, dot, par_for, rows_times_symmetric};
use crate::penalty::quadratic::ROWS_BY_PRODUCTS;
use crate::penalty::{BlockPenalty, Penalty, SymEigen};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// The Gram matrices of a working set (one shared by every output, or one
/// per output when the loss's curvature differs between outputs) and the
/// eigendecompositions of their diagonal blocks.
pub struct GramModel {
    /// m×m, row-major, symmetric: one, or one per output.
    pub grams: Vec<Vec<f64>>,
    pub m: usize,
    /// Blocks in the working set.
    pub n_blocks: usize,
    /// Coefficients per block and output.
    pub d: usize,
    /// Outputs.
    pub c: usize,
    /// Whether the last coordinate is an (unpenalised) intercept.
    pub ones: bool,
    /// eig[gram][block].
    eig: Vec<Vec<SymEigen>>,
    /// Per block, the largest eigenvalue over the Grams.
    lip: Vec<f64>,
}

impl GramModel {
    /// None when a block's eigendecomposition fails (non-finite data).
    pub fn new(
        grams: Vec<Vec<f64>>,
        n_blocks: usize,
        d: usize,
        c: usize,
        ones: bool,
    ) -> Option<Self> {
        let m = n_blocks * d + usize::from(ones);
        debug_assert!(grams.len() == 1 || grams.len() == c);
        debug_assert!(grams.iter().all(|g| g.len() == m * m));
        let eig = grams
            .iter()
            .map(|g| {
                (0..n_blocks)
                    .map(|j| SymEigen::new(&g[j * d * m + j * d..], m, d))
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        let lip = (0..n_blocks)
            .map(|j| eig.iter().map(|e| e[j].max()).fold(0.0, f64::max))
            .collect();
        Some(GramModel {
            grams,
            m,
            n_blocks,
            d,
            c,
            ones,
            eig,
            lip,
        })
    }

    /// Output l's Gram.
    #[inline]
    pub fn gram(&self, l: usize) -> &[f64] {
        &self.grams[if self.grams.len() == 1 { 0 } else { l }]
    }

    /// Output l's eigendecomposition of block j's Gram.
    #[inline]
    fn eig(&self, l: usize, j: usize) -> &SymEigen {
        &self.eig[if self.eig.len() == 1 { 0 } else { l }][j]
    }

    /// The model restricted to the blocks `keep` (positions in this model's
    /// working set, increasing), the intercept kept: no data read.
    pub fn restrict(&self, keep: &[usize]) -> Option<GramModel> {
        let d = self.d;
        let mut idx: Vec<usize> = keep.iter().flat_map(|&j| j * d..(j + 1) * d).collect();
        if self.ones {
            idx.push(self.m - 1);
        }
        let m = idx.len();
        let grams = self
            .grams
            .iter()
            .map(|old| {
                let mut g = vec![0.0; m * m];
                for (r, &i) in idx.iter().enumerate() {
                    for (col, &k) in idx.iter().enumerate() {
                        g[r * m + col] = old[i * self.m + k];
                    }
                }
                g
            })
            .collect();
        GramModel::new(grams, keep.len(), d, self.c, self.ones)
    }

    /// u_l = G v_l for every output: one product V·G when the outputs
    /// share the Gram (G is symmetric).
    pub fn apply(&self, v: &[f64], u: &mut [f64]) {
        let m = self.m;
        if self.grams.len() == 1 {
            rows_times_symmetric(v, &self.grams[0], v.len() / m, m, u);
            return;
        }
        for (l, (vl, ul)) in v.chunks_exact(m).zip(u.chunks_exact_mut(m)).enumerate() {
            let g = self.gram(l);
            for (r, out) in ul.iter_mut().enumerate() {
                *out = dot(&g[r * m..(r + 1) * m], vl);
            }
        }
    }

    /// The model's objective, given u = Gv.
    pub fn objective(
        &self,
        penalty: Penalty,
        beta: f64,
        a: &[f64],
        v: &[f64],
        u: &[f64],
        block: &mut [f64],
    ) -> f64 {
        let smooth: f64 = a
            .iter()
            .zip(v)
            .zip(u)
            .map(|((a, v), u)| v * (a + 0.5 * u))
            .sum();
        let mut pen = 0.0;
        for j in 0..self.n_blocks {
            self.gather(v, j, block);
            pen += penalty.value(block, self.c, self.d);
        }
        smooth + beta * pen
    }

    /// Block j's coefficients (c rows of d) out of v.
    fn gather(&self, v: &[f64], j: usize, block: &mut [f64]) {
        let (m, d) = (self.m, self.d);
        for (l, row) in block.chunks_exact_mut(d).enumerate() {
            row.copy_from_slice(&v[l * m + j * d..l * m + (j + 1) * d]);
        }
    }

    /// The gradient a + u on block j (c rows of d).
    fn block_grad(&self, a: &[f64], u: &[f64], j: usize, grad: &mut [f64]) {
        let (m, d) = (self.m, self.d);
        for (l, row) in grad.chunks_exact_mut(d).enumerate() {
            let o = l * m + j * d;
            for ((g, a), u) in row.iter_mut().zip(&a[o..o + d]).zip(&u[o..o + d]) {
                *g = a + u;
            }
        }
    }

    /// The largest prox-gradient mapping norm over blocks,
    /// L_b‖z_b − prox_{βΩ/L_b}(z_b − ∇_b/L_b)‖, and |∇| on the intercept:
    /// zero exactly at the model's minimiser.
    pub fn violation(
        &self,
        penalty: Penalty,
        beta: f64,
        a: &[f64],
        v: &[f64],
        u: &[f64],
        w: &mut Work,
    ) -> f64 {
        let (c, d, m) = (self.c, self.d, self.m);
        let mut worst = 0.0f64;
        for j in 0..self.n_blocks {
            let lip = self.lip[j];
            if lip <= 0.0 {
                continue;
            }
            self.gather(v, j, &mut w.block);
            self.block_grad(a, u, j, &mut w.grad);
            for ((t, z), g) in w.trial.iter_mut().zip(&w.block).zip(&w.grad) {
                *t = z - g / lip;
            }
            penalty.prox(&mut w.trial, c, d, beta / lip);
            let dist: f64 = w
                .trial
                .iter()
                .zip(&w.block)
                .map(|(t, z)| (t - z) * (t - z))
                .sum();
            worst = worst.max(lip * dist.sqrt());
        }
        if self.ones {
            for l in 0..c {
                worst = worst.max((a[l * m + m - 1] + u[l * m + m - 1]).abs());
            }
        }
        worst
    }
}

/// Scratch of the coordinate descent, allocated once per model.
pub struct Work {
    block: Vec<f64>,
    grad: Vec<f64>,
    trial: Vec<f64>,
    s: Vec<f64>,
    secular: Vec<f64>,
    /// The outputs whose row a block update moved, and their product rows.
    rows_moved: Vec<usize>,
    product: Vec<f64>,
}

impl Work {
    pub fn new(c: usize, d: usize, m: usize) -> Self {
        Work {
            rows_moved: vec![0; c],
            product: vec![0.0; c * m],
            block: vec![0.0; c * d],
            grad: vec![0.0; c * d],
            trial: vec![0.0; c * d],
            s: vec![0.0; c * d],
            // c·d: the rows' rotations when they are batched.
            secular: vec![0.0; c * d],
        }
    }
}

/// How a coordinate-descent run ended.
pub struct CdOutcome {
    pub epochs: usize,
    /// The violation at the start and at the end.
    pub initial_violation: f64,
    pub violation: f64,
}

/// Anderson acceleration over this many epochs.
const ANDERSON_K: usize = 5;

/// Runs epochs from (v, u = Gv) until the violation is at most `eps`,
/// `max_epochs` have run or the budget's time is out (deadline or interrupt).
#[allow(clippy::too_many_arguments)]
pub fn gram_cd(
    model: &GramModel,
    penalty: Penalty,
    beta: f64,
    a: &[f64],
    v: &mut [f64],
    u: &mut [f64],
    eps: f64,
    max_epochs: usize,
    budget: &Budget,
) -> CdOutcome {
    let (c, d, m) = (model.c, model.d, model.m);
    let mut w = Work::new(c, d, m);
    let initial_violation = model.violation(penalty, beta, a, v, u, &mut w);
    let mut violation = initial_violation;
    let mut history: Vec<Vec<f64>> = Vec::with_capacity(ANDERSON_K + 1);
    let mut history_u: Vec<Vec<f64>> = Vec::with_capacity(ANDERSON_K + 1);
    let mut epochs = 0;
    while violation > eps && epochs < max_epochs && budget.out_of_time().is_none() {
        epoch(model, penalty, beta, a, v, u, &mut w);
        epochs += 1;
        // Anderson: extrapolate from the last K+1 iterates; keep the
        // extrapolation only where it lowers the model.
        history.push(v.to_vec());
        history_u.push(u.to_vec());
        if history.len() == ANDERSON_K + 1 {
            if let Some(coefs) = anderson_coefficients(&history) {
                let mut ve = vec![0.0; v.len()];
                let mut ue = vec![0.0; u.len()];
                for (k, &ck) in coefs.iter().enumerate() {
                    axpy(ck, &history[k + 1], &mut ve);
                    axpy(ck, &history_u[k + 1], &mut ue);
                }
                let now = model.objective(penalty, beta, a, v, u, &mut w.block);
                let ext = model.objective(penalty, beta, a, &ve, &ue, &mut w.block);
                if ext < now {
                    v.copy_from_slice(&ve);
                    // Recompute Gv: the combination drifts from G·ve by
                    // rounding over many extrapolations.
                    model.apply(v, u);
                }
            }
            history.clear();
            history_u.clear();
        }
        violation = model.violation(penalty, beta, a, v, u, &mut w);
    }
    CdOutcome {
        epochs,
        initial_violation,
        violation,
    }
}

/// One pass over the blocks (and the intercept), each minimised in turn,
/// keeping u = Gv.
fn epoch(
    model: &GramModel,
    penalty: Penalty,
    beta: f64,
    a: &[f64],
    v: &mut [f64],
    u: &mut [f64],
    w: &mut Work,
) {
    let (c, d, m) = (model.c, model.d, model.m);
    let shared = model.grams.len() == 1;
    for j in 0..model.n_blocks {
        let lip = model.lip[j];
        if lip <= 0.0 {
            continue;
        }
        model.gather(v, j, &mut w.block);
        model.block_grad(a, u, j, &mut w.grad);
        // s_l = G_l,jj z_{j,l} − ∇_{j,l}: the linear term of the block's own
        // problem; one product for all outputs when they share the Gram.
        if shared && c >= ROWS_BY_PRODUCTS {
            let g = model.gram(0);
            matmul(
                MatMut::from_row_major_slice_mut(&mut w.s, c, d),
                Accum::Replace,
                MatRef::from_row_major_slice(&w.block, c, d),
                MatRef::from_row_major_slice_with_stride(&g[j * d * m + j * d..], d, d, m),
                1.0,
                Par::Seq,
            );
            axpy(-1.0, &w.grad, &mut w.s);
        } else {
            for l in 0..c {
                let g = model.gram(l);
                let z = &w.block[l * d..(l + 1) * d];
                for q in 0..d {
                    let r = j * d + q;
                    w.s[l * d + q] =
                        dot(&g[r * m + j * d..r * m + (j + 1) * d], z) - w.grad[l * d + q];
                }
            }
        }
        w.trial.copy_from_slice(&w.block);
        let exact = if shared {
            penalty.quadratic_min(
                model.eig(0, j),
                &w.s,
                c,
                d,
                beta,
                &mut w.trial,
                &mut w.secular,
            )
        } else {
            // One metric per output: exact per row where the rows are
            // separate groups.
            penalty.separable_rows()
                && (0..c).all(|l| {
                    penalty.quadratic_min(
                        model.eig(l, j),
                        &w.s[l * d..(l + 1) * d],
                        1,
                        d,
                        beta,
                        &mut w.trial[l * d..(l + 1) * d],
                        &mut w.secular,
                    )
                })
        };
        if !exact {
            for ((t, z), gr) in w.trial.iter_mut().zip(&w.block).zip(&w.grad) {
                *t = z - gr / lip;
            }
            penalty.prox(&mut w.trial, c, d, beta / lip);
        }
        // u_l += G_l[:, block] Δ_l: one small product (c×d)·(d×m) when the
        // Gram is shared by several outputs, row by row of G_l otherwise.
        if shared && c > 1 {
            // Δ into w.block; only the outputs whose row moved enter the
            // product (with many outputs, most groups stay at zero).
            let mut moved = 0;
            for l in 0..c {
                let row = l * d..(l + 1) * d;
                if w.trial[row.clone()] != w.block[row.clone()] {
                    for q in 0..d {
                        w.block[moved * d + q] = w.trial[l * d + q] - w.block[l * d + q];
                    }
                    w.rows_moved[moved] = l;
                    moved += 1;
                    v[l * m + j * d..l * m + (j + 1) * d].copy_from_slice(&w.trial[row]);
                }
            }
            if moved == 0 {
                continue;
            }
            let g = model.gram(0);
            let delta = MatRef::from_row_major_slice(&w.block[..moved * d], moved, d);
            let rows = MatRef::from_row_major_slice(&g[j * d * m..(j + 1) * d * m], d, m);
            // Both cores where the product is large (many outputs).
            let par = par_for(moved * d * m);
            if moved == c {
                let um = MatMut::from_row_major_slice_mut(u, c, m);
                matmul(um, Accum::Add, delta, rows, 1.0, par);
            } else {
                let prod = &mut w.product[..moved * m];
                let pm = MatMut::from_row_major_slice_mut(prod, moved, m);
                matmul(pm, Accum::Replace, delta, rows, 1.0, par);
                for (k, &l) in w.rows_moved[..moved].iter().enumerate() {
                    axpy(1.0, &prod[k * m..(k + 1) * m], &mut u[l * m..(l + 1) * m]);
                }
            }
            continue;
        }
        for l in 0..c {
            let g = model.gram(l);
            for q in 0..d {
                let delta = w.trial[l * d + q] - w.block[l * d + q];
                if delta != 0.0 {
                    let r = j * d + q;
                    axpy(delta, &g[r * m..(r + 1) * m], &mut u[l * m..(l + 1) * m]);
                    v[l * m + r] = w.trial[l * d + q];
                }
            }
        }
    }
    if model.ones {
        let r = m - 1;
        for l in 0..c {
            let g = model.gram(l);
            let gmm = g[r * m + r];
            if gmm > 0.0 {
                let delta = -(a[l * m + r] + u[l * m + r]) / gmm;
                if delta != 0.0 {
                    axpy(delta, &g[r * m..(r + 1) * m], &mut u[l * m..(l + 1) * m]);
                    v[l * m + r] += delta;
                }
            }
        }
    }
}

/// Anderson's weights over the K differences of K+1 iterates: c solving
/// (UᵀU)c = 1, normalised to sum 1. None when UᵀU is singular.
pub(super) fn anderson_coefficients(history: &[Vec<f64>]) -> Option<Vec<f64>> {
    let k = history.len() - 1;
    let diffs: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            history[i + 1]
                .iter()
                .zip(&history[i])
                .map(|(a, b)| a - b)
                .collect()
        })
        .collect();
    let mut utu = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let v = dot(&diffs[i], &diffs[j]);
            utu[i * k + j] = v;
            utu[j * k + i] = v;
        }
    }
    let z = solve_spd(&mut utu, k)?;
    let s: f64 = z.iter().sum();
    if !s.is_finite() || s.abs() < 1e-300 {
        return None;
    }
    Some(z.iter().map(|v| v / s).collect())
}

/// Solves A z = 1 for a small symmetric positive definite A (Cholesky),
/// None when A is numerically singular.
fn solve_spd(a: &mut [f64], k: usize) -> Option<Vec<f64>> {
    let scale = (0..k).map(|i| a[i * k + i]).fold(0.0, f64::max);
    if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
        return None;
    }
    for i in 0..k {
        for j in 0..=i {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= a[i * k + p] * a[j * k + p];
            }
            if i == j {
                if s <= 1e-14 * scale {
                    return None;
                }
                a[i * k + i] = s.sqrt();
            } else {
                a[i * k + j] = s / a[j * k + j];
            }
        }
    }
    let mut z = vec![1.0; k];
    for i in 0..k {
        let mut s = z[i];
        for p in 0..i {
            s -= a[i * k + p] * z[p];
        }
        z[i] = s / a[i * k + i];
    }
    for i in (0..k).rev() {
        let mut s = z[i];
        for p in i + 1..k {
            s -= a[p * k + i] * z[p];
        }
        z[i] = s / a[i * k + i];
    }
    Some(z)
}
