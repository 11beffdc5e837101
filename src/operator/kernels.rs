//! Small dense kernels written so the compiler vectorises them (four
//! independent accumulators break the floating-point dependency chain).
//!
//! `dot` and `axpy` run an AVX2 build of the same code where the processor
//! has it (chosen at run time, so the binary and the wheel stay portable).
//! Without fast-math the compiler neither reorders nor fuses arithmetic, so
//! both builds give the same bits; the wide one does four lanes per
//! instruction instead of two.

/// Whether this processor runs the AVX2 builds of the kernels (here and the
/// fused passes of `nn`). The answer is cached by the standard library.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn wide_vectors() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if wide_vectors() {
        // SAFETY: the processor has AVX2 and FMA (checked just above).
        return unsafe { dot_wide(a, b) };
    }
    dot_body(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_wide(a: &[f64], b: &[f64]) -> f64 {
    dot_body(a, b)
}

#[inline(always)]
fn dot_body(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0f64; 4];
    let (a4, ar) = a.split_at(a.len() & !3);
    let (b4, br) = b.split_at(a4.len());
    for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        s[0] += x[0] * y[0];
        s[1] += x[1] * y[1];
        s[2] += x[2] * y[2];
        s[3] += x[3] * y[3];
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for (x, y) in ar.iter().zip(br) {
        t += x * y;
    }
    t
}

/// y ← y + a·x
#[inline]
pub fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    debug_assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if wide_vectors() {
        // SAFETY: the processor has AVX2 and FMA (checked just above).
        return unsafe { axpy_wide(a, x, y) };
    }
    axpy_body(a, x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_wide(a: f64, x: &[f64], y: &mut [f64]) {
    axpy_body(a, x, y)
}

#[inline(always)]
fn axpy_body(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Rows of V per task of [`rows_times_symmetric`]: a fixed split, so
/// that its results do not depend on the thread count.
const ROWS_PER_TASK: usize = 16;

/// out = V·G for c row-major rows of m values and an m×m matrix G: row l
/// is G v_l when G is symmetric (a Gram). Matrix products over fixed groups
/// of rows, on both cores from about a million multiply-adds: with many
/// rows, far faster than c products with G, and the same on any number of
/// threads (faer's threaded product is not).
pub fn rows_times_symmetric(v: &[f64], g: &[f64], c: usize, m: usize, out: &mut [f64]) {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, MatMut, MatRef};
    use rayon::prelude::*;
    let task = |(o, vv): (&mut [f64], &[f64])| {
        let rows = vv.len() / m;
        matmul(
            MatMut::from_row_major_slice_mut(o, rows, m),
            Accum::Replace,
            MatRef::from_row_major_slice(vv, rows, m),
            MatRef::from_row_major_slice(g, m, m),
            1.0,
            faer::Par::Seq,
        );
    };
    let chunk = ROWS_PER_TASK * m.max(1);
    let (out, v) = (&mut out[..c * m], &v[..c * m]);
    if threaded(c * m * m) {
        out.par_chunks_mut(chunk)
            .zip(v.par_chunks(chunk))
            .for_each(task);
    } else {
        out.chunks_mut(chunk).zip(v.chunks(chunk)).for_each(task);
    }
}

/// Threads for a matrix product of `work` multiply-adds: both cores from
/// about a million on (below, the hand-off costs more than it saves).
#[inline]
pub fn par_for(work: usize) -> faer::Par {
    if threaded(work) {
        faer::Par::rayon(0)
    } else {
        faer::Par::Seq
    }
}

/// Whether a product of `work` multiply-adds is worth both cores.
#[inline]
fn threaded(work: usize) -> bool {
    work >= 1 << 20
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn dot_and_axpy_match_naive() {
        for n in [0, 1, 3, 4, 7, 33] {
            let a: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-12);
            let mut y = b.clone();
            axpy(2.0, &a, &mut y);
            for i in 0..n {
                assert!((y[i] - (b[i] + 2.0 * a[i])).abs() < 1e-15);
            }
        }
    }

    /// The AVX2 build, where this processor runs it, gives the baseline
    /// build's bits (results must not depend on the machine's vectors).
    #[test]
    fn both_builds_give_the_same_bits() {
        for n in [1, 5, 8, 31, 64, 67] {
            let a: Vec<f64> = (0..n).map(|i| (i as f64 * 1.7).sin() * 1e3).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).cos() / 7.0).collect();
            assert_eq!(dot(&a, &b).to_bits(), dot_body(&a, &b).to_bits());
            let (mut y1, mut y2) = (b.clone(), b.clone());
            axpy(0.3, &a, &mut y1);
            axpy_body(0.3, &a, &mut y2);
            assert!(y1.iter().zip(&y2).all(|(u, v)| u.to_bits() == v.to_bits()));
        }
    }
}
