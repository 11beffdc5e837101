//! The grokking transformer ([`crate::grok::model`]) as one fused CPU engine:
//! the forward pass, the cross-entropy and the backward pass written out by
//! hand over flat buffers, with every product through [`super::matmul`].
//!
//! Why: candle builds a graph per step, allocates (and zeroes) a fresh buffer
//! for every op and gradient, copies for every transpose and runs elementwise
//! ops one at a time; on this model that was more than half of a step
//! (profiled; see [`super`]). Here the parameters, their gradients and every
//! activation live in buffers allocated once and reused each step; the
//! layer-norm, attention and token-mixing kernels are the ones the candle
//! model runs ([`crate::nn::ops`]). The candle
//! [`Transformer`] stays the reference: it initializes the weights (so runs
//! start from the same point) and the tests check this engine's logits and
//! gradients against its autograd.

#[cfg(target_arch = "x86_64")]
use super::wide_vectors;
use candle_core::{Tensor, WithDType};
use rayon::prelude::*;

use super::matmul::{matmul, plain, tr};
use super::ops::{tensor_values, CausalAttention, LayerNormOp, TokenMix};
use crate::error::{invalid, Result};
use crate::grok::model::{AttentionKind, Transformer, TransformerConfig};

/// One parameter's place in the flat vector, in the order and with the names
/// of [`Transformer::params`].
#[derive(Clone, Debug)]
pub struct Slot {
    pub name: String,
    pub offset: usize,
    pub len: usize,
    /// Under the convex layers' group penalty (not weight decay).
    pub penalized: bool,
}

impl Slot {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

#[derive(Clone, Copy, Debug)]
enum AttnAt {
    Softmax {
        qkv: usize,
        out: usize,
    },
    Convex {
        mixing: usize,
        value: usize,
        out: usize,
    },
}

impl AttnAt {
    fn out(&self) -> usize {
        match *self {
            AttnAt::Softmax { out, .. } | AttnAt::Convex { out, .. } => out,
        }
    }
}

/// Offsets of one block's parameters.
#[derive(Clone, Copy, Debug)]
struct BlockAt {
    ln1: (usize, usize),
    attn: AttnAt,
    ln2: (usize, usize),
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
}

/// One block's activations, kept for the backward pass.
struct Acts<T> {
    /// LN1 of the block's input (all rows × D).
    ln1: Vec<T>,
    /// Q|K|V (rows × 3D) or X·V (rows × D).
    proj: Vec<T>,
    /// The attention's output before the output projection (out rows × D).
    att: Vec<T>,
    /// Residual stream after attention (out rows × D).
    mid: Vec<T>,
    ln2: Vec<T>,
    /// The MLP's hidden layer before and after the ReLU (out rows × F).
    z: Vec<T>,
    u: Vec<T>,
    /// A convex block's masked mixing matrices W ∘ M (h·n·n), kept for the
    /// backward pass.
    mixing: Vec<T>,
}

/// Backward scratch, sized for the largest rows.
struct Scratch<T> {
    dlogits: Vec<T>,
    dcur: Vec<T>,
    dnext: Vec<T>,
    dmid: Vec<T>,
    du: Vec<T>,
    dln: Vec<T>,
    datt: Vec<T>,
    dproj: Vec<T>,
    /// A convex block's mixing gradient before the mask (h·n·n).
    dmix: Vec<T>,
}

// Derived Default would ask T: Default; empty vectors need nothing.
impl<T> Default for Acts<T> {
    fn default() -> Self {
        let e = Vec::new;
        Acts {
            ln1: e(),
            proj: e(),
            att: e(),
            mid: e(),
            ln2: e(),
            z: e(),
            u: e(),
            mixing: e(),
        }
    }
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        let e = Vec::new;
        Scratch {
            dlogits: e(),
            dcur: e(),
            dnext: e(),
            dmid: e(),
            du: e(),
            dln: e(),
            datt: e(),
            dproj: e(),
            dmix: e(),
        }
    }
}

