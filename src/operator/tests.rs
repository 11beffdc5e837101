//! Naive index loops here are the reference the fast code is checked against.
#![allow(clippy::needless_range_loop)]

use super::*;
use crate::data::Dataset;
use rand::{Rng, SeedableRng};

fn random_data(n: usize, t: usize, d: usize, c: usize, seed: u64) -> Dataset<'static> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * t * d)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let y = (0..n * c).map(|_| rng.random_range(-1.0..1.0)).collect();
    Dataset::new_real(x, (n, t, d), y, c).unwrap()
}

/// The fused pass against a direct evaluation of ŷ and Xᵀ(ŷ − y), with and
/// without gates, on subsets of blocks, across several chunks.
#[test]
fn fused_pass_matches_naive() {
    // c = 9 takes the matrix-product path when ungated.
    for c in [2, 9] {
        check_fused_pass(c);
    }
}

fn check_fused_pass(c: usize) {
    let (n, t, d) = (700, 5, 3);
    let ds = random_data(n, t, d, c, 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let gates = GateMasks {
        n_gates: 2,
        mask: (0..n * 2).map(|_| rng.random_bool(0.5)).collect(),
    };
    for g in [None, Some(&gates)] {
        let op = TokenOperator::new(&ds, g);
        let nb = op.n_blocks();
        let cd = c * d;
        let coef: Vec<f64> = (0..nb * cd).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b0: Vec<f64> = (0..c).map(|l| 0.3 - 0.1 * l as f64).collect();
        let fwd: Vec<usize> = (0..nb).filter(|b| b % 2 == 0).collect();
        let adj: Vec<usize> = (0..nb).rev().collect();
        let packed: Vec<f64> = fwd
            .iter()
            .flat_map(|&b| coef[b * cd..(b + 1) * cd].to_vec())
            .collect();
        let mut buf = op.buffers(nb);
        let loss = op.fused_pass(
            &fwd,
            &packed,
            &b0,
            &adj,
            |i, yh, gr| {
                let mut v = 0.0;
                for l in 0..c {
                    gr[l] = yh[l] - ds.target(i)[l];
                    v += 0.5 * gr[l] * gr[l];
                }
                v
            },
            &mut buf,
        );
        let on = |i: usize, b: usize| g.map_or(true, |g| g.mask[i * g.n_gates + b / t]);
        let mut naive_loss = 0.0;
        let mut naive_grad = vec![0.0; nb * cd];
        let mut naive_ig = vec![0.0; c];
        for i in 0..n {
            let mut r = b0.clone();
            for &b in &fwd {
                if on(i, b) {
                    for l in 0..c {
                        for q in 0..d {
                            r[l] += ds.token(i, b % t)[q] * coef[b * cd + l * d + q];
                        }
                    }
                }
            }
            for l in 0..c {
                assert!((r[l] - buf.yhat[i * c + l]).abs() < 1e-12);
                r[l] -= ds.target(i)[l];
                naive_loss += 0.5 * r[l] * r[l];
                naive_ig[l] += r[l];
            }
            for b in 0..nb {
                if on(i, b) {
                    for l in 0..c {
                        for q in 0..d {
                            naive_grad[b * cd + l * d + q] += r[l] * ds.token(i, b % t)[q];
                        }
                    }
                }
            }
        }
        assert!((loss - naive_loss).abs() < 1e-9 * naive_loss);
        for (j, &b) in adj.iter().enumerate() {
            for e in 0..cd {
                assert!((buf.block_grad[j * cd + e] - naive_grad[b * cd + e]).abs() < 1e-9);
            }
        }
        for l in 0..c {
            assert!((buf.intercept_grad[l] - naive_ig[l]).abs() < 1e-9);
        }
        // Block norms are Frobenius norms of the gated rows.
        for b in 0..nb {
            let f: f64 = (0..n)
                .filter(|&i| on(i, b))
                .map(|i| ds.token(i, b % t).iter().map(|v| v * v).sum::<f64>())
                .sum();
            assert!((op.block_norms()[b] - f.sqrt()).abs() < 1e-9);
        }
    }
}

/// Weighted Grams against Σ_i w_i a_i a_iᵀ by index loops, with and without
/// gates and the intercept's column, one and several weight sets, random or
/// unit weights; and a Gram grown from a smaller working set's equal to one
/// built from scratch.
#[test]
fn weighted_grams_match_naive_and_extend_exactly() {
    let (n, t, d) = (300, 6, 3);
    let ds = random_data(n, t, d, 2, 4);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let gates = GateMasks {
        n_gates: 2,
        mask: (0..n * 2).map(|_| rng.random_bool(0.5)).collect(),
    };
    for g in [None, Some(&gates)] {
        let op = TokenOperator::new(&ds, g);
        let ws: Vec<usize> = (0..op.n_blocks()).filter(|b| b % 3 != 1).collect();
        for ones in [false, true] {
            // Unit weights in the first set (the squared loss's, which skip
            // the scaling) or none.
            for (sets, unit) in [(1, false), (2, false), (1, true), (2, true)] {
                let w: Vec<f64> = (0..n * sets)
                    .map(|k| match unit && k % sets == 0 {
                        true => 1.0,
                        false => rng.random_range(0.0..2.0),
                    })
                    .collect();
                let grams = op.weighted_gram(&ws, &w, sets, ones).unwrap();
                let m = ws.len() * d + usize::from(ones);
                for (s, gram) in grams.iter().enumerate() {
                    let mut naive = vec![0.0; m * m];
                    for i in 0..n {
                        let mut a = vec![0.0; m];
                        for (j, &b) in ws.iter().enumerate() {
                            if op.gate_on(i, b) {
                                a[j * d..(j + 1) * d].copy_from_slice(op.row(i, b));
                            }
                        }
                        if ones {
                            a[m - 1] = 1.0;
                        }
                        for r in 0..m {
                            for col in 0..m {
                                naive[r * m + col] += w[i * sets + s] * a[r] * a[col];
                            }
                        }
                    }
                    for (x, y) in gram.iter().zip(&naive) {
                        assert!((x - y).abs() <= 1e-10 * (1.0 + y.abs()), "{x} vs {y}");
                    }
                }
            }
            // Grow from the first few blocks: only the new columns are read.
            for unit in [false, true] {
                let w: Vec<f64> = (0..n)
                    .map(|_| match unit {
                        true => 1.0,
                        false => rng.random_range(0.0..2.0),
                    })
                    .collect();
                let full = op.weighted_gram(&ws, &w, 1, ones).unwrap().remove(0);
                // (a block in the middle is new: the index maps are checked)
                let small: Vec<usize> = ws.iter().copied().filter(|&b| b != ws[1]).collect();
                let known = op.weighted_gram(&small, &w, 1, ones).unwrap().remove(0);
                let grown = op.extend_gram(&ws, &w, ones, &small, &known).unwrap();
                for (x, y) in grown.iter().zip(&full) {
                    assert!((x - y).abs() <= 1e-10 * (1.0 + y.abs()), "grown {x} vs {y}");
                }
                // Too many new blocks: the caller is told to build it whole.
                assert!(op
                    .extend_gram(
                        &ws,
                        &w,
                        ones,
                        &ws[..1],
                        &op.weighted_gram(&ws[..1], &w, 1, ones).unwrap()[0]
                    )
                    .is_none());
            }
        }
    }
}

/// Block coordinate descent's products against a full fused pass: the
/// adjoint of one block equals the pass's block gradient, and updating the
/// predictions block by block (with the rows' losses) reaches the pass's ŷ,
/// gradients and loss, with and without gates, across several chunks.
#[test]
fn block_products_match_the_fused_pass() {
    // Dense tokens, and one-hot tokens (the sparse loops).
    // Two outputs, and nine (dense ungated blocks then take matrix
    // products).
    for sparse in [false, true] {
        for c in [2, 9] {
            check_block_products(sparse, c);
        }
    }
}

fn check_block_products(sparse: bool, c: usize) {
    let (n, t, d) = (700, 4, 12);
    let mut ds = random_data(n, t, d, c, 3);
    if sparse {
        // One nonzero per token row, at a varying place.
        for (r, row) in ds.x.to_mut().chunks_exact_mut(d).enumerate() {
            let keep = r % d;
            for (q, v) in row.iter_mut().enumerate() {
                if q != keep {
                    *v = 0.0;
                }
            }
        }
    }
    let ds = ds;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let gates = GateMasks {
        n_gates: 2,
        mask: (0..n * 2).map(|_| rng.random_bool(0.5)).collect(),
    };
    let sq = |i: usize, yh: &[f64], gr: &mut [f64]| {
        let mut v = 0.0;
        for l in 0..c {
            gr[l] = yh[l] - ds.target(i)[l];
            v += 0.5 * gr[l] * gr[l];
        }
        v
    };
    for g in [None, Some(&gates)] {
        let op = TokenOperator::new(&ds, g);
        assert!(op.supports_block_products());
        assert!(op.sparse.iter().all(|s| s.is_some() == sparse));
        let nb = op.n_blocks();
        let cd = c * d;
        let all: Vec<usize> = (0..nb).collect();
        let mut coef: Vec<f64> = (0..nb * cd).map(|_| rng.random_range(-1.0..1.0)).collect();
        // One output of one block stays zero: only moved rows are updated.
        coef[cd..cd + d].iter_mut().for_each(|v| *v = 0.0);
        let zero = vec![0.0; c];
        let mut full = op.buffers(nb);
        let total = op.fused_pass(&all, &coef, &zero, &all, sq, &mut full);

        // From zero coefficients, one block at a time.
        let mut step = op.buffers(nb);
        let start = op.fused_pass(&[], &[], &zero, &[], sq, &mut step);
        let mut row_loss: Vec<f64> = (0..n)
            .map(|i| {
                let mut g = vec![0.0; c];
                sq(i, &step.yhat[i * c..(i + 1) * c], &mut g)
            })
            .collect();
        let mut sum = start;
        for b in 0..nb {
            sum += op
                .block_update(
                    b,
                    &coef[b * cd..(b + 1) * cd],
                    &mut step.yhat,
                    &mut step.sample_grad,
                    &mut row_loss,
                    sq,
                )
                .unwrap();
        }
        assert!(
            (sum - total).abs() <= 1e-9 * total.abs(),
            "{sum} vs {total}"
        );
        assert!((row_loss.iter().sum::<f64>() - total).abs() <= 1e-9 * total.abs());
        for (a, e) in step.yhat.iter().zip(&full.yhat) {
            assert!((a - e).abs() <= 1e-12, "{a} vs {e}");
        }
        for (a, e) in step.sample_grad.iter().zip(&full.sample_grad) {
            assert!((a - e).abs() <= 1e-12);
        }
        // The fused pass against the products written out from the data.
        let on = |i: usize, b: usize| g.is_none_or(|g| g.mask[i * g.n_gates + b / t]);
        for i in 0..n {
            for l in 0..c {
                let mut e = 0.0;
                for b in 0..nb {
                    if on(i, b) {
                        let x = ds.token(i, b % t);
                        e += (0..d).map(|q| x[q] * coef[b * cd + l * d + q]).sum::<f64>();
                    }
                }
                assert!((full.yhat[i * c + l] - e).abs() <= 1e-12 * (1.0 + e.abs()));
            }
        }
        for b in 0..nb {
            for l in 0..c {
                for q in 0..d {
                    let e: f64 = (0..n)
                        .filter(|&i| on(i, b))
                        .map(|i| full.sample_grad[i * c + l] * ds.token(i, b % t)[q])
                        .sum();
                    let a = full.block_grad[b * cd + l * d + q];
                    assert!((a - e).abs() <= 1e-9 * (1.0 + e.abs()), "{a} vs {e}");
                }
            }
        }
        let mut out = vec![0.0; cd];
        let mut diag = vec![0.0; cd];
        // Weights that differ per row and output.
        let weights = |i: usize, gr: &[f64], w: &mut [f64]| {
            for (l, (w, v)) in w.iter_mut().zip(gr).enumerate() {
                *w = (1 + (i + l) % 3) as f64 * v.abs();
            }
        };
        for b in 0..nb {
            assert!(op.block_adjoint(b, &full.sample_grad, &mut out));
            for (a, e) in out.iter().zip(&full.block_grad[b * cd..(b + 1) * cd]) {
                assert!(
                    (a - e).abs() <= 1e-9 * (1.0 + e.abs()),
                    "block {b}: {a} vs {e}"
                );
            }
            let mut same = vec![0.0; cd];
            assert!(op.block_adjoint_curvature(
                b,
                &full.sample_grad,
                &mut same,
                &mut diag,
                &weights
            ));
            // The same adjoint (by matrix products or by rows: rounding).
            for (a, e) in same.iter().zip(&out) {
                assert!((a - e).abs() <= 1e-12 * (1.0 + e.abs()), "{a} vs {e}");
            }
            for l in 0..c {
                for q in 0..d {
                    let e: f64 = (0..n)
                        .filter(|&i| on(i, b))
                        .map(|i| {
                            let mut w = vec![0.0; c];
                            weights(i, &full.sample_grad[i * c..(i + 1) * c], &mut w);
                            w[l] * ds.token(i, b % t)[q].powi(2)
                        })
                        .sum();
                    let a = diag[l * d + q];
                    assert!((a - e).abs() <= 1e-9 * (1.0 + e.abs()), "{a} vs {e}");
                }
            }
        }
    }
}
