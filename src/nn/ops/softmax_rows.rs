//! One query's softmax attention over a run of keys, forward and backward:
//! the arithmetic of every fused softmax attention in the crate (the
//! grokking transformer's causal attention, the teacher student's step).
//! Callers choose which queries and which keys (causal prefixes, padding
//! lengths, only the positions a loss reads); the kernel only sees one
//! query, `len` keys and values, and where their rows sit in a buffer.
//!
//! Values are of type `T`; scores and probabilities of type `P` (f64 for
//! the grokking model's f32 and f64 runs, f32 for the teacher's student),
//! converted where the two meet.

use candle_core::WithDType;

use super::dot8;

/// Where one head's rows sit in a row-major buffer: row j's `dh` columns
/// start at `offset + j·stride` (a fused Q|K|V row, or separate K and V).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadRows {
    pub offset: usize,
    pub stride: usize,
    pub dh: usize,
}

impl HeadRows {
    #[inline(always)]
    fn at(&self, j: usize) -> std::ops::Range<usize> {
        let o = self.offset + j * self.stride;
        o..o + self.dh
    }
}

/// The precision of scores and probabilities.
pub(crate) trait Prob: WithDType {
    fn exp(self) -> Self;
}

impl Prob for f32 {
    #[inline(always)]
    fn exp(self) -> f32 {
        f32::exp(self)
    }
}

impl Prob for f64 {
    #[inline(always)]
    fn exp(self) -> f64 {
        f64::exp(self)
    }
}

#[inline(always)]
fn cast<A: WithDType, B: WithDType>(a: A) -> B {
    B::from_f64(a.to_f64())
}

/// p_j = softmax_j(scale · q·k_j) over the keys j < p.len() of `kb`, at
/// `keys`.
#[inline(always)]
pub(crate) fn probs<T: WithDType, P: Prob>(
    q: &[T],
    kb: &[T],
    keys: HeadRows,
    scale: P,
    p: &mut [P],
) {
    let mut mx = P::from_f64(f64::NEG_INFINITY);
    for (j, pj) in p.iter_mut().enumerate() {
        *pj = cast::<T, P>(dot8(q, &kb[keys.at(j)])) * scale;
        if *pj > mx {
            mx = *pj;
        }
    }
    let mut z = P::zero();
    for pj in p.iter_mut() {
        *pj = (*pj - mx).exp();
        z += *pj;
    }
    for pj in p.iter_mut() {
        *pj /= z;
    }
}

/// ctx += Σ_j p_j v_j over the values of `vb` at `values`.
#[inline(always)]
pub(crate) fn mix<T: WithDType, P: Prob>(p: &[P], vb: &[T], values: HeadRows, ctx: &mut [T]) {
    for (j, &pj) in p.iter().enumerate() {
        let pj: T = cast(pj);
        for (c, &v) in ctx.iter_mut().zip(&vb[values.at(j)]) {
            *c += pj * v;
        }
    }
}

/// The backward pass of [`mix`] after [`probs`], for the output gradient
/// `dctx`: dv_j += p_j·dctx (into `dvb` at `values`); then the scores'
/// gradient ds_j = p_j (dctx·v_j − Σ_k p_k dctx·v_k)·scale, which
/// [`key_query_grads`] spreads to the query and the keys. `ds` holds it.
#[inline(always)]
pub(crate) fn value_grads<T: WithDType, P: Prob>(
    p: &[P],
    dctx: &[T],
    vb: &[T],
    values: HeadRows,
    scale: P,
    dvb: &mut [T],
    ds: &mut [P],
) {
    let mut t = P::zero();
    for (j, &pj) in p.iter().enumerate() {
        let pjt: T = cast(pj);
        for (dv, &g) in dvb[values.at(j)].iter_mut().zip(dctx) {
            *dv += pjt * g;
        }
        ds[j] = cast(dot8(dctx, &vb[values.at(j)]));
        t += pj * ds[j];
    }
    for (dsj, &pj) in ds.iter_mut().zip(p) {
        *dsj = pj * (*dsj - t) * scale;
    }
}