/// The network's shape and where each parameter lives in the flat vector.
#[derive(Clone, Debug)]
struct Net {
    config: TransformerConfig,
    tok_emb: usize,
    pos_emb: usize,
    blocks: Vec<BlockAt>,
    ln_f: (usize, usize),
    unembed: (usize, usize),
    eps: f64,
}

impl Net {
    /// (n, D, F, h, classes).
    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        let c = &self.config;
        (
            c.seq_len,
            c.width,
            c.mlp_ratio * c.width,
            c.heads,
            c.n_classes,
        )
    }
}

/// Sequences per shard. A batch is cut into shards of this many sequences
/// (the last may be shorter); each shard runs its forward and backward pass
/// on one thread, with one-thread products, and the shards' gradients are
/// added in shard order. Why: on this model's small matrices, splitting
/// every product and kernel across 2 threads gave 1.4× one thread (a
/// synchronisation per op); whole shards per thread need one per pass. The
/// cut depends on the batch size only, so results do not depend on the
/// number of threads. 128 (4 shards of the default batch of 512) measured
/// as fast as 256 on 2 cores and leaves work for 4; 64 was slower.
pub const SHARD_SEQUENCES: usize = 128;

/// One shard's workspace: its sequences' activations, backward scratch and
/// share of the gradient.
struct Shard<T> {
    batch: usize,
    tokens: Vec<u32>,
    /// stream[l]: the input of block l (B·n × D); stream[L]: the last
    /// position's output of the top block (B × D).
    stream: Vec<Vec<T>>,
    acts: Vec<Acts<T>>,
    lnf: Vec<T>,
    logits: Vec<T>,
    scratch: Scratch<T>,
    grads: Vec<T>,
}

/// The network's parameters, gradients and workspace.
pub struct Engine<T: WithDType> {
    pub config: TransformerConfig,
    pub params: Vec<T>,
    pub grads: Vec<T>,
    pub slots: Vec<Slot>,
    net: Net,
    shard_sequences: usize,
    batch: usize,
    /// How many shards the last batch was cut into.
    live: usize,
    /// The shards of the last batch come first; more are kept for larger
    /// batches.
    shards: Vec<Shard<T>>,
    /// The last batch's logits, gathered from its shards (B × classes).
    logits: Vec<T>,
}

/// Gradient entries per work unit of the shards' sum.
const SUM_CHUNK: usize = 1 << 14;

fn resize<T: WithDType>(v: &mut Vec<T>, len: usize) {
    v.resize(len, T::zero());
}

/// rows (…×c) ← b broadcast.
#[inline(always)]
fn fill_rows<T: WithDType>(out: &mut [T], b: &[T]) {
    for row in out.chunks_exact_mut(b.len()) {
        row.copy_from_slice(b);
    }
}

