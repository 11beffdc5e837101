//! Row-major matrix products on slices through the `gemm` crate (the
//! kernels candle uses), with transposition by strides and accumulation in
//! place: no copy and no allocation per product.

use candle_core::WithDType;

/// A row-major matrix operand: its values, and whether to use its transpose.
#[derive(Clone, Copy)]
pub struct Operand<'a, T> {
    pub data: &'a [T],
    pub transposed: bool,
}

/// `x` as stored.
pub fn plain<T>(data: &[T]) -> Operand<'_, T> {
    Operand {
        data,
        transposed: false,
    }
}

/// The transpose of `x`.
pub fn tr<T>(data: &[T]) -> Operand<'_, T> {
    Operand {
        data,
        transposed: true,
    }
}

/// c (m×n) ← a (m×k) · b (k×n), or c += a·b with `accumulate`; a and b are
/// row-major as stored (k×m and n×k when transposed). One thread: the
/// engine runs whole shards of a batch per thread instead.
pub fn matmul<T: WithDType>(
    (m, k, n): (usize, usize, usize),
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    c: &mut [T],
    accumulate: bool,
) {
    assert!(a.data.len() >= m * k && b.data.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::zero());
        }
        return;
    }
    // (row stride, column stride) of the m×k and k×n operands.
    let (a_rs, a_cs) = if a.transposed { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if b.transposed { (1, k) } else { (n, 1) };
    // SAFETY: the asserts above keep every index the strides reach inside
    // the slices; c is borrowed mutably, a and b shared, so none alias.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.data.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], at: bool, b: &[f64], bt: bool) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if at { a[p * m + i] } else { a[i * k + p] };
                    let bv = if bt { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn every_transposition_and_accumulation_matches_the_naive_product() {
        let (m, k, n) = (37, 19, 23);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 % 11) as f64) - 5.0).collect();
        let b: Vec<f64> = (0..k * n)
            .map(|i| ((i * 5 % 13) as f64) * 0.5 - 3.0)
            .collect();
        for at in [false, true] {
            for bt in [false, true] {
                let want = naive(m, k, n, &a, at, &b, bt);
                fn op(d: &[f64], t: bool) -> Operand<'_, f64> {
                    Operand {
                        data: d,
                        transposed: t,
                    }
                }
                let mut c = vec![1.0; m * n];
                matmul((m, k, n), op(&a, at), op(&b, bt), &mut c, false);
                assert_eq!(c, want, "at={at} bt={bt}");
                matmul((m, k, n), op(&a, at), op(&b, bt), &mut c, true);
                for (x, w) in c.iter().zip(&want) {
                    assert!((x - 2.0 * w).abs() < 1e-9);
                }
            }
        }
    }
}
