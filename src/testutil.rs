//! Naive index loops here are the reference the fast code is checked against.
#![allow(clippy::needless_range_loop)]

//! Random instances for the library's tests.

use crate::data::Dataset;
use crate::loss::Loss;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// N×n×d Gaussian-ish tokens with targets suited to `loss` (c outputs or
/// classes), generated from a random sparse teacher so solutions are
/// nontrivial.
pub fn random_instance(
    n: usize,
    t: usize,
    d: usize,
    c: usize,
    loss: Loss,
    seed: u64,
) -> Dataset<'static> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * t * d)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let w: Vec<f64> = (0..t * c * d)
        .map(|k| {
            if (k / (c * d)) % 3 == 0 {
                rng.random_range(-1.0..1.0)
            } else {
                0.0
            }
        })
        .collect();
    let mut score = vec![0.0; n * c];
    for i in 0..n {
        for k in 0..t {
            for l in 0..c {
                for q in 0..d {
                    score[i * c + l] += x[(i * t + k) * d + q] * w[(k * c + l) * d + q];
                }
            }
        }
    }
    let noise = |rng: &mut ChaCha8Rng| rng.random_range(-0.5..0.5);
    match loss {
        Loss::Squared | Loss::Huber(_) => {
            let y = score.iter().map(|s| s + noise(&mut rng)).collect();
            Dataset::new_real(x, (n, t, d), y, c).unwrap()
        }
        Loss::Logistic => {
            let y = score
                .iter()
                .map(|s| {
                    if s + noise(&mut rng) >= 0.0 {
                        1.0
                    } else {
                        -1.0
                    }
                })
                .collect();
            Dataset::new_real(x, (n, t, d), y, 1).unwrap()
        }
        Loss::CrossEntropy => {
            let labels = score
                .chunks_exact(c)
                .map(|s| {
                    let mut best = 0;
                    let mut bv = f64::NEG_INFINITY;
                    for (l, v) in s.iter().enumerate() {
                        let v = v + noise(&mut rng);
                        if v > bv {
                            bv = v;
                            best = l;
                        }
                    }
                    best
                })
                .collect();
            Dataset::new_classes(x, (n, t, d), labels, c).unwrap()
        }
    }
}