/// out[q] += Σ_rows g[row, q].
#[inline(always)]
fn add_col_sums<T: WithDType>(g: &[T], out: &mut [T]) {
    for row in g.chunks_exact(out.len()) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

impl<T: WithDType> Engine<T> {
    /// Copies `model`'s parameters (their values now) into a new engine.
    pub fn from_transformer(model: &Transformer) -> Result<Self> {
        let config = model.config;
        let mut params = Vec::new();
        let mut slots = Vec::new();
        for p in &model.params {
            let v = tensor_values::<T>(p.var.as_tensor())?;
            slots.push(Slot {
                name: p.name.clone(),
                offset: params.len(),
                len: v.len(),
                penalized: p.penalized,
            });
            params.extend_from_slice(&v);
        }
        let at = |name: &str| -> Result<usize> {
            match slots.iter().find(|s| s.name == name) {
                Some(s) => Ok(s.offset),
                None => invalid(format!("the transformer has no parameter '{name}'")),
            }
        };
        let ln = |name: &str| -> Result<(usize, usize)> {
            Ok((at(&format!("{name}.weight"))?, at(&format!("{name}.bias"))?))
        };
        let mut blocks = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let p = |s: &str| format!("blocks.{l}.{s}");
            let attn = match config.attention {
                AttentionKind::Softmax => AttnAt::Softmax {
                    qkv: at(&p("attn.qkv"))?,
                    out: at(&p("attn.output"))?,
                },
                AttentionKind::Convex => AttnAt::Convex {
                    mixing: at(&p("attn.mixing"))?,
                    value: at(&p("attn.value"))?,
                    out: at(&p("attn.output"))?,
                },
            };
            blocks.push(BlockAt {
                ln1: ln(&p("ln1"))?,
                attn,
                ln2: ln(&p("ln2"))?,
                w1: at(&p("mlp_in.weight"))?,
                b1: at(&p("mlp_in.bias"))?,
                w2: at(&p("mlp_out.weight"))?,
                b2: at(&p("mlp_out.bias"))?,
            });
        }
        let net = Net {
            config,
            tok_emb: at("tok_emb")?,
            pos_emb: at("pos_emb")?,
            blocks,
            ln_f: ln("ln_f")?,
            unembed: (at("unembed.weight")?, at("unembed.bias")?),
            eps: model.ln_f.eps,
        };
        let grads = vec![T::zero(); params.len()];
        Ok(Engine {
            config,
            net,
            params,
            grads,
            slots,
            shard_sequences: SHARD_SEQUENCES,
            batch: 0,
            live: 0,
            shards: Vec::new(),
            logits: Vec::new(),
        })
    }

    /// Cuts batches into shards of `sequences` (at least 1) instead of
    /// [`SHARD_SEQUENCES`], from the next forward pass on: the tests use it
    /// to run several shards on small batches.
    pub fn set_shard_sequences(&mut self, sequences: usize) {
        self.shard_sequences = sequences.max(1);
    }

    /// Writes the parameters back into `model`'s variables.
    pub fn write_to(&self, model: &Transformer) -> Result<()> {
        for (p, s) in model.params.iter().zip(&self.slots) {
            let t = Tensor::from_slice(&self.params[s.range()], p.var.shape(), p.var.device())?;
            p.var.set(&t)?;
        }
        Ok(())
    }

    /// Number of trainable numbers (masked mixing entries excluded), as
    /// [`Transformer::n_params`].
    pub fn n_params(&self) -> usize {
        let (n, _, _, h, _) = self.net.dims();
        let convex = self
            .net
            .blocks
            .iter()
            .filter(|b| matches!(b.attn, AttnAt::Convex { .. }))
            .count();
        self.params.len() - convex * h * n * (n - 1) / 2
    }

    /// The logits (B × classes) of the last forward pass.
    pub fn logits(&self) -> &[T] {
        &self.logits[..self.batch * self.config.n_classes]
    }

    /// The shards of the last batch.
    fn live(&mut self) -> &mut [Shard<T>] {
        &mut self.shards[..self.live]
    }

    /// Forward pass on token ids (B·n, row-major): fills the logits and keeps
    /// the activations for [`Engine::backward`].
    pub fn forward(&mut self, tokens: &[u32]) -> Result<()> {
        let (n, _, _, _, c) = self.net.dims();
        if tokens.is_empty() || tokens.len() % n != 0 {
            return invalid(format!(
                "the model reads sequences of {n} tokens; got {} ids",
                tokens.len()
            ));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.config.vocab) {
            return invalid(format!(
                "token id {t} is outside the vocabulary of {}",
                self.config.vocab
            ));
        }
        self.batch = tokens.len() / n;
        let k = self.batch.div_ceil(self.shard_sequences);
        self.live = k;
        while self.shards.len() < k {
            self.shards.push(Shard::new(&self.net, self.params.len()));
        }
        let (net, p, per) = (&self.net, &self.params, self.shard_sequences * n);
        self.shards[..k]
            .par_iter_mut()
            .zip(tokens.par_chunks(per))
            .for_each(|(s, t)| s.forward(net, p, t));
        self.logits.clear();
        for s in &self.shards[..k] {
            self.logits.extend_from_slice(&s.logits[..s.batch * c]);
        }
        Ok(())
    }

    /// Mean cross-entropy of the last forward pass against `labels`, its
    /// gradient with respect to the logits kept for [`Engine::backward`],
    /// and the number of correct argmax predictions.
    pub fn cross_entropy(&mut self, labels: &[u32]) -> Result<(f64, usize)> {
        let (b, c) = (self.batch, self.config.n_classes);
        if labels.len() != b {
            return invalid(format!("{} labels for a batch of {b}", labels.len()));
        }
        if let Some(&y) = labels.iter().find(|&&y| y as usize >= c) {
            return invalid(format!("label {y} is outside the {c} classes"));
        }
        if self.live == 0 {
            return invalid("no forward pass to take the cross-entropy of");
        }
        let inv_b = 1.0 / b as f64;
        // The cut of the last forward pass: every shard but the last holds
        // as many sequences as the first.
        let per = self.shards[0].batch;
        let parts: Vec<(f64, usize)> = self
            .live()
            .par_iter_mut()
            .zip(labels.par_chunks(per))
            .map(|(s, y)| s.cross_entropy(c, y, inv_b))
            .collect();
        let loss: f64 = parts.iter().map(|p| p.0).sum();
        let correct = parts.iter().map(|p| p.1).sum();
        Ok((loss * inv_b, correct))
    }

    /// Gradients of the mean cross-entropy (from [`Engine::cross_entropy`])
    /// with respect to every parameter, into `grads` (overwritten): each
    /// shard's on its own thread, then their sum in shard order.
    pub fn backward(&mut self) {
        let k = self.live;
        if k == 0 {
            // No forward pass yet: no batch, no gradient.
            self.grads.fill(T::zero());
            return;
        }
        let (net, p) = (&self.net, &self.params);
        self.shards[..k]
            .par_iter_mut()
            .for_each(|s| s.backward(net, p));
        let shards = &self.shards[..k];
        self.grads
            .par_chunks_mut(SUM_CHUNK)
            .enumerate()
            .for_each(|(i, g)| {
                let at = i * SUM_CHUNK..i * SUM_CHUNK + g.len();
                g.copy_from_slice(&shards[0].grads[at.clone()]);
                for s in &shards[1..] {
                    add(g, &s.grads[at.clone()]);
                }
            });
    }

    /// λ·R, the convex layers' group penalty ([`crate::layer`]), returned,
    /// and λ·∇R added into `out` (a vector like `params`).
    pub fn add_penalty_grad(&self, lambda: f64, out: &mut [T]) -> f64 {
        let (n, d, _, h, _) = self.net.dims();
        let p = &self.params;
        let mut value = 0.0;
        for at in &self.net.blocks {
            let AttnAt::Convex {
                mixing,
                value: v,
                out: o,
            } = at.attn
            else {
                continue;
            };
            for off in [v, o] {
                for (gi, &x) in out[off..][..d * d].iter_mut().zip(&p[off..][..d * d]) {
                    value += 0.5 * x.to_f64() * x.to_f64();
                    *gi += T::from_f64(lambda * x.to_f64());
                }
            }
            // ½‖W̃_j‖²_{∞,1}: the gradient m·sign(W̃[r, k]) on every row r that
            // attains the maximum m (candle's max and abs: ties all get it,
            // sign(0) = +1).
            for j in 0..h {
                let w = &p[mixing + j * n * n..][..n * n];
                let sums: Vec<f64> = (0..n)
                    .map(|r| {
                        (0..n)
                            .filter(|&k| visible(r * n + k, n))
                            .map(|k| w[r * n + k].to_f64().abs())
                            .sum()
                    })
                    .collect();
                let m = sums.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                value += 0.5 * m * m;
                for r in (0..n).filter(|&r| sums[r] == m) {
                    for k in (0..n).filter(|&k| visible(r * n + k, n)) {
                        let sign = if w[r * n + k].to_f64() >= 0.0 {
                            1.0
                        } else {
                            -1.0
                        };
                        out[mixing + j * n * n + r * n + k] += T::from_f64(lambda * m * sign);
                    }
                }
            }
        }
        lambda * value
    }
}

