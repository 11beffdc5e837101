//! Each nonzero group's length set to its best, for certificates that lag
//! their point.
//!
//! The dual point of SPEC §5 is θ = −∇L(ŷ) scaled into the feasible set,
//! and its gap is first order in the point's error where the primal's is
//! second: near the optimum it is about Σ_g β‖z_g‖(s − r_g), with
//! r_g = ⟨𝒜_gᵀθ, z_g⟩/(β‖z_g‖) the dual ratio along group g and s the
//! largest dual ratio of any group. Coordinate descent on correlated blocks
//! leaves those ratios spread (gated cross-entropy: 0.9987 to 1.0014 with
//! the primal within 1e-8 of its optimum), so the gap waits on the primal's
//! last digits.
//!
//! The objective along the groups' own lengths and the intercept,
//! φ(t) = P(((1 + t_g) z_g)_g, b + t_b), is smooth and convex in K + c
//! numbers, and at its minimum every nonzero group has r_g = 1: the first
//! order term is gone, what is left is second order (the groups'
//! directions). For operators of the token form (group g of block b feeds
//! output g only) the groups' predictions 𝒜_g z_g are N numbers each, read
//! once; Newton's method on t then costs K·N per product and reads no data.

use rayon::prelude::*;

use crate::loss::SampleLoss;
use crate::operator::kernels::dot;
use crate::operator::{LinearOperator, PassBuffers};
use crate::penalty::Penalty;
use crate::problem::Problem;

/// At most this many stored prediction values (K·N: 128 MiB; the 32-gate
/// grokking model at 0.063·β_max holds 2,406 groups of 4,656 rows). Beyond
/// it the lengths of the groups with the largest share of the gap's first
/// order term are set.
pub const MAX_VALUES: usize = 1 << 24;
/// Rows per parallel chunk.
const ROWS: usize = 256;
const MAX_NEWTON: usize = 20;
const MAX_CG: usize = 50;
/// Newton stops when Σ|∂φ| is this fraction of the gap aimed at, and the
/// rescaling's share of the gap left ([`rescaling_left`]) `SCALE_AIM` of it.
pub(crate) const GRAD_AIM: f64 = 0.05;
const SCALE_AIM: f64 = 0.5;

/// How far one lengths step goes.
pub struct Reach<'s> {
    /// The absolute gap aimed at.
    pub aim: f64,
    /// At most this many stored prediction values ([`MAX_VALUES`] in the
    /// solver).
    pub max_values: usize,
    /// Asked before every Newton iteration and conjugate-gradient product:
    /// true ends the step early (the solve's deadline or interrupt), keeping
    /// the lengths of the last accepted Newton iterate. On a sharded solve
    /// every shard asks at the same points.
    pub stop: &'s dyn Fn() -> bool,
}

/// The nonzero groups of a working set and their predictions.
struct Lengths<'p> {
    /// Each group's (working-set position, output).
    pos: Vec<(usize, usize)>,
    /// β‖z_g‖ per group.
    weight: Vec<f64>,
    /// Σ β‖z_g‖ over every nonzero group of the working set (these and any
    /// left out beyond the memory cap).
    total_weight: f64,
    /// 𝒜_g z_g per group, `rows` values each.
    pred: Vec<f64>,
    rows: usize,
    c: usize,
    /// Whether t has an intercept part (c values after the groups').
    intercept: bool,
    yhat0: &'p [f64],
}

