use super::quadratic::{
    diagonal_group_quadratic_min, group_quadratic_min, rows_quadratic_min, SymEigen,
    ROWS_BY_PRODUCTS,
};
use super::{norm2, BlockPenalty};

/// Σ_l ‖z_{b,l}‖₂ over the c rows of a block: group lasso with one group per
/// (token, output). Prox: block soft-thresholding of each row. Dual norm:
/// max_l ‖g_{b,l}‖₂.
#[derive(Clone, Copy, Debug)]
pub struct GroupL2;

impl BlockPenalty for GroupL2 {
    fn value(&self, block: &[f64], _c: usize, d: usize) -> f64 {
        block.chunks_exact(d).map(norm2).sum()
    }
    fn prox(&self, block: &mut [f64], _c: usize, d: usize, tau: f64) {
        for row in block.chunks_exact_mut(d) {
            let nrm = norm2(row);
            let scale = if nrm > tau { 1.0 - tau / nrm } else { 0.0 };
            row.iter_mut().for_each(|v| *v *= scale);
        }
    }
    fn dual_norm(&self, block: &[f64], _c: usize, d: usize) -> f64 {
        block.chunks_exact(d).map(norm2).fold(0.0, f64::max)
    }
    fn heads(&self, block: &[f64], _c: usize, d: usize) -> usize {
        block
            .chunks_exact(d)
            .filter(|r| r.iter().any(|&v| v != 0.0))
            .count()
    }
    fn separable_rows(&self) -> bool {
        true
    }
    fn quadratic_min(
        &self,
        h: &SymEigen,
        s: &[f64],
        _c: usize,
        d: usize,
        tau: f64,
        block: &mut [f64],
        work: &mut [f64],
    ) -> bool {
        // The rows are separate groups: one secular equation each.
        if s.len() >= ROWS_BY_PRODUCTS * d && work.len() >= s.len() {
            rows_quadratic_min(h, s, tau, block, work);
            return true;
        }
        for (row, sl) in block.chunks_exact_mut(d).zip(s.chunks_exact(d)) {
            group_quadratic_min(h, sl, tau, row, work);
        }
        true
    }
    fn diagonal_quadratic_min(
        &self,
        h: &[f64],
        s: &[f64],
        _c: usize,
        d: usize,
        tau: f64,
        block: &mut [f64],
    ) -> bool {
        for ((row, sl), hl) in block
            .chunks_exact_mut(d)
            .zip(s.chunks_exact(d))
            .zip(h.chunks_exact(d))
        {
            diagonal_group_quadratic_min(hl, sl, tau, row);
        }
        true
    }
}
