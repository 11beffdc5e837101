//! An exact reference for the convex programs of SPEC §4a–§4b: each instance is
//! written as a conic program and solved by Clarabel (interior point), which
//! shares no code with our solver.
//!
//! Clarabel solves min ½xᵀPx + qᵀx s.t. Ax + s = b, s ∈ K. Every constraint
//! row is written here as "s = affine expression of x", i.e. A = −(expression
//! coefficients) and b = (expression constant).
//!
//! Variables, in this order:
//! - Z: n·c·d coefficients, in the library's layout (token k, output l,
//!   feature q at (k·c + l)·d + q), so the solution reads back directly;
//! - the intercept b ∈ R^c (when fitted), free and unpenalised;
//! - the loss epigraph variables (per loss, see the builders below);
//! - t_g ≥ ‖z_g‖₂, one per group g = (token, output).
//!
//! The optimal value is recomputed from (Z, b) with the loss and penalty written
//! out below (independently of the library), not read from Clarabel's cost:
//! since (Z, b) are unconstrained, the recomputed value is the exact objective
//! of a point, an upper bound on the optimum within Clarabel's tolerance.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettings, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
    SupportedConeT::{ExponentialConeT, NonnegativeConeT, SecondOrderConeT, ZeroConeT},
};
use convexformer::data::Dataset;
use convexformer::loss::Loss;
use convexformer::penalty::Penalty;

/// Clarabel's tolerances (gap and feasibility), tightest first. 1e-10 is
/// often reached on these small instances, but sometimes Clarabel stops with
/// `InsufficientProgress` there; the program is then solved again at the next
/// level. 1e-8 (Clarabel's default) is still 100× inside the 1e-6 the tests
/// compare at.
const TOLERANCES: [f64; 3] = [1e-10, 1e-9, 1e-8];

/// Settings at tolerance `tol`. The reduced tolerances (what `AlmostSolved`
/// means) are 1e-8 instead of Clarabel's default 5e-5, so that an
/// `AlmostSolved` answer is still far inside the tests' tolerance.
fn settings(tol: f64) -> DefaultSettings<f64> {
    DefaultSettings {
        verbose: false,
        max_iter: 500,
        tol_gap_abs: tol,
        tol_gap_rel: tol,
        tol_feas: tol,
        reduced_tol_gap_abs: 1e-8,
        reduced_tol_gap_rel: 1e-8,
        reduced_tol_feas: 1e-8,
        ..DefaultSettings::default()
    }
}

/// The optimal objective Σ_i L(ŷ_i, y_i) + β Σ_b Ω(Z_b) of the program, with
/// how accurately Clarabel solved it.
pub struct Reference {
    pub objective: f64,
    /// The tolerance Clarabel reached (one of `TOLERANCES`).
    pub tol: f64,
    /// Clarabel reported `AlmostSolved` (reduced tolerance 1e-8).
    pub almost: bool,
}

/// The optimal objective of min_{Z,b} Σ_i L(⟨X_i, Z⟩ + b, y_i) + β Σ Ω, by
/// Clarabel. Errors for what a conic program with these cones cannot express
/// (nuclear norm with c ≥ 2, Huber) and when Clarabel does not solve it.
pub fn reference_solve(
    ds: &Dataset,
    loss: Loss,
    penalty: Penalty,
    beta: f64,
    intercept: bool,
) -> Result<f64, String> {
    reference_solve_full(ds, loss, penalty, beta, intercept).map(|r| r.objective)
}

/// As [`reference_solve`], also saying how accurately Clarabel solved it.
pub fn reference_solve_full(
    ds: &Dataset,
    loss: Loss,
    penalty: Penalty,
    beta: f64,
    intercept: bool,
) -> Result<Reference, String> {
    // For c = 1 the nuclear norm of a d×1 block is its ℓ2 norm: the same SOC
    // program as GroupL2. For c ≥ 2 it needs a semidefinite cone, which this
    // build of Clarabel (no "sdp" feature) does not have.
    if penalty == Penalty::Nuclear && ds.n_outputs >= 2 {
        return Err("nuclear norm needs an SDP cone".into());
    }
    let layout = Layout::new(ds, loss, intercept)?;
    let mut prog = Conic::new(layout.n_vars);
    match loss {
        Loss::Squared => squared_rows(ds, &layout, &mut prog),
        Loss::Logistic => logistic_rows(ds, &layout, &mut prog),
        Loss::CrossEntropy => cross_entropy_rows(ds, &layout, &mut prog)?,
        Loss::Huber(_) => unreachable!("rejected by Layout::new"),
    }
    group_rows(ds, &layout, beta, &mut prog);

    let x = prog.solve()?;
    let coef = &x.values[..layout.n_coef];
    let b = match layout.intercept {
        Some(at) => x.values[at..at + ds.n_outputs].to_vec(),
        None => vec![0.0; ds.n_outputs],
    };
    Ok(Reference {
        objective: objective(ds, loss, beta, coef, &b),
        tol: x.tol,
        almost: x.almost,
    })
}

