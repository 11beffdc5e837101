//! The linear maps of the convex programs and their adjoints, fused into one
//! pass over the data.
//!
//! A *block* b is a group of d coefficients per output that multiplies one d-
//! vector of each sample: token k for SPEC §4a–b (blocks = tokens), or the
//! pair (gate p, token k) for §4d, where the sample's token row is multiplied by
//! its gate indicator D_p(X_i) ∈ {0, 1}. Predictions are
//! ŷ_{i,l} = b_l + Σ_b ⟨x_{i,b}, z_{b,l}⟩.

pub mod gates;
pub(crate) mod kernels;
mod sharded;
mod token;
mod token_blocks;

pub use gates::{GateKind, GateSpec, Gates};
pub use sharded::Sharded;
pub use token::{GateMasks, TokenOperator};

/// Per-row weights from the row's index and gradient: w(i, ∇_i, w_i).
pub type RowWeights<'a> = dyn Fn(usize, &[f64], &mut [f64]) + Sync + 'a;

/// The linear map 𝒜 of a convex program, as the one generic solver sees it
/// (skglm's datafit/penalty split, Clarabel's core traits): coefficients in
/// blocks of `block_len()` values, predictions in rows of `n_outputs()`
/// values (one row per sample, or per (sample, position) for sequence
/// outputs), a loss applied per row, and one fused pass that computes the
/// predictions, the loss gradient per row and the adjoint on chosen blocks.
pub trait LinearOperator: Sync {
    /// Number of blocks (groups of the regularizer).
    fn n_blocks(&self) -> usize;
    /// Coefficients per block.
    fn block_len(&self) -> usize;
    /// Rows of predictions (the loss is summed over them) this operator
    /// holds: every row, or one shard's of a data-parallel program.
    fn n_rows(&self) -> usize;
    /// Rows over all shards (means over the data divide by it).
    fn total_rows(&self) -> usize {
        self.n_rows()
    }
    /// Rows on the shard that holds most (memory estimates, which every
    /// shard must make alike).
    fn largest_shard_rows(&self) -> usize {
        self.n_rows()
    }
    /// The shards holding the other rows, where this operator holds one
    /// shard of a data-parallel program ([`Sharded`]); None for all rows.
    fn communicator(&self) -> Option<&dyn crate::comm::Communicator> {
        None
    }
    /// Sums `values` (a sum over this operator's rows) over all shards.
    /// The products and passes of the operator sum their own results; the
    /// solver calls this for the sums it forms over rows itself.
    fn sum_over_shards(&self, values: &mut [f64]) {
        if let Some(comm) = self.communicator() {
            comm.sum(values);
        }
    }
    /// True on every shard where true on any: for decisions from a clock or
    /// a signal, which every shard must take together.
    fn any_shard(&self, flag: bool) -> bool {
        self.communicator().map_or(flag, |comm| comm.any(flag))
    }
    /// Outputs per row (c).
    fn n_outputs(&self) -> usize;
    /// The (c, d) shape the regularizer reads a block in.
    fn penalty_shape(&self) -> (usize, usize);
    /// An upper bound on ‖𝒜_b‖ (operator norm of block b), for gap-safe
    /// screening and working-set scores.
    fn block_norms(&self) -> &[f64];
    /// The data passes that one fused pass over `blocks` reads (SPEC §5's
    /// count: a pass over part of the data counts in proportion).
    fn pass_fraction(&self, blocks: &[usize]) -> f64 {
        blocks.len() as f64 / self.n_blocks().max(1) as f64
    }
    /// An upper bound on λ_max(𝒜ᵀ𝒜) over all blocks, when the operator has
    /// a cheap one: by Cauchy interlacing it serves every working set, and
    /// saves the power iteration where the working set is large.
    fn lipschitz_bound(&self) -> Option<f64> {
        None
    }
    /// An upper bound on λ_max(𝒜_Wᵀ𝒜_W) for the blocks W, where the
    /// operator has one that reads no data: it replaces the power iteration
    /// over the data of a small working set.
    fn lipschitz_bound_on(&self, _blocks: &[usize]) -> Option<f64> {
        None
    }
    /// Where [`LinearOperator::lipschitz_bound`] is read off a Gram matrix
    /// that sums over rows (the sequence operator's X̄ᵀX̄): that matrix on
    /// these rows, so that shards can sum it and bound all rows exactly as
    /// one process does ([`Sharded`]), not by the looser sum of their
    /// bounds. Some on every shard or on none (it depends on the shape only).
    fn lipschitz_gram(&self) -> Option<Vec<f64>> {
        None
    }
    /// [`LinearOperator::lipschitz_bound`] (`blocks` None) or
    /// [`LinearOperator::lipschitz_bound_on`] from a matrix of
    /// [`LinearOperator::lipschitz_gram`]'s form (summed over shards).
    fn lipschitz_bound_of(&self, _gram: &[f64], _blocks: Option<&[usize]>) -> f64 {
        f64::INFINITY
    }
    /// Weighted Gram matrices of a working set, for operators whose every
    /// output reads block b of a row through one d-vector a_{row,b}
    /// (ŷ_{row,l} = Σ_b ⟨a_{row,b}, z_{b,l}⟩, d = `penalty_shape().1`):
    /// for each of the `sets` weight columns s (`weights` is rows × sets),
    /// G_s = Σ_rows w_{row,s} a_row a_rowᵀ with a_row = (a_{row,b})_{b ∈ ws},
    /// followed by a 1 when `ones` (the intercept's column). Row-major m×m,
    /// m = |ws|·d + ones. One read of the working set's data for all sets.
    /// None where the operator has no such form (the solver then stays
    /// first order).
    fn weighted_gram(
        &self,
        _ws: &[usize],
        _weights: &[f64],
        _sets: usize,
        _ones: bool,
    ) -> Option<Vec<Vec<f64>>> {
        None
    }
    /// [`LinearOperator::weighted_gram`] for one weight set, reusing the
    /// Gram `known` of the blocks `known_ws` under the same weights (and the
    /// same `ones`): entries between two known blocks are copied, so only
    /// the new blocks' columns are multiplied (N·m·d work per new block
    /// instead of N·m²/2 in all). None where the operator cannot.
    fn extend_gram(
        &self,
        _ws: &[usize],
        _weights: &[f64],
        _ones: bool,
        _known_ws: &[usize],
        _known: &[f64],
    ) -> Option<Vec<f64>> {
        None
    }
    /// Whether [`LinearOperator::weighted_gram`] gives Gram matrices.
    fn supports_gram(&self) -> bool {
        false
    }
    /// Whether [`LinearOperator::block_adjoint`] and
    /// [`LinearOperator::block_update`] work (block coordinate descent).
    fn supports_block_products(&self) -> bool {
        false
    }
    /// out = 𝒜_bᵀg, block b's gradient (c·d values, laid out as a block)
    /// from per-row gradients g (rows × c), summed in an order that does
    /// not depend on the thread count. False where unsupported.
    fn block_adjoint(&self, _b: usize, _grad: &[f64], _out: &mut [f64]) -> bool {
        false
    }
    /// [`LinearOperator::block_adjoint`], and in the same read the diagonal
    /// of block b's Gram weighted per output: diag[l·d+q] = Σ_i w_il·x²_{i,b,q}
    /// with w_i written by `weights(i, ∇_i, w_i)` (c values). False where
    /// unsupported.
    fn block_adjoint_curvature(
        &self,
        _b: usize,
        _grad: &[f64],
        _out: &mut [f64],
        _diag: &mut [f64],
        _weights: &RowWeights<'_>,
    ) -> bool {
        false
    }
    /// ŷ += 𝒜_b Δ (Δ laid out as a block); then on each row this changed,
    /// `loss(i, ŷ_i, ∇_i)` rewrites the row's gradient and returns its loss,
    /// which replaces `row_loss[i]`. Returns Σ (new − old) of the changed
    /// rows' losses; None where unsupported.
    fn block_update<F>(
        &self,
        _b: usize,
        _delta: &[f64],
        _yhat: &mut [f64],
        _grad: &mut [f64],
        _row_loss: &mut [f64],
        _loss: F,
    ) -> Option<f64>
    where
        F: Fn(usize, &[f64], &mut [f64]) -> f64 + Sync,
    {
        None
    }
    /// Whether an unpenalised intercept per output can be fitted.
    fn supports_intercept(&self) -> bool;
    /// out += 𝒜_bᵀ(1 ⊗ m): the adjoint of a constant gradient m (c values)
    /// on block b, for the intercept's centring of the dual point.
    fn add_constant_adjoint(&self, b: usize, m: &[f64], out: &mut [f64]);
    /// Buffers for passes whose adjoint touches at most `max_adj` blocks.
    fn buffers(&self, max_adj: usize) -> PassBuffers;
    /// One pass: ŷ = intercept + Σ_{b ∈ fwd} 𝒜_b z_b (coefficients packed
    /// positionally), then `loss(row, ŷ_row, grad_row)` per row (returns the
    /// row's loss and writes ∇L), then 𝒜_bᵀ∇L for each block of `adj` into
    /// `buf.block_grad` (positional) and Σ_rows ∇L into `buf.intercept_grad`.
    /// Returns Σ_rows L. Results must not depend on the thread count.
    fn fused_pass<F>(
        &self,
        fwd: &[usize],
        fwd_coef: &[f64],
        intercept: &[f64],
        adj: &[usize],
        loss: F,
        buf: &mut PassBuffers,
    ) -> f64
    where
        F: Fn(usize, &[f64], &mut [f64]) -> f64 + Sync;