/// dq += Σ_j ds_j k_j and dk_j += ds_j q, for the scores' gradient `ds`
/// of [`value_grads`] (keys of `kb` and their gradients in `dkb` at `keys`).
#[inline(always)]
pub(crate) fn key_query_grads<T: WithDType, P: Prob>(
    ds: &[P],
    q: &[T],
    kb: &[T],
    keys: HeadRows,
    dq: &mut [T],
    dkb: &mut [T],
) {
    for (j, &dsj) in ds.iter().enumerate() {
        let dsj: T = cast(dsj);
        for (dqe, &ke) in dq.iter_mut().zip(&kb[keys.at(j)]) {
            *dqe += dsj * ke;
        }
        for (dke, &qe) in dkb[keys.at(j)].iter_mut().zip(q) {
            *dke += dsj * qe;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Σ_e g_e ctx_e for one query over keys and values in a strided buffer,
    /// computed without the kernel.
    fn naive(
        q: &[f64],
        buf: &[f64],
        keys: HeadRows,
        values: HeadRows,
        len: usize,
        g: &[f64],
    ) -> f64 {
        let scale = 1.0 / (q.len() as f64).sqrt();
        let s: Vec<f64> = (0..len)
            .map(|j| {
                scale
                    * q.iter()
                        .zip(&buf[keys.at(j)])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
            })
            .collect();
        let z: f64 = s.iter().map(|v| v.exp()).sum();
        (0..len)
            .map(|j| {
                s[j].exp() / z
                    * g.iter()
                        .zip(&buf[values.at(j)])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
            })
            .sum()
    }

    #[test]
    fn one_query_matches_the_formula_and_its_finite_differences() {
        let (dh, len, stride) = (5, 4, 13);
        let keys = HeadRows {
            offset: 1,
            stride,
            dh,
        };
        let values = HeadRows {
            offset: 7,
            stride,
            dh,
        };
        let val = |i: usize| ((i as f64) * 0.37).sin();
        let buf: Vec<f64> = (0..len * stride).map(val).collect();
        let q: Vec<f64> = (0..dh).map(|i| val(100 + i)).collect();
        let g: Vec<f64> = (0..dh).map(|i| val(200 + i)).collect();
        let scale = 1.0 / (dh as f64).sqrt();
        let mut p = vec![0.0; len];
        probs(&q, &buf, keys, scale, &mut p);
        let mut ctx = vec![0.0; dh];
        mix(&p, &buf, values, &mut ctx);
        let f: f64 = ctx.iter().zip(&g).map(|(a, b)| a * b).sum();
        assert!((f - naive(&q, &buf, keys, values, len, &g)).abs() < 1e-12);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-14);

        let (mut dq, mut dbuf, mut ds) = (vec![0.0; dh], vec![0.0; buf.len()], vec![0.0; len]);
        value_grads(&p, &g, &buf, values, scale, &mut dbuf, &mut ds);
        key_query_grads(&ds, &q, &buf, keys, &mut dq, &mut dbuf);
        let h = 1e-6;
        for e in 0..dh {
            let (mut qp, mut qm) = (q.clone(), q.clone());
            qp[e] += h;
            qm[e] -= h;
            let fd = (naive(&qp, &buf, keys, values, len, &g)
                - naive(&qm, &buf, keys, values, len, &g))
                / (2.0 * h);
            assert!((dq[e] - fd).abs() < 1e-8, "dq[{e}]: {} vs {fd}", dq[e]);
        }
        for i in 0..buf.len() {
            let (mut bp, mut bm) = (buf.clone(), buf.clone());
            bp[i] += h;
            bm[i] -= h;
            let fd = (naive(&q, &bp, keys, values, len, &g)
                - naive(&q, &bm, keys, values, len, &g))
                / (2.0 * h);
            // Entries that are neither keys nor values get no gradient.
            assert!(
                (dbuf[i] - fd).abs() < 1e-8,
                "d buf[{i}]: {} vs {fd}",
                dbuf[i]
            );
        }
        assert!(dbuf.iter().any(|v| v.abs() > 1e-3));
    }
}