/// Where each kind of variable starts.
struct Layout {
    n_coef: usize,
    /// Start of the intercept, when fitted.
    intercept: Option<usize>,
    /// Start of the loss's epigraph variables.
    aux: usize,
    /// Start of the group norm bounds t_g.
    groups: usize,
    n_vars: usize,
}

impl Layout {
    fn new(ds: &Dataset, loss: Loss, intercept: bool) -> Result<Layout, String> {
        let (n, t, d, c) = (ds.n_samples, ds.n_tokens, ds.n_features, ds.n_outputs);
        let n_coef = t * c * d;
        let aux = n_coef + if intercept { c } else { 0 };
        let n_aux = match loss {
            Loss::Squared => n * c,          // residuals r_{i,l}
            Loss::Logistic => 3 * n,         // u_i, v1_i, v2_i
            Loss::CrossEntropy => n + n * c, // u_i, w_{i,l}
            Loss::Huber(_) => return Err("no conic reference for the Huber loss".into()),
        };
        let groups = aux + n_aux;
        Ok(Layout {
            n_coef,
            intercept: intercept.then_some(n_coef),
            aux,
            groups,
            n_vars: groups + t * c,
        })
    }
}

/// An affine expression Σ coef·x_col + constant.
#[derive(Clone, Default)]
struct Affine {
    terms: Vec<(usize, f64)>,
    constant: f64,
}

impl Affine {
    fn constant(v: f64) -> Affine {
        Affine {
            terms: Vec::new(),
            constant: v,
        }
    }
    fn var(col: usize, coef: f64) -> Affine {
        Affine {
            terms: vec![(col, coef)],
            constant: 0.0,
        }
    }
    /// self + a·other.
    fn add(mut self, a: f64, other: &Affine) -> Affine {
        self.terms
            .extend(other.terms.iter().map(|&(col, v)| (col, a * v)));
        self.constant += a * other.constant;
        self
    }
}

/// ŷ_{i,l} = b_l + Σ_k ⟨x_{i,k}, z_{k,l}⟩ as an affine expression.
fn prediction(ds: &Dataset, layout: &Layout, i: usize, l: usize) -> Affine {
    let (c, d) = (ds.n_outputs, ds.n_features);
    let mut e = Affine::default();
    for k in 0..ds.n_tokens {
        for (q, &x) in ds.token(i, k).iter().enumerate() {
            e.terms.push(((k * c + l) * d + q, x));
        }
    }
    if let Some(at) = layout.intercept {
        e.terms.push((at + l, 1.0));
    }
    e
}

/// The conic program under construction: rows "s = expression", their cones,
/// the linear objective q and the diagonal of P.
struct Conic {
    rows: Vec<Affine>,
    cones: Vec<SupportedConeT<f64>>,
    q: Vec<f64>,
    p_diag: Vec<f64>,
}

/// Clarabel's primal solution.
struct ConicSolution {
    values: Vec<f64>,
    tol: f64,
    almost: bool,
}

impl Conic {
    fn new(n_vars: usize) -> Conic {
        Conic {
            rows: Vec::new(),
            cones: Vec::new(),
            q: vec![0.0; n_vars],
            p_diag: vec![0.0; n_vars],
        }
    }

    /// Appends rows forming one cone. Consecutive zero or nonnegative cones
    /// are merged (they are products of one-dimensional cones).
    fn push(&mut self, cone: SupportedConeT<f64>, rows: Vec<Affine>) {
        let dim = rows.len();
        self.rows.extend(rows);
        match (self.cones.last_mut(), &cone) {
            (Some(ZeroConeT(m)), ZeroConeT(_))
            | (Some(NonnegativeConeT(m)), NonnegativeConeT(_)) => *m += dim,
            _ => self.cones.push(cone),
        }
    }

