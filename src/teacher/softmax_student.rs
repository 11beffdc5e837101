//! Student (a): standard softmax attention (SPEC §2) trained from scratch
//! with AdamW on the teacher's inputs: h heads, no query/key/value biases, an
//! output projection with a bias, padding keys masked as in the teacher.
//! One set of parameters computes every position; the loss is the squared
//! error at the chosen output positions only, as for the convex student.

use super::features::Features;
use super::fused_student::{FusedStudent, StudentDims};
use crate::error::{invalid, Error, Result};
use crate::nn::attention::{attend, merge_heads, padding_bias, split_heads};
use crate::nn::train::{
    Decay, Evaluation, Minibatches, Network, Outcome, Plan, Schedule, TrainHooks,
};
use crate::nn::{AdamW, TrainState};
use crate::solver::Interrupt;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

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
            split_heads(&flat.matmul(w.as_tensor())?.reshape((b, n, h * k))?, h)
        };
        let (q, kk, v) = (split(&self.wq)?, split(&self.wk)?, split(&self.wv)?);
        let (ctx, probs) = attend(&q, &kk, &v, Some(&padding_bias(mask)?))?;
        let out = merge_heads(&ctx)?
            .reshape((b * n, h * k))?
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
    /// A state saved by this configuration, to continue from.
    pub resume: Option<&'a TrainState<R>>,
    /// Raised: training ends before the next step, handing out its state.
    pub stop: Option<&'a Interrupt>,
    /// Gets the state (with the evaluations so far) every
    /// `cfg.checkpoint_every` steps and when stopped.
    pub on_state: &'a mut dyn FnMut(&TrainState<R>) -> Result<()>,
}

struct ControlHooks<'a, 'b, R> {
    control: &'b mut Control<'a, R>,
    every: usize,
}

impl<R: Clone> TrainHooks<R> for ControlHooks<'_, '_, R> {
    fn stop(&self) -> bool {
        self.control.stop.is_some_and(|s| s.requested())
    }
    fn checkpoint_every(&self) -> usize {
        self.every
    }
    fn checkpoint(&mut self, s: &TrainState<R>) -> Result<()> {
        (self.control.on_state)(s)
    }
}

/// The parameters in one flat vector: the order of [`SoftmaxStudent::vars`].
const NAMES: [&str; 5] = ["wq", "wk", "wv", "wo", "bias"];

/// The student as the training loop sees it: the fused step's loss and
/// gradient on flat parameters, and the candle model loaded with them for
/// evaluation.
struct Student<'a> {
    f: &'a Features,
    fused: FusedStudent,
    params: Vec<f32>,
    model: SoftmaxStudent,
    layout: Vec<(String, usize, usize)>,
    idx: Vec<usize>,
}

impl Student<'_> {
    /// The candle model with the current parameters.
    fn model(&mut self) -> Result<&SoftmaxStudent> {
        let dev = Device::Cpu;
        for (v, (_, off, len)) in self.model.vars().iter().zip(&self.layout) {
            v.set(&Tensor::from_slice(
                &self.params[*off..off + len],
                v.shape(),
                &dev,
            )?)?;
        }
        Ok(&self.model)
    }
}

impl Network<f32> for Student<'_> {
    fn layout(&self) -> Vec<(String, usize, usize)> {
        self.layout.clone()
    }

    fn loss_and_grad(&mut self, batch: &[u32]) -> Result<f64> {
        self.idx.clear();
        self.idx.extend(batch.iter().map(|&i| i as usize));
        self.fused.loss_and_grad(self.f, &self.idx, &self.params)
    }

    fn params_and_grad(&mut self) -> (&mut [f32], &[f32]) {
        (&mut self.params, self.fused.grad())
    }
}

/// Trains with AdamW ([`crate::nn::AdamW`], candle_nn's update) on
/// minibatches of `train` until `max_steps` or `max_seconds` (the loop of
/// [`crate::nn::train`]), each step's gradient from [`FusedStudent`] (the
/// candle model is loaded with the parameters for evaluation only);
/// `on_eval(step, seconds, model)` runs at step 0, every `eval_every` steps
/// and at the end (its time is not counted in `seconds`), and its results are
/// the run's records; `control` continues a saved run, stops it, and receives
/// its state.
pub fn train<R: Evaluation>(
    f: &Features,
    train_idx: &[usize],
    positions: &[usize],
    mean: &[f64],
    cfg: &SoftmaxConfig,
    mut control: Control<'_, R>,
    mut on_eval: impl FnMut(usize, f64, &SoftmaxStudent) -> Result<R>,
) -> Result<(SoftmaxStudent, Outcome<R>)> {
    if cfg.batch == 0 || cfg.max_steps == 0 || cfg.eval_every == 0 {
        return invalid("--softmax-batch, --softmax-steps and eval-every must be at least 1");
    }
    let model = SoftmaxStudent::init(f.dim, cfg, mean, &Device::Cpu)?;
    let dims = StudentDims {
        n: f.n,
        dim: f.dim,
        heads: cfg.heads,
        head_dim: cfg.head_dim,
    };
    let vars = model.vars();
    let mut params = Vec::new();
    let mut layout = Vec::with_capacity(vars.len());
    for (name, v) in NAMES.iter().zip(&vars) {
        layout.push((name.to_string(), params.len(), v.elem_count()));
        params.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
    }
    let items: Vec<u32> = train_idx.iter().map(|&i| i as u32).collect();
    let resume = match control.resume {
        Some(s) => {
            s.check(params.len(), &items, DType::F32, cfg.max_steps, |r| {
                r.step()
            })?;
            Some(s.clone())
        }
        None => None,
    };
    let plan = Plan {
        max_steps: cfg.max_steps,
        max_seconds: cfg.max_seconds,
        batch: cfg.batch,
        schedule: Schedule {
            lr: cfg.lr,
            warmup_steps: 0,
            decay: Decay::Constant,
            min_lr_frac: 1.0,
        },
        // A stopped run is saved and left at once.
        evaluate_when_stopped: false,
    };
    let batches = Minibatches::new(items, ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed));
    let mut net = Student {
        f,
        fused: FusedStudent::new(dims, positions)?,
        params,
        model,
        layout,
        idx: Vec::with_capacity(cfg.batch),
    };
    // candle_nn's ParamsAdamW defaults: β = (0.9, 0.999), ε = 1e-8.
    let mut opt = AdamW::<f32>::new(net.params.len(), 0.9, 0.999, 1e-8)
        .with_decay(vec![cfg.weight_decay; net.params.len()])?;
    let every = cfg.checkpoint_every;
    let mut hooks = ControlHooks {
        control: &mut control,
        every,
    };
    let out = crate::nn::train::train(
        &mut net,
        &mut opt,
        &plan,
        batches,
        resume,
        |step, _| step % cfg.eval_every == 0,
        |step, seconds, net: &mut Student| on_eval(step, seconds, net.model()?),
        &mut hooks,
    )?;
    net.model()?;
    Ok((net.model, out))
}
