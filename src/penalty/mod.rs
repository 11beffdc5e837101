//! Penalties Ω on the coefficient blocks, with their prox and dual norm.
//!
//! Coefficients are stored per block (a token, or a (gate, token) pair): a c×d
//! matrix, output-major (row l is the d-vector z_{b,l}). Every penalty here is
//! a sum over blocks, so the solver works block by block.

pub mod cone_projection;
mod group_l2;
pub mod nuclear;
pub mod quadratic;
mod row_sum_cone;

pub use group_l2::GroupL2;
pub use nuclear::Nuclear;
pub use quadratic::SymEigen;
pub use row_sum_cone::RowSumCone;

/// What a block-separable penalty provides.
pub trait BlockPenalty {
    /// Ω(block).
    fn value(&self, block: &[f64], c: usize, d: usize) -> f64;
    /// block ← prox_{τΩ}(block).
    fn prox(&self, block: &mut [f64], c: usize, d: usize, tau: f64);
    /// Ω^D(block), the dual norm: the dual constraint is Ω^D(Xᵀθ)_b ≤ β.
    fn dual_norm(&self, block: &[f64], c: usize, d: usize) -> f64;
    /// The number of heads the block recovers into (nonzero groups or rank).
    fn heads(&self, block: &[f64], c: usize, d: usize) -> usize;
    /// L with |Ω^D(u) − Ω^D(v)| ≤ L‖u − v‖₂, for gap-safe screening.
    fn dual_lipschitz(&self) -> f64 {
        1.0
    }
    /// Whether Ω is a sum of one term per output row of the block (then
    /// `quadratic_min` may be called row by row, with c = 1).
    fn separable_rows(&self) -> bool {
        false
    }
    /// Exact block minimisation: block ← argmin_Z τΩ(Z) +
    /// Σ_l (½ z_lᵀHz_l − s_lᵀz_l) over the c rows z_l of the block, H (d×d)
    /// shared by the rows. False when the penalty has no cheap exact form (the caller then takes
    /// a prox-gradient step).
    #[allow(clippy::too_many_arguments)]
    fn quadratic_min(
        &self,
        _h: &SymEigen,
        _s: &[f64],
        _c: usize,
        _d: usize,
        _tau: f64,
        _block: &mut [f64],
        _work: &mut [f64],
    ) -> bool {
        false
    }
    /// [`BlockPenalty::quadratic_min`] with a diagonal H per row: h holds
    /// c·d values, row l's diagonal at h[l·d..(l+1)·d]. False when the
    /// penalty has no cheap exact form.
    #[allow(clippy::too_many_arguments)]
    fn diagonal_quadratic_min(
        &self,
        _h: &[f64],
        _s: &[f64],
        _c: usize,
        _d: usize,
        _tau: f64,
        _block: &mut [f64],
    ) -> bool {
        false
    }
}

/// The penalties by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Penalty {
    /// Σ_l ‖z_{b,l}‖₂: one group per (block, output). SPEC §4a (c = 1) and §4b-ℓ₁.
    GroupL2,
    /// ‖Z_b‖_* (nuclear norm of the d×c block). SPEC §4b-ℓ₂.
    Nuclear,
    /// (1/n)·1ᵀ(C⁺ + C⁻)1 on the cone of equal row sums: SPEC §4c, split form.
    RowSumCone { n: usize },
}

impl BlockPenalty for Penalty {
    fn value(&self, block: &[f64], c: usize, d: usize) -> f64 {
        match self {
            Penalty::GroupL2 => GroupL2.value(block, c, d),
            Penalty::Nuclear => Nuclear.value(block, c, d),
            Penalty::RowSumCone { n } => RowSumCone { n: *n }.value(block, c, d),
        }
    }
    fn prox(&self, block: &mut [f64], c: usize, d: usize, tau: f64) {
        match self {
            Penalty::GroupL2 => GroupL2.prox(block, c, d, tau),
            Penalty::Nuclear => Nuclear.prox(block, c, d, tau),
            Penalty::RowSumCone { n } => RowSumCone { n: *n }.prox(block, c, d, tau),
        }
    }
    fn dual_norm(&self, block: &[f64], c: usize, d: usize) -> f64 {
        match self {
            Penalty::GroupL2 => GroupL2.dual_norm(block, c, d),
            Penalty::Nuclear => Nuclear.dual_norm(block, c, d),
            Penalty::RowSumCone { n } => RowSumCone { n: *n }.dual_norm(block, c, d),
        }
    }
    fn heads(&self, block: &[f64], c: usize, d: usize) -> usize {
        match self {
            Penalty::GroupL2 => GroupL2.heads(block, c, d),
            Penalty::Nuclear => Nuclear.heads(block, c, d),
            Penalty::RowSumCone { n } => RowSumCone { n: *n }.heads(block, c, d),
        }
    }
    fn separable_rows(&self) -> bool {
        matches!(self, Penalty::GroupL2)
    }
    fn quadratic_min(
        &self,
        h: &SymEigen,
        s: &[f64],
        c: usize,
        d: usize,
        tau: f64,
        block: &mut [f64],
        work: &mut [f64],
    ) -> bool {
        match self {
            Penalty::GroupL2 => GroupL2.quadratic_min(h, s, c, d, tau, block, work),
            _ => false,
        }
    }
    fn diagonal_quadratic_min(
        &self,
        h: &[f64],
        s: &[f64],
        c: usize,
        d: usize,
        tau: f64,
        block: &mut [f64],
    ) -> bool {
        match self {
            Penalty::GroupL2 => GroupL2.diagonal_quadratic_min(h, s, c, d, tau, block),
            _ => false,
        }
    }
    fn dual_lipschitz(&self) -> f64 {
        match self {
            Penalty::GroupL2 => GroupL2.dual_lipschitz(),
            Penalty::Nuclear => Nuclear.dual_lipschitz(),
            Penalty::RowSumCone { n } => RowSumCone { n: *n }.dual_lipschitz(),
        }
    }
}

/// Euclidean norm.
#[inline]
pub(crate) fn norm2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests;
