//! Student (a): standard softmax attention (SPEC §2) trained from scratch
//! with AdamW on the teacher's inputs: h heads, no query/key/value biases, an
//! output projection with a bias, padding keys masked as in the teacher.
//! One set of parameters computes every position; the loss is the squared
//! error at the chosen output positions only, as for the convex student.

use super::bert::mask_bias;
use super::features::Features;
use super::fused_student::{FusedStudent, StudentDims};
use crate::error::{invalid, Error, Result};
use crate::nn::{AdamW, TrainState};
use crate::solver::Interrupt;
use candle_core::{DType, Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::time::Instant;

/// Hyper-parameters of student (a).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SoftmaxConfig {
    pub heads: usize,
    pub head_dim: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch: usize,
    pub max_steps: usize,
    pub max_seconds: f64,
    pub eval_every: usize,
    pub seed: u64,
    /// Hand out the training state every this many steps (0: only when
    /// stopped), for a resume after a crash.
    pub checkpoint_every: usize,
}

/// The student's parameters.
pub struct SoftmaxStudent {
    pub wq: Var,
    pub wk: Var,
    pub wv: Var,
    pub wo: Var,
    pub bias: Var,
    heads: usize,
    head_dim: usize,
}

impl SoftmaxStudent {
    /// Gaussian weights scaled by 1/√fan-in; the bias starts at `mean`.
    pub fn init(dim: usize, cfg: &SoftmaxConfig, mean: &[f64], dev: &Device) -> Result<Self> {
        if cfg.heads == 0 || cfg.head_dim == 0 {
            return invalid("--softmax-heads and --softmax-head-dim must be at least 1");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let inner = cfg.heads * cfg.head_dim;
        let mut var = |rows: usize, cols: usize| -> Result<Var> {
            let s = 1.0 / (rows as f64).sqrt();
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| (s * rng.sample::<f64, _>(StandardNormal)) as f32)
                .collect();
            Var::from_vec(v, (rows, cols), dev).map_err(Error::from)
        };
        let (wq, wk, wv, wo) = (
            var(dim, inner)?,
            var(dim, inner)?,
            var(dim, inner)?,
            var(inner, dim)?,
        );
        let b: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        Ok(SoftmaxStudent {
            wq,
            wk,
            wv,
            wo,
            bias: Var::from_vec(b, dim, dev)?,
            heads: cfg.heads,
            head_dim: cfg.head_dim,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![
            self.wq.clone(),
            self.wk.clone(),
            self.wv.clone(),
            self.wo.clone(),
            self.bias.clone(),
        ]
    }

    /// (outputs B×n×D, attention B×H×n×n) for inputs B×n×D and a key mask B×n.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, n, d) = x.dims3()?;
        let (h, k) = (self.heads, self.head_dim);
        let flat = x.reshape((b * n, d))?;
        let split = |w: &Var| -> candle_core::Result<Tensor> {
            flat.matmul(w.as_tensor())?
                .reshape((b, n, h, k))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, kk, v) = (split(&self.wq)?, split(&self.wk)?, split(&self.wv)?);
        let scores = (q.matmul(&kk.t()?)? / (k as f64).sqrt())?;
        // `softmax`, not `softmax_last_dim`: the latter has no backward pass
        // (candle_nn applies it with `apply_op1_no_bwd`), so a graph through
        // it gives the queries and keys no gradient.
        let probs = candle_nn::ops::softmax(
            &scores.broadcast_add(&mask_bias(mask)?)?,
            candle_core::D::Minus1,
        )?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * n, h * k))?;
        let out = ctx
            .matmul(self.wo.as_tensor())?
            .broadcast_add(self.bias.as_tensor())?
            .reshape((b, n, d))?;
        Ok((out, probs))
    }
}

/// A batch of sentences as tensors: inputs, targets, key mask, loss weights
/// (1 at the chosen positions that hold a token).
pub struct Batch {
    pub x: Tensor,
    pub y: Tensor,
    pub mask: Tensor,
    pub weight: Tensor,
    pub count: usize,
}