impl<T: WithDType> Shard<T> {
    fn new(net: &Net, n_params: usize) -> Self {
        let layers = net.config.layers;
        Shard {
            batch: 0,
            tokens: Vec::new(),
            stream: (0..=layers).map(|_| Vec::new()).collect(),
            acts: (0..layers).map(|_| Acts::default()).collect(),
            lnf: Vec::new(),
            logits: Vec::new(),
            scratch: Scratch::default(),
            grads: vec![T::zero(); n_params],
        }
    }

    /// Sizes the workspace for `b` sequences (no allocation once it has held
    /// that many).
    fn reserve(&mut self, net: &Net, b: usize) {
        let (n, d, f, _, c) = net.dims();
        let big = b * n;
        let layers = net.config.layers;
        for (l, s) in self.stream.iter_mut().enumerate() {
            resize(s, if l == layers { b * d } else { big * d });
        }
        let proj = match net.config.attention {
            AttentionKind::Softmax => 3 * d,
            AttentionKind::Convex => d,
        };
        for (l, a) in self.acts.iter_mut().enumerate() {
            let rows = if l + 1 == layers { b } else { big };
            resize(&mut a.ln1, big * d);
            resize(&mut a.proj, big * proj);
            resize(&mut a.att, rows * d);
            resize(&mut a.mid, rows * d);
            resize(&mut a.ln2, rows * d);
            resize(&mut a.z, rows * f);
            resize(&mut a.u, rows * f);
        }
        resize(&mut self.lnf, b * d);
        resize(&mut self.logits, b * c);
        let s = &mut self.scratch;
        resize(&mut s.dlogits, b * c);
        for v in [
            &mut s.dcur,
            &mut s.dnext,
            &mut s.dmid,
            &mut s.dln,
            &mut s.datt,
        ] {
            resize(v, big * d);
        }
        resize(&mut s.du, big * f);
        resize(&mut s.dproj, big * proj);
        self.batch = b;
    }