    /// Solves at the tightest tolerance of `TOLERANCES` Clarabel reaches.
    fn solve(self) -> Result<ConicSolution, String> {
        let (p, a, b) = self.matrices();
        let mut failures = Vec::new();
        for tol in TOLERANCES {
            let mut solver = DefaultSolver::new(&p, &self.q, &a, &b, &self.cones, settings(tol))
                .map_err(|e| format!("clarabel setup failed: {e}"))?;
            solver.solve();
            let status = solver.solution.status;
            match status {
                SolverStatus::Solved | SolverStatus::AlmostSolved => {
                    return Ok(ConicSolution {
                        values: solver.solution.x.clone(),
                        tol,
                        almost: status == SolverStatus::AlmostSolved,
                    })
                }
                other => failures.push(format!(
                    "{other:?} at tol {tol:.0e} after {} iterations",
                    solver.solution.iterations
                )),
            }
        }
        Err(format!(
            "clarabel did not solve it: {}",
            failures.join("; ")
        ))
    }

    /// P (diagonal, so upper triangular), A and b in Clarabel's form.
    fn matrices(&self) -> (CscMatrix<f64>, CscMatrix<f64>, Vec<f64>) {
        let (m, n) = (self.rows.len(), self.q.len());
        let (mut ri, mut ci, mut vals) = (Vec::new(), Vec::new(), Vec::new());
        let mut b = Vec::with_capacity(m);
        for (r, row) in self.rows.iter().enumerate() {
            for &(col, v) in &row.terms {
                ri.push(r);
                ci.push(col);
                vals.push(-v);
            }
            b.push(row.constant);
        }
        let a = CscMatrix::new_from_triplets(m, n, ri, ci, vals);
        let diag: Vec<usize> = (0..n).filter(|&j| self.p_diag[j] != 0.0).collect();
        let p_vals = diag.iter().map(|&j| self.p_diag[j]).collect();
        let p = CscMatrix::new_from_triplets(n, n, diag.clone(), diag, p_vals);
        (p, a, b)
    }
}

/// Squared loss: residuals r = XZ + b − y (zero cone) and ½‖r‖² via P = I on r.
fn squared_rows(ds: &Dataset, layout: &Layout, prog: &mut Conic) {
    let c = ds.n_outputs;
    for i in 0..ds.n_samples {
        for l in 0..c {
            let r = layout.aux + i * c + l;
            let eq = prediction(ds, layout, i, l)
                .add(-1.0, &Affine::constant(ds.target(i)[l]))
                .add(-1.0, &Affine::var(r, 1.0));
            prog.push(ZeroConeT(1), vec![eq]);
            prog.p_diag[r] = 1.0;
        }
    }
}

/// (a, 1, v) ∈ K_exp, i.e. v ≥ exp(a). Clarabel's K_exp is
/// cl{(x, y, z): y > 0, y·exp(x/y) ≤ z}, x first.
fn exp_bound(prog: &mut Conic, a: Affine, v: usize) {
    prog.push(
        ExponentialConeT(),
        vec![a, Affine::constant(1.0), Affine::var(v, 1.0)],
    );
}

/// Logistic loss: u_i ≥ log(1 + exp(−m_i)), m_i = y_i ŷ_i, as
/// v1 + v2 ≤ 1, v1 ≥ exp(−u_i), v2 ≥ exp(−m_i − u_i); minimise Σ u_i.
fn logistic_rows(ds: &Dataset, layout: &Layout, prog: &mut Conic) {
    let n = ds.n_samples;
    for i in 0..n {
        let (u, v1, v2) = (layout.aux + i, layout.aux + n + i, layout.aux + 2 * n + i);
        prog.q[u] = 1.0;
        let budget = Affine::constant(1.0)
            .add(-1.0, &Affine::var(v1, 1.0))
            .add(-1.0, &Affine::var(v2, 1.0));
        prog.push(NonnegativeConeT(1), vec![budget]);
        exp_bound(prog, Affine::var(u, -1.0), v1);
        let y = ds.target(i)[0];
        let a = Affine::var(u, -1.0).add(-y, &prediction(ds, layout, i, 0));
        exp_bound(prog, a, v2);
    }
}