impl Lengths<'_> {
    fn dim(&self) -> usize {
        self.pos.len() + if self.intercept { self.c } else { 0 }
    }
    fn group(&self, g: usize) -> &[f64] {
        &self.pred[g * self.rows..(g + 1) * self.rows]
    }
    /// Σ_g u_g 𝒜_g z_g (+ the intercept part), rows × c, added to `out`;
    /// in parallel over fixed chunks of rows.
    fn apply(&self, u: &[f64], out: &mut [f64]) {
        let (c, k) = (self.c, self.pos.len());
        out.par_chunks_mut(ROWS * c)
            .enumerate()
            .for_each(|(j, chunk)| {
                let rows = j * ROWS..j * ROWS + chunk.len() / c;
                for (g, &(_, l)) in self.pos.iter().enumerate() {
                    if u[g] != 0.0 {
                        let pred = &self.group(g)[rows.clone()];
                        for (o, p) in chunk.chunks_exact_mut(c).zip(pred) {
                            o[l] += u[g] * p;
                        }
                    }
                }
                if self.intercept {
                    for o in chunk.chunks_exact_mut(c) {
                        for (ol, ul) in o.iter_mut().zip(&u[k..]) {
                            *ol += ul;
                        }
                    }
                }
            });
    }
    /// The adjoint of [`Self::apply`] on per-row values `r` (rows × c).
    fn adjoint<O: LinearOperator>(&self, problem: &Problem<'_, O>, r: &[f64]) -> Vec<f64> {
        self.reduce(problem, r, false)
    }
    /// The diagonal of the adjoint ∘ diag(w) ∘ apply for per-row weights
    /// `w` (rows × c).
    fn adjoint_squares<O: LinearOperator>(&self, problem: &Problem<'_, O>, w: &[f64]) -> Vec<f64> {
        self.reduce(problem, w, true)
    }
    /// Per group Σ_i r_il·p_gi (or r_il·p_gi² where `squared`), p_g = 𝒜_g z_g;
    /// per intercept output Σ_i r_il; summed over shards.
    fn reduce<O: LinearOperator>(
        &self,
        problem: &Problem<'_, O>,
        r: &[f64],
        squared: bool,
    ) -> Vec<f64> {
        let (rows, c) = (self.rows, self.c);
        let mut cols = vec![0.0; rows * c];
        for (i, ri) in r.chunks_exact(c).enumerate() {
            for l in 0..c {
                cols[l * rows + i] = ri[l];
            }
        }
        let mut out: Vec<f64> = (0..self.pos.len())
            .into_par_iter()
            .map(|g| {
                let col = &cols[self.pos[g].1 * rows..][..rows];
                let pairs = col.iter().zip(self.group(g));
                match squared {
                    true => pairs.map(|(a, b)| a * b * b).sum(),
                    false => pairs.map(|(a, b)| a * b).sum(),
                }
            })
            .collect();
        if self.intercept {
            out.extend((0..c).map(|l| cols[l * rows..][..rows].iter().sum::<f64>()));
        }
        problem.op.sum_over_shards(&mut out);
        out
    }
    /// ŷ(t), the rows' loss gradients and φ(t).
    fn eval<O: LinearOperator>(&self, problem: &Problem<'_, O>, t: &[f64]) -> Eval {
        let mut yhat = self.yhat0.to_vec();
        self.apply(t, &mut yhat);
        let mut grad = vec![0.0; yhat.len()];
        let c = self.c;
        // Per-chunk sums added in order: the same for any thread count.
        let sums: Vec<f64> = yhat
            .par_chunks(ROWS * c)
            .zip(grad.par_chunks_mut(ROWS * c))
            .enumerate()
            .map(|(j, (p, g))| {
                (p.chunks_exact(c).zip(g.chunks_exact_mut(c)).enumerate())
                    .map(|(r, (p, g))| problem.loss.value_grad(p, problem.target(j * ROWS + r), g))
                    .sum::<f64>()
            })
            .collect();
        let mut loss = [sums.iter().sum::<f64>()];
        problem.op.sum_over_shards(&mut loss);
        let pen: f64 = self
            .weight
            .iter()
            .zip(t)
            .map(|(w, tg)| w * (1.0 + tg))
            .sum();
        Eval {
            value: loss[0] + pen,
            yhat,
            grad,
        }
    }
    /// ∇φ at an evaluated point.
    fn gradient<O: LinearOperator>(&self, problem: &Problem<'_, O>, e: &Eval) -> Vec<f64> {
        let mut g = self.adjoint(problem, &e.grad);
        for (gk, w) in g.iter_mut().zip(&self.weight) {
            *gk += w;
        }
        g
    }
}

