use super::BlockPenalty;
use faer::Mat;

/// ‖Z_b‖_*, the nuclear norm of the d×c block (sum of singular values).
/// Prox: singular-value soft-thresholding. Dual norm: the spectral norm.
/// Blocks are small (d×c), so a dense SVD per block is cheap next to a data pass.
#[derive(Clone, Copy, Debug)]
pub struct Nuclear;

/// Thin SVD of the d×c matrix whose column l is row l of `block`:
/// returns (U d×r, σ, V c×r), r = min(d, c).
pub fn block_svd(block: &[f64], c: usize, d: usize) -> (Mat<f64>, Vec<f64>, Mat<f64>) {
    let m = Mat::<f64>::from_fn(d, c, |q, l| block[l * d + q]);
    match m.thin_svd() {
        Ok(svd) => {
            let s = svd.S().column_vector().iter().copied().collect();
            (svd.U().to_owned(), s, svd.V().to_owned())
        }
        // faer reports non-convergence only for non-finite input.
        Err(_) => {
            let r = d.min(c);
            (Mat::zeros(d, r), vec![f64::NAN; r], Mat::zeros(c, r))
        }
    }
}

impl BlockPenalty for Nuclear {
    fn value(&self, block: &[f64], c: usize, d: usize) -> f64 {
        if c == 1 {
            return super::norm2(block);
        }
        block_svd(block, c, d).1.iter().sum()
    }
    fn prox(&self, block: &mut [f64], c: usize, d: usize, tau: f64) {
        if c == 1 {
            return super::GroupL2.prox(block, c, d, tau);
        }
        let (u, s, v) = block_svd(block, c, d);
        block.iter_mut().for_each(|x| *x = 0.0);
        for (r, &sr) in s.iter().enumerate() {
            let shrunk = sr - tau;
            if shrunk <= 0.0 {
                continue;
            }
            for l in 0..c {
                let w = shrunk * v[(l, r)];
                for q in 0..d {
                    block[l * d + q] += w * u[(q, r)];
                }
            }
        }
    }
    fn dual_norm(&self, block: &[f64], c: usize, d: usize) -> f64 {
        if c == 1 {
            return super::norm2(block);
        }
        block_svd(block, c, d).1.iter().cloned().fold(0.0, f64::max)
    }
    fn heads(&self, block: &[f64], c: usize, d: usize) -> usize {
        if block.iter().all(|&v| v == 0.0) {
            return 0;
        }
        let s = block_svd(block, c, d).1;
        let tol = s.iter().cloned().fold(0.0, f64::max) * 1e-12;
        s.iter().filter(|&&x| x > tol).count()
    }
}