pub fn make_batch(f: &Features, idx: &[usize], positions: &[usize], dev: &Device) -> Result<Batch> {
    let (n, d) = (f.n, f.dim);
    let mut x = Vec::with_capacity(idx.len() * n * d);
    let mut y = Vec::with_capacity(idx.len() * n * d);
    let mut mask = vec![0f32; idx.len() * n];
    let mut weight = vec![0f32; idx.len() * n];
    let mut count = 0;
    for (s, &i) in idx.iter().enumerate() {
        x.extend_from_slice(&f.x[i * n * d..(i + 1) * n * d]);
        y.extend_from_slice(&f.y[i * n * d..(i + 1) * n * d]);
        mask[s * n..s * n + f.lengths[i]].fill(1.0);
        for &r in positions.iter().filter(|&&r| r < f.lengths[i]) {
            weight[s * n + r] = 1.0;
            count += 1;
        }
    }
    let b = idx.len();
    Ok(Batch {
        x: Tensor::from_vec(x, (b, n, d), dev)?,
        y: Tensor::from_vec(y, (b, n, d), dev)?,
        mask: Tensor::from_vec(mask, (b, n), dev)?,
        weight: Tensor::from_vec(weight, (b, n, 1), dev)?,
        count,
    })
}

/// Mean over the weighted positions of ‖ŷ − y‖² / D: the candle graph of
/// the loss [`FusedStudent`] computes (tests compare the two).
#[cfg(test)]
pub(crate) fn loss(out: &Tensor, batch: &Batch, d: usize) -> candle_core::Result<Tensor> {
    let diff = (out - &batch.y)?.broadcast_mul(&batch.weight)?;
    diff.sqr()?.sum_all()? / (batch.count.max(1) * d) as f64
}

/// Predictions at every position (N×n×D) and the attention (N×n×n, mean
/// over heads) of the sentences `idx`.
pub fn predict(
    m: &SoftmaxStudent,
    f: &Features,
    idx: &[usize],
    dev: &Device,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut out = Vec::with_capacity(idx.len() * f.n * f.dim);
    let mut att = Vec::with_capacity(idx.len() * f.n * f.n);
    for chunk in idx.chunks(256) {
        let b = make_batch(f, chunk, &[], dev)?;
        let (o, p) = m.forward(&b.x, &b.mask)?;
        out.extend(o.flatten_all().and_then(|t| t.to_vec1::<f32>())?);
        let p = p
            .mean(1)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>());
        att.extend(p?);
    }
    Ok((out, att))
}

/// Where training starts, when it stops, and where its state goes.
pub struct Control<'a, R> {
    /// A state saved by this configuration, to continue from (its records
    /// are the caller's).
    pub resume: Option<&'a TrainState<R>>,
    /// Raised: training ends before the next step, handing out its state.
    pub stop: Option<&'a Interrupt>,
    /// Gets the state (with no records: the caller adds its own) every
    /// `cfg.checkpoint_every` steps and when stopped.
    pub on_state: &'a mut dyn FnMut(TrainState<R>) -> Result<()>,
}

/// The parameters in one flat vector: the order of [`SoftmaxStudent::vars`].
const NAMES: [&str; 5] = ["wq", "wk", "wv", "wo", "bias"];