struct Eval {
    value: f64,
    yhat: Vec<f64>,
    grad: Vec<f64>,
}

/// Sets the lengths of the nonzero groups of `ws` in `x` (and the
/// intercept `bx`) to the minimum of the objective along them, from the
/// point whose pass `buf` holds, as far as `reach` says. Returns the
/// passes read and whether the point moved (then `buf` no longer holds its
/// pass). Does nothing for other penalties or operators.
pub fn set_group_lengths<O: LinearOperator>(
    problem: &Problem<'_, O>,
    ws: &[usize],
    x: &mut [f64],
    bx: &mut [f64],
    buf: &PassBuffers,
    reach: &Reach,
) -> (f64, bool) {
    let op = &problem.op;
    let (c, d) = op.penalty_shape();
    let cd = problem.block_len();
    if problem.penalty != Penalty::GroupL2
        || !op.supports_gram()
        || !op.supports_block_products()
        || c != op.n_outputs()
        || c * d != cd
    {
        return (0.0, false);
    }
    let rows = op.n_rows();
    // Each nonzero group with ∂φ/∂t_g = ⟨z_g, 𝒜_gᵀ∇L⟩ + β‖z_g‖, from the pass.
    struct Group {
        /// Working-set position and output.
        pos: (usize, usize),
        /// β‖z_g‖.
        weight: f64,
        /// ∂φ/∂t_g at t = 0.
        slope: f64,
    }
    let mut groups = vec![];
    for j in 0..ws.len() {
        for l in 0..c {
            let at = j * cd + l * d..j * cd + (l + 1) * d;
            let z = &x[at.clone()];
            let norm = dot(z, z).sqrt();
            if norm > 0.0 {
                let along = dot(z, &buf.block_grad[at]);
                let weight = problem.beta * norm;
                let slope = along + weight;
                groups.push(Group {
                    pos: (j, l),
                    weight,
                    slope,
                });
            }
        }
    }
    // Where the predictions of all would not fit, those with the largest
    // share of the gap's first-order term: |∂φ/∂t_g| plus the rescaling's
    // W·(r_g − 1)⁺ ([`rescaling_left`]); every shard chooses alike (the
    // pass's adjoint is summed over shards).
    let total_weight: f64 = groups.iter().map(|g| g.weight).sum();
    let fit = reach.max_values / op.largest_shard_rows().max(1);
    if groups.len() > fit {
        let share = |g: &Group| g.slope.abs() + total_weight * excess(g.slope, g.weight);
        groups.sort_by(|a, b| share(b).total_cmp(&share(a)));
        groups.truncate(fit);
        groups.sort_by_key(|g| g.pos);
    }
    let (pos, weight): (Vec<_>, Vec<_>) = groups.iter().map(|g| (g.pos, g.weight)).unzip();
    let k = pos.len();
    if k == 0 {
        return (0.0, false);
    }
    // The groups' predictions: one read of each support block.
    let mut blocks: Vec<usize> = pos.iter().map(|p| p.0).collect();
    blocks.dedup();
    let mut pred = vec![0.0; k * rows];
    let (mut yh, mut gd, mut rl) = (vec![0.0; rows * c], vec![0.0; rows * c], vec![0.0; rows]);
    let mut g = 0;
    for &j in &blocks {
        yh.iter_mut().for_each(|v| *v = 0.0);
        let zero_loss = |_: usize, _: &[f64], gr: &mut [f64]| {
            gr.iter_mut().for_each(|v| *v = 0.0);
            0.0
        };
        let block = &x[j * cd..(j + 1) * cd];
        if op
            .block_update(ws[j], block, &mut yh, &mut gd, &mut rl, zero_loss)
            .is_none()
        {
            return (0.0, false);
        }
        while g < k && pos[g].0 == j {
            let l = pos[g].1;
            for (p, y) in pred[g * rows..(g + 1) * rows]
                .iter_mut()
                .zip(yh.chunks_exact(c))
            {
                *p = y[l];
            }
            g += 1;
        }
    }
    let global: Vec<usize> = blocks.iter().map(|&j| ws[j]).collect();
    let passes = op.pass_fraction(&global);
    let lengths = Lengths {
        pos,
        weight,
        total_weight,
        pred,
        rows,
        c,
        intercept: problem.intercept,
        yhat0: &buf.yhat,
    };

    let Some(t) = newton(problem, &lengths, reach) else {
        return (passes, false);
    };
    for (g, &(j, l)) in lengths.pos.iter().enumerate() {
        for v in &mut x[j * cd + l * d..j * cd + (l + 1) * d] {
            *v *= 1.0 + t[g];
        }
    }
    if problem.intercept {
        for (b, tl) in bx.iter_mut().zip(&t[k..]) {
            *b += tl;
        }
    }
    (passes, true)
}

