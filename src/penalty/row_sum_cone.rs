use super::cone_projection::{project_onto_k, sum_row_max, ProjectionScratch};
use super::BlockPenalty;

/// The sequence program's regularizer in its exact split form (SPEC §4c):
/// a block is a pair (C⁺, C⁻) of n×n matrices (2n² values, C⁺ first, each
/// row-major) in the cone K = {C ≥ 0, all row sums equal}, and
/// Ω(C⁺, C⁻) = (1/n)·1ᵀ(C⁺ + C⁻)1 + ι_K(C⁺) + ι_K(C⁻), the sum of the two
/// common row sums t⁺ + t⁻ (which is ‖C⁺ − C⁻‖_{∞,1} at the best split).
///
/// - prox: C± ← Π_K(V± − τ/n), the exact projection of [`super::cone_projection`];
/// - dual: the constraint (β/n)11ᵀ − S± ∈ K* reads Σ_r max_k S±[r, k] ≤ β,
///   so the "dual norm" is the larger of the two sums. It is a positively
///   homogeneous gauge, √n-Lipschitz in ℓ₂ (a sum of n row maxima).
#[derive(Clone, Copy, Debug)]
pub struct RowSumCone {
    pub n: usize,
}

impl BlockPenalty for RowSumCone {
    fn value(&self, block: &[f64], _c: usize, _d: usize) -> f64 {
        block.iter().sum::<f64>() / self.n as f64
    }
    fn prox(&self, block: &mut [f64], _c: usize, _d: usize, tau: f64) {
        thread_local! {
            // Work space kept per thread: the prox runs once per block per
            // iteration and must not allocate each time.
            static SCRATCH: std::cell::RefCell<Option<ProjectionScratch>> =
                const { std::cell::RefCell::new(None) };
        }
        let (n, shift) = (self.n, tau / self.n as f64);
        SCRATCH.with(|cell| {
            let mut slot = cell.borrow_mut();
            let scratch = match slot.as_mut() {
                Some(s) if s.n() == n => s,
                _ => slot.insert(ProjectionScratch::new(n)),
            };
            for half in block.chunks_exact_mut(n * n) {
                half.iter_mut().for_each(|v| *v -= shift);
                project_onto_k(half, n, scratch);
            }
        });
    }
    fn dual_norm(&self, block: &[f64], _c: usize, _d: usize) -> f64 {
        let n = self.n;
        block
            .chunks_exact(n * n)
            .map(|s| sum_row_max(s, n))
            .fold(f64::NEG_INFINITY, f64::max)
    }
    fn dual_lipschitz(&self) -> f64 {
        (self.n as f64).sqrt()
    }
    fn heads(&self, block: &[f64], _c: usize, _d: usize) -> usize {
        block
            .chunks_exact(self.n * self.n)
            .filter(|h| h.iter().any(|&v| v != 0.0))
            .count()
    }
}
