//! Exact minimisation of a penalty plus a quadratic over one block: what
//! block coordinate descent on a Gram matrix needs when a block's Gram is
//! ill-conditioned (the prox-gradient step would be set by its largest
//! eigenvalue; the exact step is preconditioned by all of them).

use faer::{Mat, Side};

/// A symmetric d×d matrix by its eigendecomposition H = Q Λ Qᵀ.
#[derive(Clone, Debug)]
pub struct SymEigen {
    pub d: usize,
    /// Eigenvalues, ascending, clipped below at a tiny fraction of the
    /// largest (a Gram is positive semidefinite; rounding can make zero
    /// eigenvalues slightly negative).
    pub values: Vec<f64>,
    /// Qᵀ, row-major: row j is the j-th eigenvector.
    pub qt: Vec<f64>,
}

impl SymEigen {
    /// Decomposes the d×d block at `h` (row-major, leading dimension `ld`).
    /// None when the decomposition fails (non-finite entries).
    pub fn new(h: &[f64], ld: usize, d: usize) -> Option<SymEigen> {
        let m = Mat::<f64>::from_fn(d, d, |i, j| h[i * ld + j]);
        let eig = m.self_adjoint_eigen(Side::Lower).ok()?;
        let s = eig.S().column_vector();
        let top = s[d - 1].max(0.0);
        let floor = 1e-13 * top;
        let values = (0..d).map(|j| s[j].max(floor)).collect();
        let u = eig.U();
        let mut qt = vec![0.0; d * d];
        for j in 0..d {
            for i in 0..d {
                qt[j * d + i] = u[(i, j)];
            }
        }
        Some(SymEigen { d, values, qt })
    }

    /// The largest eigenvalue.
    pub fn max(&self) -> f64 {
        *self.values.last().unwrap_or(&0.0)
    }
}

/// argmin_z ½ zᵀHz − sᵀz + β‖z‖₂ (one group of the group lasso), written
/// into `z`; `work` holds d values. Zero when ‖s‖ ≤ β; otherwise
/// z = (H + μI)⁻¹s with μ = β/‖z‖, the root of the secular equation
/// ψ(μ) = 1/‖(Λ+μ)⁻¹ŝ‖ − μ/β (ŝ = Qᵀs), which is concave and decreasing
/// past its root: Newton from the right converges monotonically.
pub fn group_quadratic_min(h: &SymEigen, s: &[f64], beta: f64, z: &mut [f64], work: &mut [f64]) {
    let d = h.d;
    let s_norm = s.iter().map(|v| v * v).sum::<f64>().sqrt();
    if s_norm <= beta || h.max() <= 0.0 {
        z.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let sh = &mut work[..d];
    for (j, out) in sh.iter_mut().enumerate() {
        *out = crate::operator::kernels::dot(&h.qt[j * d..(j + 1) * d], s);
    }
    let lam = &h.values;
    let mu = secular_root(sh, lam, lam[0], h.max(), s_norm, beta, hint(z, beta));
    // z = Q (Λ+μ)⁻¹ ŝ
    z.iter_mut().for_each(|v| *v = 0.0);
    for (j, (&sv, &l)) in sh.iter().zip(lam).enumerate() {
        crate::operator::kernels::axpy(sv / (l + mu), &h.qt[j * d..(j + 1) * d], z);
    }
}

/// Rows per block from which [`rows_quadratic_min`] rotates by products.
pub const ROWS_BY_PRODUCTS: usize = 8;

/// [`group_quadratic_min`] for the c rows of a block at once, each row its
/// own group and H shared: the rotations into and out of H's eigenbasis are
/// two (c×d)·(d×d) products instead of 2c matrix-vector loops, and the rows'
/// secular equations run in parallel (the teacher's blocks have 384 rows).
/// `work` holds at least c·d values.
pub fn rows_quadratic_min(h: &SymEigen, s: &[f64], beta: f64, z: &mut [f64], work: &mut [f64]) {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, MatMut, MatRef};
    use rayon::prelude::*;
    let d = h.d;
    let c = s.len() / d;
    let par = crate::operator::kernels::par_for(c * d * d);
    let qt = MatRef::from_row_major_slice(&h.qt, d, d);
    // Ŝ = S Qᵀᵀ: row l is Qᵀ s_l.
    let sh = &mut work[..c * d];
    matmul(
        MatMut::from_row_major_slice_mut(sh, c, d),
        Accum::Replace,
        MatRef::from_row_major_slice(s, c, d),
        qt.transpose(),
        1.0,
        par,
    );
    let (lam, top) = (&h.values, h.max());
    sh.par_chunks_mut(d)
        .zip(s.par_chunks(d))
        .zip(z.par_chunks(d))
        .with_min_len(16)
        .for_each(|((row, sl), zl)| {
            let s_norm = sl.iter().map(|v| v * v).sum::<f64>().sqrt();
            if s_norm <= beta || top <= 0.0 {
                row.iter_mut().for_each(|v| *v = 0.0);
                return;
            }
            let mu = secular_root(row, lam, lam[0], top, s_norm, beta, hint(zl, beta));
            for (v, &l) in row.iter_mut().zip(lam) {
                *v /= l + mu;
            }
        });
    // Z = (Λ+μ)⁻¹Ŝ rotated back: row l is Q z̃_l.
    matmul(
        MatMut::from_row_major_slice_mut(z, c, d),
        Accum::Replace,
        MatRef::from_row_major_slice(sh, c, d),
        qt,
        1.0,
        par,
    );
}