/// Newton's method with conjugate gradients (diagonally preconditioned)
/// and a projected backtracking line search on φ from t = 0 (lengths stop
/// at 0). Returns t where φ(t) < φ(0), None where it found no descent.
fn newton<O: LinearOperator>(
    problem: &Problem<'_, O>,
    lengths: &Lengths<'_>,
    reach: &Reach,
) -> Option<Vec<f64>> {
    let aim = reach.aim;
    let (m, k, c) = (lengths.dim(), lengths.pos.len(), lengths.c);
    let loss = problem.loss;
    let mut t = vec![0.0; m];
    let mut at = lengths.eval(problem, &t);
    let start = at.value;
    for _ in 0..MAX_NEWTON {
        if (reach.stop)() {
            break;
        }
        let grad = lengths.gradient(problem, &at);
        // Groups at length 0 that would shrink further stay there.
        let free: Vec<bool> = (0..m)
            .map(|g| g >= k || t[g] > -1.0 || grad[g] < 0.0)
            .collect();
        let grad: Vec<f64> = grad
            .iter()
            .zip(&free)
            .map(|(v, &f)| if f { *v } else { 0.0 })
            .collect();
        if grad.iter().map(|v| v.abs()).sum::<f64>() <= GRAD_AIM * aim
            && rescaling_left(lengths, &grad) <= SCALE_AIM * aim
        {
            break;
        }
        // The Hessian's diagonal, for the preconditioner.
        let mut w = vec![0.0; at.yhat.len()];
        for (i, ((p, gr), wi)) in at
            .yhat
            .chunks_exact(c)
            .zip(at.grad.chunks_exact(c))
            .zip(w.chunks_exact_mut(c))
            .enumerate()
        {
            loss.curvature(p, problem.target(i), gr, wi);
        }
        let mut diag = lengths.adjoint_squares(problem, &w);
        let top = diag.iter().copied().fold(0.0f64, f64::max);
        if !(top > 0.0 && top.is_finite()) {
            return None;
        }
        // (A little damping: softmax shifts leave the loss flat.)
        let mu = 1e-10 * top;
        diag.iter_mut().for_each(|v| *v += mu);
        let pre: Vec<f64> = (0..m)
            .map(|g| if free[g] { 1.0 / diag[g] } else { 0.0 })
            .collect();
        let hess = |u: &[f64]| -> Vec<f64> {
            let mut r = vec![0.0; at.yhat.len()];
            lengths.apply(u, &mut r);
            let mut o = vec![0.0; r.len()];
            o.par_chunks_mut(ROWS * c).enumerate().for_each(|(j, oj)| {
                for (q, oi) in oj.chunks_exact_mut(c).enumerate() {
                    let i = j * ROWS + q;
                    let row = i * c..(i + 1) * c;
                    let (p, gr, ri) = (&at.yhat[row.clone()], &at.grad[row.clone()], &r[row]);
                    loss.hessian_times(p, problem.target(i), gr, ri, oi);
                }
            });
            let mut h = lengths.adjoint(problem, &o);
            for ((hk, uk), &f) in h.iter_mut().zip(u).zip(&free) {
                *hk = if f { *hk + mu * uk } else { 0.0 };
            }
            h
        };
        let step = conjugate_gradients(&hess, &grad, &pre, reach.stop);
        // A projected search: lengths stop at 0.
        let mut alpha = 1.0f64;
        let mut moved = false;
        for _ in 0..30 {
            let trial: Vec<f64> = (0..m)
                .map(|g| {
                    let v = t[g] + alpha * step[g];
                    if g < k {
                        v.max(-1.0)
                    } else {
                        v
                    }
                })
                .collect();
            let slope: f64 = (0..m).map(|g| grad[g] * (trial[g] - t[g])).sum();
            if slope.is_nan() || slope >= 0.0 {
                break;
            }
            let e = lengths.eval(problem, &trial);
            if e.value <= at.value + 1e-4 * slope {
                (t, at, moved) = (trial, e, true);
                break;
            }
            alpha *= 0.5;
        }
        if !moved {
            break;
        }
    }
    (at.value < start).then_some(t)
}