    /// The forward pass of this shard's sequences (`tokens`, checked by the
    /// engine): its logits, and its activations kept for the backward pass.
    fn forward(&mut self, net: &Net, p: &[T], tokens: &[u32]) {
        #[cfg(target_arch = "x86_64")]
        if wide_vectors() {
            // SAFETY: the processor has AVX2 and FMA (checked just above).
            return unsafe { self.forward_wide(net, p, tokens) };
        }
        self.forward_body(net, p, tokens)
    }

    /// [`Shard::forward`] compiled for AVX2: the kernels inlined into it (layer
    /// norms, attention, elementwise loops) use 256-bit vectors. Without
    /// fast-math the compiler neither reorders nor fuses arithmetic, so the
    /// results are those of the baseline code.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_wide(&mut self, net: &Net, p: &[T], tokens: &[u32]) {
        self.forward_body(net, p, tokens)
    }

    #[inline(always)]
    fn forward_body(&mut self, net: &Net, p: &[T], tokens: &[u32]) {
        let (n, d, f, h, c) = net.dims();
        let b = tokens.len() / n;
        self.reserve(net, b);
        self.tokens.clear();
        self.tokens.extend_from_slice(tokens);
        let layers = net.config.layers;
        let ln = LayerNormOp { eps: net.eps };
        for (i, row) in self.stream[0].chunks_exact_mut(d).enumerate() {
            let e = &p[net.tok_emb + tokens[i] as usize * d..][..d];
            let pe = &p[net.pos_emb + (i % n) * d..][..d];
            for q in 0..d {
                row[q] = e[q] + pe[q];
            }
        }
        for l in 0..layers {
            let last = l + 1 == layers;
            let (big, rows) = (b * n, if last { b } else { b * n });
            let at = net.blocks[l];
            let (lower, upper) = self.stream.split_at_mut(l + 1);
            let (input, output) = (&lower[l], &mut upper[0]);
            let a = &mut self.acts[l];
            ln.fwd_rows(input, &p[at.ln1.0..][..d], &p[at.ln1.1..][..d], &mut a.ln1);
            match at.attn {
                AttnAt::Softmax { qkv, .. } => {
                    let w = &p[qkv..][..d * 3 * d];
                    matmul((big, d, 3 * d), plain(&a.ln1), plain(w), &mut a.proj, false);
                    CausalAttention { heads: h, last }.fwd_rows(&a.proj, n, d, &mut a.att);
                }
                AttnAt::Convex { mixing, value, .. } => {
                    let w = &p[value..][..d * d];
                    matmul((big, d, d), plain(&a.ln1), plain(w), &mut a.proj, false);
                    masked_mixing(&p[mixing..][..h * n * n], n, &mut a.mixing);
                    a.att.fill(T::zero());
                    TokenMix { heads: h, last }.fwd_rows(&a.proj, &a.mixing, n, d, &mut a.att);
                }
            }
            // mid = input (its last position per sequence, in the top block) + att·W_O.
            if last {
                for (i, row) in a.mid.chunks_exact_mut(d).enumerate() {
                    row.copy_from_slice(&input[(i * n + n - 1) * d..][..d]);
                }
            } else {
                a.mid.copy_from_slice(input);
            }
            let wo = &p[at.attn.out()..][..d * d];
            matmul((rows, d, d), plain(&a.att), plain(wo), &mut a.mid, true);
            ln.fwd_rows(&a.mid, &p[at.ln2.0..][..d], &p[at.ln2.1..][..d], &mut a.ln2);
            fill_rows(&mut a.z, &p[at.b1..][..f]);
            matmul(
                (rows, d, f),
                plain(&a.ln2),
                plain(&p[at.w1..][..d * f]),
                &mut a.z,
                true,
            );
            for (u, &z) in a.u.iter_mut().zip(&a.z) {
                *u = if z > T::zero() { z } else { T::zero() };
            }
            let out = &mut output[..rows * d];
            fill_rows(out, &p[at.b2..][..d]);
            for (o, &m) in out.iter_mut().zip(&a.mid) {
                *o += m;
            }
            matmul(
                (rows, f, d),
                plain(&a.u),
                plain(&p[at.w2..][..f * d]),
                out,
                true,
            );
        }
        ln.fwd_rows(
            &self.stream[layers],
            &p[net.ln_f.0..][..d],
            &p[net.ln_f.1..][..d],
            &mut self.lnf,
        );
        fill_rows(&mut self.logits, &p[net.unembed.1..][..c]);
        let u = &p[net.unembed.0..][..d * c];
        matmul(
            (b, d, c),
            plain(&self.lnf),
            plain(u),
            &mut self.logits,
            true,
        );
    }

    /// This shard's summed cross-entropy and correct count; the gradient
    /// with respect to its logits (scaled by `inv_b`, one over the whole
    /// batch) kept for the backward pass. Labels are checked by the engine.
    fn cross_entropy(&mut self, c: usize, labels: &[u32], inv_b: f64) -> (f64, usize) {
        let (mut loss, mut correct) = (0.0, 0);
        for ((row, g), &y) in self
            .logits
            .chunks_exact(c)
            .zip(self.scratch.dlogits.chunks_exact_mut(c))
            .zip(labels)
        {
            let y = y as usize;
            let (mut mx, mut arg) = (f64::NEG_INFINITY, 0);
            for (k, v) in row.iter().enumerate() {
                if v.to_f64() > mx {
                    (mx, arg) = (v.to_f64(), k);
                }
            }
            correct += usize::from(arg == y);
            let z: f64 = row.iter().map(|v| (v.to_f64() - mx).exp()).sum();
            let lse = mx + z.ln();
            loss += lse - row[y].to_f64();
            for (k, (gk, v)) in g.iter_mut().zip(row).enumerate() {
                let p = (v.to_f64() - lse).exp();
                *gk = T::from_f64((p - f64::from(u8::from(k == y))) * inv_b);
            }
        }
        (loss, correct)
    }

    /// This shard's share of the gradient into `grads` (overwritten).
    fn backward(&mut self, net: &Net, p: &[T]) {
        #[cfg(target_arch = "x86_64")]
        if wide_vectors() {
            // SAFETY: the processor has AVX2 and FMA (checked just above).
            return unsafe { self.backward_wide(net, p) };
        }
        self.backward_body(net, p)
    }

    /// [`Shard::backward`] compiled for AVX2, as [`Shard::forward_wide`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn backward_wide(&mut self, net: &Net, p: &[T]) {
        self.backward_body(net, p)
    }

    #[inline(always)]
    fn backward_body(&mut self, net: &Net, p: &[T]) {
        let (n, d, f, h, c) = net.dims();
        let (b, layers) = (self.batch, net.config.layers);
        let ln = LayerNormOp { eps: net.eps };
        let g = &mut self.grads;
        g.fill(T::zero());
        let s = &mut self.scratch;
        let (uw, ub) = net.unembed;
        add_col_sums(&s.dlogits[..b * c], &mut g[ub..][..c]);
        let (u, gu) = (&p[uw..][..d * c], &mut g[uw..][..d * c]);
        dense_backward((b, d, c), &self.lnf, u, &s.dlogits, gu, &mut s.dln[..b * d]);
        let (gw, gb) = pair_mut(g, net.ln_f, d);
        ln.bwd_rows(
            &self.stream[layers],
            &p[net.ln_f.0..][..d],
            &s.dln[..b * d],
            &mut s.dcur[..b * d],
            gw,
            gb,
        );
        for l in (0..layers).rev() {
            let last = l + 1 == layers;
            let (big, rows) = (b * n, if last { b } else { b * n });
            let at = net.blocks[l];
            let a = &self.acts[l];
            let dcur = &s.dcur[..rows * d];
            // out = mid + relu(LN2(mid)·W1 + b1)·W2 + b2
            add_col_sums(dcur, &mut g[at.b2..][..d]);
            let du = &mut s.du[..rows * f];
            let (w2, gw2) = (&p[at.w2..][..f * d], &mut g[at.w2..][..f * d]);
            dense_backward((rows, f, d), &a.u, w2, dcur, gw2, du);
            for (dz, &z) in du.iter_mut().zip(&a.z) {
                if z <= T::zero() {
                    *dz = T::zero();
                }
            }
            add_col_sums(du, &mut g[at.b1..][..f]);
            let dln = &mut s.dln[..rows * d];
            let (w1, gw1) = (&p[at.w1..][..d * f], &mut g[at.w1..][..d * f]);
            dense_backward((rows, d, f), &a.ln2, w1, du, gw1, dln);
            let dmid = &mut s.dmid[..rows * d];
            let (gw, gb) = pair_mut(g, at.ln2, d);
            ln.bwd_rows(&a.mid, &p[at.ln2.0..][..d], dln, dmid, gw, gb);
            add(dmid, dcur);
            // mid = input[rows] + att·W_O
            let wo = at.attn.out();
            let datt = &mut s.datt[..rows * d];
            let (w, gw) = (&p[wo..][..d * d], &mut g[wo..][..d * d]);
            dense_backward((rows, d, d), &a.att, w, dmid, gw, datt);
            let dln1 = &mut s.dln[..big * d];
            match at.attn {
                AttnAt::Softmax { qkv, .. } => {
                    let dqkv = &mut s.dproj[..big * 3 * d];
                    CausalAttention { heads: h, last }.bwd_rows(&a.proj, datt, n, d, dqkv);
                    let (w, gw) = (&p[qkv..][..d * 3 * d], &mut g[qkv..][..d * 3 * d]);
                    dense_backward((big, d, 3 * d), &a.ln1, w, dqkv, gw, dln1);
                }
                AttnAt::Convex { mixing, value, .. } => {
                    let dxv = &mut s.dproj[..big * d];
                    dxv.fill(T::zero());
                    let dw = &mut s.dmix;
                    dw.clear();
                    dw.resize(h * n * n, T::zero());
                    TokenMix { heads: h, last }.bwd_rows(&a.proj, &a.mixing, datt, n, d, dxv, dw);
                    // W̃ = W ∘ M: masked entries get no gradient.
                    let gm = &mut g[mixing..][..h * n * n];
                    for (i, (gi, &dwi)) in gm.iter_mut().zip(dw.iter()).enumerate() {
                        if visible(i, n) {
                            *gi += dwi;
                        }
                    }
                    let (w, gw) = (&p[value..][..d * d], &mut g[value..][..d * d]);
                    dense_backward((big, d, d), &a.ln1, w, dxv, gw, dln1);
                }
            }
            let dnext = &mut s.dnext[..big * d];
            let input = &self.stream[l];
            let (gw, gb) = pair_mut(g, at.ln1, d);
            ln.bwd_rows(input, &p[at.ln1.0..][..d], dln1, dnext, gw, gb);
            if last {
                for (i, row) in dmid.chunks_exact(d).enumerate() {
                    add(&mut dnext[(i * n + n - 1) * d..][..d], row);
                }
            } else {
                add(dnext, dmid);
            }
            std::mem::swap(&mut s.dcur, &mut s.dnext);
        }
        for (i, row) in s.dcur[..b * n * d].chunks_exact(d).enumerate() {
            add(
                &mut g[net.tok_emb + self.tokens[i] as usize * d..][..d],
                row,
            );
            add(&mut g[net.pos_emb + (i % n) * d..][..d], row);
        }
    }
}