fn flat(vars: &[Var]) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for v in vars {
        out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Trains with AdamW ([`crate::nn::AdamW`], candle_nn's update) on
/// minibatches of `train` until `max_steps` or `max_seconds`, each step's
/// gradient from [`FusedStudent`] (the candle model is loaded with the
/// parameters for evaluation only);
/// `on_eval(step, seconds, model)` runs every `eval_every` steps and at the
/// end (its time is not counted in `seconds`); `control` continues a saved
/// run, stops it, and receives its state.
pub fn train<R>(
    f: &Features,
    train_idx: &[usize],
    positions: &[usize],
    mean: &[f64],
    cfg: &SoftmaxConfig,
    control: Control<'_, R>,
    mut on_eval: impl FnMut(usize, f64, &SoftmaxStudent) -> Result<()>,
) -> Result<SoftmaxStudent> {
    if cfg.batch == 0 || cfg.max_steps == 0 || cfg.eval_every == 0 {
        return invalid("--softmax-batch, --softmax-steps and eval-every must be at least 1");
    }
    let dev = Device::Cpu;
    let model = SoftmaxStudent::init(f.dim, cfg, mean, &dev)?;
    let dims = StudentDims {
        n: f.n,
        dim: f.dim,
        heads: cfg.heads,
        head_dim: cfg.head_dim,
    };
    let mut fused = FusedStudent::new(dims, positions)?;
    let vars = model.vars();
    let mut params = flat(&vars)?;
    let mut layout = Vec::with_capacity(vars.len());
    let mut offset = 0;
    for (name, v) in NAMES.iter().zip(&vars) {
        layout.push((name.to_string(), offset, v.elem_count()));
        offset += v.elem_count();
    }
    // candle_nn's ParamsAdamW defaults: β = (0.9, 0.999), ε = 1e-8.
    let mut opt = AdamW::<f32>::new(params.len(), 0.9, 0.999, 1e-8);
    let decay = vec![cfg.weight_decay; params.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed);
    let mut order = train_idx.to_vec();
    let (mut pos, mut trained, mut first) = (order.len(), 0.0, 1);
    let load = |params: &[f32]| -> Result<()> {
        for (v, (_, off, len)) in vars.iter().zip(&layout) {
            v.set(&Tensor::from_slice(
                &params[*off..off + len],
                v.shape(),
                &dev,
            )?)?;
        }
        Ok(())
    };
    if let Some(s) = control.resume {
        let train32: Vec<u32> = train_idx.iter().map(|&i| i as u32).collect();
        s.check(params.len(), &train32, DType::F32, cfg.max_steps, |_| 0)?;
        params = s.params.iter().map(|&v| v as f32).collect();
        load(&params)?;
        opt.restore(&s.adam_m, &s.adam_v, s.adam_steps)?;
        order = s.order.iter().map(|&i| i as usize).collect();
        rng.set_word_pos(s.rng_word_pos);
        (pos, trained, first) = (s.pos, s.seconds, s.step + 1);
    } else {
        on_eval(0, 0.0, &model)?;
    }
    let snapshot = |step: usize,
                    trained: f64,
                    pos: usize,
                    order: &[usize],
                    opt: &AdamW<f32>,
                    rng: &ChaCha8Rng,
                    params: &[f32]| {
        let (m, v, adam_steps) = opt.state();
        let f64s = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<_>>();
        TrainState {
            step,
            seconds: trained,
            dtype: DType::F32,
            params: f64s(params),
            adam_m: f64s(m),
            adam_v: f64s(v),
            adam_steps,
            layout: layout.clone(),
            order: order.iter().map(|&i| i as u32).collect(),
            pos,
            rng_word_pos: rng.get_word_pos(),
            records: Vec::new(),
        }
    };
    for step in first..=cfg.max_steps {
        if control.stop.is_some_and(|s| s.requested()) {
            (control.on_state)(snapshot(
                step - 1,
                trained,
                pos,
                &order,
                &opt,
                &rng,
                &params,
            ))?;
            break;
        }
        let t0 = Instant::now();
        if pos + cfg.batch > order.len() {
            order.shuffle(&mut rng);
            pos = 0;
        }
        let end = (pos + cfg.batch).min(order.len());
        fused.loss_and_grad(f, &order[pos..end], &params)?;
        pos = end;
        opt.step(&mut params, fused.grad(), &decay, cfg.lr);
        trained += t0.elapsed().as_secs_f64();
        let last = step == cfg.max_steps || trained >= cfg.max_seconds;
        if step % cfg.eval_every == 0 || last {
            load(&params)?;
            on_eval(step, trained, &model)?;
        }
        if last {
            break;
        }
        if cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0 {
            (control.on_state)(snapshot(step, trained, pos, &order, &opt, &rng, &params))?;
        }
    }
    load(&params)?;
    Ok(model)
}