/// The share of the rescaled dual point's gap that the groups' ratios
/// above 1 cost, from ∇φ (zero where a length is held). The gap's first
/// order term is Σ_g β‖z_g‖(s − r_g), with r_g = 1 − ∂φ/∂t_g / (β‖z_g‖)
/// and s ≥ max_g r_g the rescaling: Σ_g ∂φ/∂t_g plus W·max_g(r_g − 1)⁺,
/// W the penalty of every nonzero group. Σ|∂φ| small is not enough: one
/// group whose ratio exceeds 1 by ε costs W·ε however little it weighs
/// (the 32-gate grokking model at 0.025·β_max: a group at 1 + 1.4e-5 held
/// the relative gap at 1e-5 while Σ|∂φ| met the old rule, for 700 passes).
fn rescaling_left(lengths: &Lengths<'_>, grad: &[f64]) -> f64 {
    let over = (grad.iter().zip(&lengths.weight))
        .map(|(&g, &w)| excess(g, w))
        .fold(0.0f64, f64::max);
    lengths.total_weight * over
}

/// How far a group's dual ratio exceeds 1, from its slope ∂φ/∂t_g and
/// weight β‖z_g‖: (r_g − 1)⁺ = (−∂φ/∂t_g / β‖z_g‖)⁺.
fn excess(slope: f64, weight: f64) -> f64 {
    (-slope / weight).max(0.0)
}

/// Solves H s = −g by preconditioned conjugate gradients (to a tenth of
/// the gradient's norm, at most `MAX_CG` products, fewer where `stop`
/// says so: any iterate is a descent direction).
fn conjugate_gradients(
    hess: &dyn Fn(&[f64]) -> Vec<f64>,
    g: &[f64],
    pre: &[f64],
    stop: &dyn Fn() -> bool,
) -> Vec<f64> {
    let m = g.len();
    let mut s = vec![0.0; m];
    let mut r: Vec<f64> = g.iter().map(|v| -v).collect();
    let g_norm = dot(&r, &r).sqrt();
    let mut z: Vec<f64> = r.iter().zip(pre).map(|(a, b)| a * b).collect();
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    for _ in 0..MAX_CG {
        if stop() {
            break;
        }
        let hp = hess(&p);
        let php = dot(&p, &hp);
        if php.is_nan() || php <= 0.0 {
            break;
        }
        let a = rz / php;
        for i in 0..m {
            s[i] += a * p[i];
            r[i] -= a * hp[i];
        }
        if dot(&r, &r).sqrt() <= 0.1 * g_norm {
            break;
        }
        z = r.iter().zip(pre).map(|(a, b)| a * b).collect();
        let rz_new = dot(&r, &z);
        let b = rz_new / rz;
        rz = rz_new;
        for i in 0..m {
            p[i] = z[i] + b * p[i];
        }
    }
    s
}