/// Entry i of an n×n causal mask (mixing matrices are causal in this model).
fn visible(i: usize, n: usize) -> bool {
    (i % n) <= (i / n) % n
}

/// W ∘ M into `out` (h·n·n).
#[inline(always)]
fn masked_mixing<T: WithDType>(w: &[T], n: usize, out: &mut Vec<T>) {
    out.clear();
    out.extend(
        w.iter()
            .enumerate()
            .map(|(i, &v)| if visible(i, n) { v } else { T::zero() }),
    );
}

/// The backward pass of y = x·W (x: rows×i, W: i×o): gW = xᵀ·dy, dx = dy·Wᵀ.
fn dense_backward<T: WithDType>(
    (rows, i, o): (usize, usize, usize),
    x: &[T],
    w: &[T],
    dy: &[T],
    gw: &mut [T],
    dx: &mut [T],
) {
    matmul((i, rows, o), tr(x), plain(dy), gw, false);
    matmul((rows, o, i), plain(dy), tr(w), dx, false);
}

/// The gradient's slices of length d at the two offsets of a layer norm's
/// weight and bias (disjoint).
fn pair_mut<T>(g: &mut [T], (w, b): (usize, usize), d: usize) -> (&mut [T], &mut [T]) {
    assert!(w + d <= b || b + d <= w, "overlapping parameters");
    if w < b {
        let (lo, hi) = g.split_at_mut(b);
        (&mut lo[w..w + d], &mut hi[..d])
    } else {
        let (lo, hi) = g.split_at_mut(w);
        (&mut hi[..d], &mut lo[b..b + d])
    }
}

#[inline(always)]
fn add<T: WithDType>(a: &mut [T], b: &[T]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