/// Cross-entropy with class label y_i: u_i ≥ logsumexp(ŷ_i) − ŷ_{i,y_i}, as
/// Σ_l w_l ≤ 1, w_l ≥ exp(ŷ_{i,l} − ŷ_{i,y_i} − u_i); minimise Σ u_i.
fn cross_entropy_rows(ds: &Dataset, layout: &Layout, prog: &mut Conic) -> Result<(), String> {
    let (n, c) = (ds.n_samples, ds.n_outputs);
    let labels = class_labels(ds)?;
    for (i, &label) in labels.iter().enumerate() {
        let u = layout.aux + i;
        let w = |l: usize| layout.aux + n + i * c + l;
        prog.q[u] = 1.0;
        let budget = (0..c).fold(Affine::constant(1.0), |e, l| {
            e.add(-1.0, &Affine::var(w(l), 1.0))
        });
        prog.push(NonnegativeConeT(1), vec![budget]);
        for l in 0..c {
            let mut a = Affine::var(u, -1.0);
            if l != label {
                a = a
                    .add(1.0, &prediction(ds, layout, i, l))
                    .add(-1.0, &prediction(ds, layout, i, label));
            }
            exp_bound(prog, a, w(l));
        }
    }
    Ok(())
}

/// The class of each sample: its label, or the one-hot position of its target.
fn class_labels(ds: &Dataset) -> Result<Vec<usize>, String> {
    if let Some(labels) = &ds.labels {
        return Ok(labels.clone());
    }
    (0..ds.n_samples)
        .map(|i| {
            let row = ds.target(i);
            let hot: Vec<usize> = (0..row.len()).filter(|&l| row[l] == 1.0).collect();
            match (hot.as_slice(), row.iter().sum::<f64>() == 1.0) {
                ([l], true) => Ok(*l),
                _ => Err(format!("sample {i}: the reference needs one-hot targets")),
            }
        })
        .collect()
}

/// ‖z_g‖₂ ≤ t_g for each group g = (token k, output l), and β Σ t_g in the
/// objective.
fn group_rows(ds: &Dataset, layout: &Layout, beta: f64, prog: &mut Conic) {
    let d = ds.n_features;
    for g in 0..ds.n_tokens * ds.n_outputs {
        let t = layout.groups + g;
        prog.q[t] = beta;
        let mut rows = vec![Affine::var(t, 1.0)];
        rows.extend((0..d).map(|q| Affine::var(g * d + q, 1.0)));
        prog.push(SecondOrderConeT(d + 1), rows);
    }
}

/// Σ_i L(ŷ_i, y_i) + β Σ_g ‖z_g‖₂ at (coef, intercept), written out here
/// without the library (for c = 1 the nuclear norm is the same ℓ2 norm).
pub fn objective(ds: &Dataset, loss: Loss, beta: f64, coef: &[f64], intercept: &[f64]) -> f64 {
    let (c, d) = (ds.n_outputs, ds.n_features);
    let penalty: f64 = coef
        .chunks_exact(d)
        .map(|z| z.iter().map(|v| v * v).sum::<f64>().sqrt())
        .sum();
    let mut total = 0.0;
    for i in 0..ds.n_samples {
        let yhat: Vec<f64> = (0..c)
            .map(|l| {
                intercept[l]
                    + (0..ds.n_tokens)
                        .map(|k| dot(ds.token(i, k), &coef[(k * c + l) * d..(k * c + l + 1) * d]))
                        .sum::<f64>()
            })
            .collect();
        total += sample_loss(loss, &yhat, ds.target(i));
    }
    total + beta * penalty
}

fn sample_loss(loss: Loss, yhat: &[f64], y: &[f64]) -> f64 {
    match loss {
        Loss::Squared => {
            0.5 * yhat
                .iter()
                .zip(y)
                .map(|(p, t)| (p - t) * (p - t))
                .sum::<f64>()
        }
        // log(1 + e^{−m}) = max(−m, 0) + log(1 + e^{−|m|}), stable for any m.
        Loss::Logistic => {
            let m = y[0] * yhat[0];
            (-m).max(0.0) + (-m.abs()).exp().ln_1p()
        }
        Loss::CrossEntropy => {
            let top = yhat.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = top + yhat.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
            lse - dot(yhat, y)
        }
        Loss::Huber(_) => unimplemented!("no reference for the Huber loss"),
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