    /// Predictions for coefficients on all blocks and an intercept, without
    /// a loss: one forward pass.
    fn predict(&self, coef: &[f64], intercept: &[f64]) -> Vec<f64> {
        let (fwd, packed) = pack_support(coef, self.block_len());
        let mut buf = self.buffers(0);
        self.fused_pass(
            &fwd,
            &packed,
            intercept,
            &[],
            |_, _, g| {
                g.iter_mut().for_each(|v| *v = 0.0);
                0.0
            },
            &mut buf,
        );
        buf.yhat
    }
}

/// The blocks with a nonzero coefficient, and their coefficients packed
/// positionally (the forward arguments of a fused pass).
pub fn pack_support(coef: &[f64], block_len: usize) -> (Vec<usize>, Vec<f64>) {
    let mut support = Vec::new();
    let mut packed = Vec::new();
    for (b, z) in coef.chunks_exact(block_len).enumerate() {
        if z.iter().any(|&v| v != 0.0) {
            support.push(b);
            packed.extend_from_slice(z);
        }
    }
    (support, packed)
}

/// Buffers of one fused pass, allocated once per solve and reused: a pass
/// allocates nothing.
#[derive(Debug, Default)]
pub struct PassBuffers {
    /// ŷ, N×c.
    pub yhat: Vec<f64>,
    /// ∇_ŷ L per sample, N×c.
    pub sample_grad: Vec<f64>,
    /// Σ_i x_{i,b} ⊗ ∇L_i for each adjoint block, positional (|adj|·c·d).
    pub block_grad: Vec<f64>,
    /// Σ_i ∇L_i (the intercept gradient), c.
    pub intercept_grad: Vec<f64>,
    /// Per-chunk partial sums of `block_grad` and `intercept_grad`.
    pub(crate) partials: Vec<Vec<f64>>,
    /// Per-chunk loss sums, added in a fixed order so results do not depend
    /// on the thread count.
    pub(crate) chunk_loss: Vec<f64>,
    /// Operator-specific work space (the sequence operator's product layouts).
    pub(crate) work: Vec<f64>,
    /// The values a [`Sharded`] pass sums across shards, packed.
    pub(crate) shard_sum: Vec<f64>,
}

#[cfg(test)]
mod tests;
