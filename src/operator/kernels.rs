//! Small dense kernels written so the compiler vectorises them (four
//! independent accumulators break the floating-point dependency chain).

#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
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
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Threads for a matrix product of `work` multiply-adds: both cores from
/// about a million on (below, the hand-off costs more than it saves).
#[inline]
pub fn par_for(work: usize) -> faer::Par {
    if work >= 1 << 20 {
        faer::Par::rayon(0)
    } else {
        faer::Par::Seq
    }
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
}