/// [`group_quadratic_min`] for a diagonal H = diag(h) (h ≥ 0): the
/// eigenbasis is the identity, so no rotation is needed (d work, not d²).
pub fn diagonal_group_quadratic_min(h: &[f64], s: &[f64], beta: f64, z: &mut [f64]) {
    let s_norm = s.iter().map(|v| v * v).sum::<f64>().sqrt();
    let (lo, hi) = h
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    if s_norm <= beta || hi <= 0.0 {
        z.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let mu = secular_root(s, h, lo.max(0.0), hi, s_norm, beta, hint(z, beta));
    for ((zq, &sq), &hq) in z.iter_mut().zip(s).zip(h) {
        *zq = sq / (hq + mu);
    }
}

/// A starting μ for the secular equation from the block's current values
/// z: at the minimiser μ = β/‖z‖, and one coordinate-descent step moves z
/// little. None for a zero block.
#[inline]
fn hint(z: &[f64], beta: f64) -> Option<f64> {
    let n = z.iter().map(|v| v * v).sum::<f64>().sqrt();
    (n > 0.0).then(|| beta / n)
}

/// The root μ > 0 of ψ(μ) = 1/‖(Λ+μ)⁻¹ŝ‖ − μ/β, given ŝ (‖ŝ‖ = `s_norm` >
/// β) and the eigenvalues Λ with their least and largest.
fn secular_root(
    sh: &[f64],
    lam: &[f64],
    lam_min: f64,
    lam_max: f64,
    s_norm: f64,
    beta: f64,
    start: Option<f64>,
) -> f64 {
    // h(μ) = μ‖(Λ+μ)⁻¹ŝ‖ lies between ‖ŝ‖μ/(λ_max+μ) and ‖ŝ‖μ/(λ_min+μ):
    // the root lies in [βλ_min, βλ_max]/(‖ŝ‖ − β).
    let excess = s_norm - beta;
    let (mut lo, mut hi) = (beta * lam_min / excess, beta * lam_max / excess);
    // From the hint where it lies inside the bracket (Newton then converges
    // in a few steps; from `hi` it takes about twenty).
    let mut mu = start.filter(|&m| m > lo && m < hi).unwrap_or(hi);
    for _ in 0..100 {
        let (mut p2, mut p3) = (0.0, 0.0);
        for (&sv, &l) in sh.iter().zip(lam) {
            let r = 1.0 / (l + mu);
            let t = sv * sv * r * r;
            p2 += t;
            p3 += t * r;
        }
        let p = p2.sqrt();
        let psi = 1.0 / p - mu / beta;
        // ψ is a difference of two terms: below their rounding level it is
        // zero, and further Newton steps only chase rounding noise.
        if psi.abs() <= 1e-14 * (1.0 / p + mu / beta) {
            return mu;
        }
        if psi > 0.0 {
            lo = mu;
        } else {
            hi = mu;
        }
        let dpsi = p3 / (p2 * p) - 1.0 / beta;
        let mut next = mu - psi / dpsi;
        if !(next > lo && next < hi && next.is_finite()) {
            next = 0.5 * (lo + hi);
        }
        if (next - mu).abs() <= 1e-15 * mu.max(1e-300) || hi - lo <= 1e-15 * hi {
            return next;
        }
        mu = next;
    }
    mu
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn objective(h: &[f64], d: usize, s: &[f64], beta: f64, z: &[f64]) -> f64 {
        let mut q = 0.0;
        for i in 0..d {
            for j in 0..d {
                q += 0.5 * z[i] * h[i * d + j] * z[j];
            }
        }
        let lin: f64 = s.iter().zip(z).map(|(a, b)| a * b).sum();
        q - lin + beta * z.iter().map(|v| v * v).sum::<f64>().sqrt()
    }

    /// The exact minimiser satisfies the optimality condition
    /// Hz − s + βz/‖z‖ = 0 and beats random perturbations, on
    /// ill-conditioned random H.
    #[test]
    fn group_quadratic_min_is_optimal() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for trial in 0..200 {
            let d = 1 + trial % 7;
            let a: Vec<f64> = (0..d * d)
                .map(|k| rng.random::<f64>() - 0.5 + if k % (d + 1) == 0 { 0.01 } else { 0.0 })
                .collect();
            let scale: Vec<f64> = (0..d).map(|q| (1.0 + q as f64).powf(-2.0)).collect();
            let mut h = vec![0.0; d * d];
            for i in 0..d {
                for j in 0..d {
                    h[i * d + j] = (0..d).map(|k| a[k * d + i] * a[k * d + j]).sum::<f64>()
                        * scale[i]
                        * scale[j];
                }
            }
            let s: Vec<f64> = (0..d).map(|_| rng.random::<f64>() - 0.5).collect();
            let beta = rng.random::<f64>() * 0.6;
            let eig = SymEigen::new(&h, d, d).unwrap();
            // The current values hint the secular root: start from zero
            // (no hint), and from random values (a hint near or far).
            let mut z: Vec<f64> = (0..d)
                .map(|_| {
                    if trial % 2 == 0 {
                        0.0
                    } else {
                        rng.random::<f64>() * 10f64.powi(trial as i32 % 7 - 3)
                    }
                })
                .collect();
            let mut work = vec![0.0; d];
            group_quadratic_min(&eig, &s, beta, &mut z, &mut work);
            let zn = z.iter().map(|v| v * v).sum::<f64>().sqrt();
            let sn = s.iter().map(|v| v * v).sum::<f64>().sqrt();
            if sn <= beta {
                assert_eq!(zn, 0.0);
                continue;
            }
            let f0 = objective(&h, d, &s, beta, &z);
            for _ in 0..20 {
                let w: Vec<f64> = z
                    .iter()
                    .map(|v| v + 1e-4 * (rng.random::<f64>() - 0.5))
                    .collect();
                let fw = objective(&h, d, &s, beta, &w);
                assert!(
                    fw >= f0 - 1e-9 * f0.abs().max(1.0),
                    "trial {trial}: d {d} beta {beta} f0 {f0} fw {fw} z {z:?} eig {:?}",
                    eig.values
                );
            }
            if zn > 1e-8 {
                for i in 0..d {
                    let hz: f64 = (0..d).map(|j| h[i * d + j] * z[j]).sum();
                    let r = hz - s[i] + beta * z[i] / zn;
                    assert!(r.abs() < 1e-8 * (1.0 + sn), "trial {trial}: residual {r}");
                }
            }
        }
    }

    /// The diagonal form agrees with the eigendecomposition form on random
    /// diagonal H, zero entries (with zero s there) included.
    #[test]
    fn diagonal_form_matches_the_eigen_form() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for trial in 0..200 {
            let d = 1 + trial % 9;
            let h: Vec<f64> = (0..d)
                .map(|q| {
                    if q % 4 == 3 {
                        0.0
                    } else {
                        rng.random::<f64>() * 10f64.powi(-(q as i32 % 5))
                    }
                })
                .collect();
            // Where h is zero, so is s (a feature no sample has): otherwise
            // the problem is unbounded.
            let s: Vec<f64> = (0..d)
                .map(|q| {
                    if h[q] > 0.0 {
                        rng.random::<f64>() - 0.5
                    } else {
                        0.0
                    }
                })
                .collect();
            let beta = rng.random::<f64>() * 0.6;
            let mut dense = vec![0.0; d * d];
            for q in 0..d {
                dense[q * d + q] = h[q];
            }
            let eig = SymEigen::new(&dense, d, d).unwrap();
            let (mut a, mut b, mut work) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
            group_quadratic_min(&eig, &s, beta, &mut a, &mut work);
            diagonal_group_quadratic_min(&h, &s, beta, &mut b);
            let f = |z: &[f64]| objective(&dense, d, &s, beta, z);
            // Same objective (the minimiser is unique where H > 0).
            assert!(
                (f(&a) - f(&b)).abs() <= 1e-10 * (1.0 + f(&a).abs()),
                "trial {trial}: {} vs {}",
                f(&a),
                f(&b)
            );
            if h.iter().all(|&v| v > 1e-3) {
                for q in 0..d {
                    assert!((a[q] - b[q]).abs() < 1e-8, "trial {trial}: {a:?} vs {b:?}");
                }
            }
        }
    }

    /// The rows of a block minimised by products (`rows_quadratic_min`)
    /// equal one secular equation per row, rows at zero (‖s_l‖ ≤ β)
    /// included, from zero and from nonzero current values.
    #[test]
    fn rows_by_products_match_one_row_at_a_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for trial in 0..30 {
            let d = 3 + trial % 13;
            let c = ROWS_BY_PRODUCTS + trial % 5;
            let a: Vec<f64> = (0..2 * d * d).map(|_| rng.random::<f64>() - 0.5).collect();
            let mut h = vec![0.0; d * d];
            for i in 0..d {
                for j in 0..d {
                    h[i * d + j] = (0..2 * d).map(|k| a[k * d + i] * a[k * d + j]).sum::<f64>()
                        / (1.0 + i as f64)
                        / (1.0 + j as f64);
                }
            }
            let eig = SymEigen::new(&h, d, d).unwrap();
            let s: Vec<f64> = (0..c * d)
                .map(|k| (rng.random::<f64>() - 0.5) * if (k / d) % 3 == 0 { 0.1 } else { 1.0 })
                .collect();
            let beta = 0.3;
            let start: Vec<f64> = (0..c * d)
                .map(|k| {
                    if k / d % 2 == 0 {
                        0.0
                    } else {
                        rng.random::<f64>()
                    }
                })
                .collect();
            let mut one = start.clone();
            let mut work = vec![0.0; c * d];
            for (row, sl) in one.chunks_exact_mut(d).zip(s.chunks_exact(d)) {
                group_quadratic_min(&eig, sl, beta, row, &mut work);
            }
            let mut all = start.clone();
            rows_quadratic_min(&eig, &s, beta, &mut all, &mut work);
            assert!(one.contains(&0.0) && one.iter().any(|&v| v != 0.0));
            for (x, y) in all.iter().zip(&one) {
                assert!(
                    (x - y).abs() <= 1e-10 * (1.0 + y.abs()),
                    "trial {trial}: {x} vs {y}"
                );
            }
        }
    }
}
