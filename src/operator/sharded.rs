//! An operator on one shard of the samples, whose sums over rows are summed
//! across all shards: the data-parallel form of any operator (SPEC §5's
//! solver unchanged; issue "beyond one machine").
//!
//! Row-wise results (predictions, per-row gradients and losses) stay on the
//! shard; every result that sums over rows (the loss, the adjoint, Gram
//! matrices, block products' loss changes, block norms) is summed across
//! the shards before it is returned, so each shard sees the global values.

use super::{LinearOperator, PassBuffers, RowWeights};
use crate::comm::Communicator;

/// `inner` on this shard's rows, with sums across the shards of `comm`.
/// Build it on every shard at the same point (the constructor sums).
pub struct Sharded<'c, O: LinearOperator> {
    inner: O,
    comm: &'c dyn Communicator,
    total_rows: usize,
    largest_shard: usize,
    block_norms: Vec<f64>,
    lipschitz: Option<f64>,
    /// The Gram matrix the bounds are read off, summed over the shards.
    gram: Option<Vec<f64>>,
}

impl<'c, O: LinearOperator> Sharded<'c, O> {
    pub fn new(inner: O, comm: &'c dyn Communicator) -> Self {
        // One sum for the row count, the block norms and the Lipschitz
        // bound: ‖𝒜_b‖² ≤ Σ_shards ‖𝒜_b^(s)‖², and λ_max of a sum of
        // positive semidefinite matrices is at most the sum of theirs.
        // And each shard's rows, at its rank.
        let nb = inner.n_blocks();
        // Where the bound is read off a Gram matrix, that matrix is summed
        // instead: the bound of all rows, as in one process.
        let gram = inner.lipschitz_gram();
        let local_bound = match gram {
            Some(_) => Some(0.0),
            None => inner.lipschitz_bound(),
        };
        let mut v: Vec<f64> = Vec::with_capacity(nb + 3 + comm.size());
        v.push(inner.n_rows() as f64);
        v.extend(inner.block_norms().iter().map(|x| x * x));
        v.push(local_bound.unwrap_or(0.0));
        v.push(f64::from(u8::from(local_bound.is_none())));
        v.extend((0..comm.size()).map(|r| {
            if r == comm.rank() {
                inner.n_rows() as f64
            } else {
                0.0
            }
        }));
        comm.sum(&mut v);
        let block_norms = v[1..=nb].iter().map(|x| x.sqrt()).collect();
        let gram = gram.map(|mut g| {
            comm.sum(&mut g);
            g
        });
        let lipschitz = match &gram {
            Some(g) => Some(inner.lipschitz_bound_of(g, None)),
            None => (v[nb + 2] == 0.0).then_some(v[nb + 1]),
        };
        let largest_shard = v[nb + 3..].iter().fold(0.0f64, |a, &b| a.max(b)) as usize;
        Sharded {
            inner,
            comm,
            total_rows: v[0] as usize,
            largest_shard,
            block_norms,
            lipschitz,
            gram,
        }
    }
    /// The operator on this shard.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

impl<O: LinearOperator> LinearOperator for Sharded<'_, O> {
    fn n_blocks(&self) -> usize {
        self.inner.n_blocks()
    }
    fn block_len(&self) -> usize {
        self.inner.block_len()
    }
    fn n_rows(&self) -> usize {
        self.inner.n_rows()
    }
    fn total_rows(&self) -> usize {
        self.total_rows
    }
    fn largest_shard_rows(&self) -> usize {
        self.largest_shard
    }
    fn communicator(&self) -> Option<&dyn Communicator> {
        Some(self.comm)
    }
    fn n_outputs(&self) -> usize {
        self.inner.n_outputs()
    }
    fn penalty_shape(&self) -> (usize, usize) {
        self.inner.penalty_shape()
    }
    fn block_norms(&self) -> &[f64] {
        &self.block_norms
    }
    fn pass_fraction(&self, blocks: &[usize]) -> f64 {
        self.inner.pass_fraction(blocks)
    }
    fn lipschitz_bound(&self) -> Option<f64> {
        self.lipschitz
    }
    fn lipschitz_bound_on(&self, blocks: &[usize]) -> Option<f64> {
        let gram = self.gram.as_ref()?;
        Some(self.inner.lipschitz_bound_of(gram, Some(blocks)))
    }
    fn weighted_gram(
        &self,
        ws: &[usize],
        weights: &[f64],
        sets: usize,
        ones: bool,
    ) -> Option<Vec<Vec<f64>>> {
        let mut grams = self.inner.weighted_gram(ws, weights, sets, ones)?;
        for g in &mut grams {
            self.comm.sum(g);
        }
        Some(grams)
    }
    fn extend_gram(
        &self,
        ws: &[usize],
        weights: &[f64],
        ones: bool,
        known_ws: &[usize],
        known: &[f64],
    ) -> Option<Vec<f64>> {
        // The shard's part of the new entries (the known ones read as 0),
        // summed; then the known entries, which are global already.
        let zeros = vec![0.0; known.len()];
        let mut g = self
            .inner
            .extend_gram(ws, weights, ones, known_ws, &zeros)?;
        self.comm.sum(&mut g);
        let d = self.penalty_shape().1;
        let m_known = known_ws.len() * d + usize::from(ones);
        let mut old: Vec<Option<usize>> = ws
            .iter()
            .flat_map(|b| {
                let p = known_ws.binary_search(b).ok();
                (0..d).map(move |q| p.map(|p| p * d + q))
            })
            .collect();
        if ones {
            old.push(Some(m_known - 1));
        }
        let m = old.len();
        for (r, i) in old.iter().enumerate() {
            for (col, j) in old.iter().enumerate() {
                if let (Some(i), Some(j)) = (i, j) {
                    g[r * m + col] = known[i * m_known + j];
                }
            }
        }
        Some(g)
    }
    fn supports_gram(&self) -> bool {
        self.inner.supports_gram()
    }
    fn supports_block_products(&self) -> bool {
        self.inner.supports_block_products()
    }
    fn block_adjoint(&self, b: usize, grad: &[f64], out: &mut [f64]) -> bool {
        let ok = self.inner.block_adjoint(b, grad, out);
        if ok {
            self.comm.sum(out);
        }
        ok
    }
    fn block_adjoint_curvature(
        &self,
        b: usize,
        grad: &[f64],
        out: &mut [f64],
        diag: &mut [f64],
        weights: &RowWeights<'_>,
    ) -> bool {
        if !self
            .inner
            .block_adjoint_curvature(b, grad, out, diag, weights)
        {
            return false;
        }
        // One sum for both.
        let mut v = Vec::with_capacity(out.len() + diag.len());
        v.extend_from_slice(out);
        v.extend_from_slice(diag);
        self.comm.sum(&mut v);
        let (o, g) = v.split_at(out.len());
        out.copy_from_slice(o);
        diag.copy_from_slice(g);
        true
    }
    fn block_update<F>(
        &self,
        b: usize,
        delta: &[f64],
        yhat: &mut [f64],
        grad: &mut [f64],
        row_loss: &mut [f64],
        loss: F,
    ) -> Option<f64>
    where
        F: Fn(usize, &[f64], &mut [f64]) -> f64 + Sync,
    {
        let mut change = [self
            .inner
            .block_update(b, delta, yhat, grad, row_loss, loss)?];
        self.comm.sum(&mut change);
        Some(change[0])
    }
    fn supports_intercept(&self) -> bool {
        self.inner.supports_intercept()
    }
    fn add_constant_adjoint(&self, b: usize, m: &[f64], out: &mut [f64]) {
        let mut part = vec![0.0; out.len()];
        self.inner.add_constant_adjoint(b, m, &mut part);
        self.comm.sum(&mut part);
        for (o, p) in out.iter_mut().zip(&part) {
            *o += p;
        }
    }
    fn buffers(&self, max_adj: usize) -> PassBuffers {
        self.inner.buffers(max_adj)
    }
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
        F: Fn(usize, &[f64], &mut [f64]) -> f64 + Sync,
    {
        let local = self
            .inner
            .fused_pass(fwd, fwd_coef, intercept, adj, loss, buf);
        // The loss, the adjoint on `adj` and the intercept gradient: one
        // sum, packed in the buffers' own space (a pass allocates nothing).
        let width = adj.len() * self.block_len();
        let c = self.n_outputs();
        let mut v = std::mem::take(&mut buf.shard_sum);
        v.clear();
        v.push(local);
        v.extend_from_slice(&buf.block_grad[..width]);
        v.extend_from_slice(&buf.intercept_grad[..c]);
        self.comm.sum(&mut v);
        buf.block_grad[..width].copy_from_slice(&v[1..1 + width]);
        buf.intercept_grad[..c].copy_from_slice(&v[1 + width..]);
        let total = v[0];
        buf.shard_sum = v;
        total
    }
}
