//! The comparison: teacher features → split by sentence → students (a) and
//! (b) → errors against time, attention maps and token sparsity.

use super::bert::Teacher;
use super::convex_student::{fit_position, ConvexStudent};
use super::corpus::split;
use super::features::{extract, position_dataset, squared_errors, Features, Projection};
use super::softmax_student::{predict, train, Control, SoftmaxConfig, SoftmaxStudent};
use crate::error::{invalid, Result};
use crate::nn::train::Evaluation;
use crate::nn::TrainState;
use crate::problem::Program;
use crate::solver::SolverOptions;
use candle_core::Device;

/// Everything the experiment needs besides the teacher and the sentences.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExperimentConfig {
    /// The convex student's program: vector-l1 (the paper's) or vector-l2.
    pub program: Program,
    pub max_tokens: usize,
    pub positions: Vec<usize>,
    pub val_frac: f64,
    pub test_frac: f64,
    pub split_seed: u64,
    pub proj_dim: usize,
    pub betas: usize,
    pub beta_ratio: f64,
    pub solver: SolverOptions,
    pub softmax: SoftmaxConfig,
}

/// A point of a student's curve: pooled over the chosen positions.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    pub model: String,
    /// Training step (softmax) or path index (convex).
    pub step: usize,
    pub beta_ratio: Option<f64>,
    pub seconds: f64,
    #[serde(deserialize_with = "crate::report::nan_if_null")]
    pub train_error: f64,
    #[serde(deserialize_with = "crate::report::nan_if_null")]
    pub val_error: f64,
    #[serde(deserialize_with = "crate::report::nan_if_null")]
    pub test_error: f64,
    /// Worst relative duality gap over positions (convex).
    pub relative_gap: Option<f64>,
    /// Mean number of tokens with a nonzero coefficient per position (convex).
    pub active_tokens: Option<f64>,
}

impl Evaluation for CurvePoint {
    fn step(&self) -> usize {
        self.step
    }
}

/// Position × token maps averaged over test sentences (rows: the chosen
/// positions; columns: tokens 0..n).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Maps {
    pub teacher: Vec<f64>,
    pub softmax: Vec<f64>,
    /// Normalised token weights Σ_l‖Z_{l,k}‖ of the chosen β, per position.
    pub convex: Vec<f64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ExperimentResult {
    pub sentences: [usize; 3],
    pub tokens_per_sentence: f64,
    pub n: usize,
    pub dim: usize,
    pub projection_energy_kept: f64,
    pub teacher_seconds: f64,
    pub convex: Vec<ConvexStudent>,
    pub curves: Vec<CurvePoint>,
    pub maps: Maps,
    /// Tokens holding 90% of each row's attention mass (teacher, softmax:
    /// mean over test sentences and positions; convex: of the token weights).
    pub tokens_for_90: [f64; 3],
    /// An example test sentence: its pieces and the three n×n-row maps.
    pub example: Example,
    #[serde(skip)]
    pub split: [Vec<usize>; 3],
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Example {
    pub sentence: usize,
    pub pieces: Vec<String>,
    /// len × len attention of the teacher and of the softmax student.
    pub teacher: Vec<f64>,
    pub softmax: Vec<f64>,
}

/// Tokens needed to hold `frac` of a nonnegative row's mass.
pub fn tokens_for_mass(row: &[f64], frac: f64) -> usize {
    let total: f64 = row.iter().sum();
    if total <= 0.0 {
        return 0;
    }
    let mut v = row.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    let mut acc = 0.0;
    for (i, x) in v.iter().enumerate() {
        acc += x;
        if acc >= frac * total {
            return i + 1;
        }
    }
    v.len()
}

/// Per-position training means of the targets.
fn position_means(f: &Features, train: &[usize], positions: &[usize]) -> Vec<Vec<f64>> {
    positions
        .iter()
        .map(|&r| {
            let rows: Vec<&[f32]> = train
                .iter()
                .filter(|&&i| f.lengths[i] > r)
                .map(|&i| f.row(&f.y, i, r))
                .collect();
            let mut m = vec![0.0; f.dim];
            for row in &rows {
                for (a, &v) in m.iter_mut().zip(row.iter()) {
                    *a += v as f64 / rows.len() as f64;
                }
            }
            m
        })
        .collect()
}

/// Pooled relative error at the chosen positions of predictions `pred`
/// (N_idx×n×D, in the order of `idx`).
fn pooled_error(
    f: &Features,
    idx: &[usize],
    positions: &[usize],
    means: &[Vec<f64>],
    pred: &[f32],
) -> f64 {
    let (n, d) = (f.n, f.dim);
    let (mut num, mut den) = (0.0, 0.0);
    for (s, &i) in idx.iter().enumerate() {
        for (p, &r) in positions.iter().enumerate() {
            if r < f.lengths[i] {
                let o = (s * n + r) * d;
                let (a, b) = squared_errors(&pred[o..o + d], f.row(&f.y, i, r), &means[p]);
                num += a;
                den += b;
            }
        }
    }
    num / den
}

/// Mean attention map (positions × n) over sentences `idx` of N×n×n maps
/// `att` (in the order of `idx`), each entry averaged over the sentences
/// where both the row and the column are tokens; and the mean number of
/// tokens holding 90% of each row's mass.
fn mean_map(f: &Features, idx: &[usize], positions: &[usize], att: &[f32]) -> (Vec<f64>, f64) {
    let n = f.n;
    let mut sum = vec![0.0; positions.len() * n];
    let mut cnt = vec![0.0; positions.len() * n];
    let (mut t90, mut rows) = (0.0, 0.0f64);
    for (s, &i) in idx.iter().enumerate() {
        let len = f.lengths[i];
        for (p, &r) in positions.iter().enumerate().filter(|(_, &r)| r < len) {
            let row: Vec<f64> = att[(s * n + r) * n..(s * n + r) * n + len]
                .iter()
                .map(|&v| v as f64)
                .collect();
            for (k, &v) in row.iter().enumerate() {
                sum[p * n + k] += v;
                cnt[p * n + k] += 1.0;
            }
            t90 += tokens_for_mass(&row, 0.9) as f64;
            rows += 1.0;
        }
    }
    let map = sum
        .iter()
        .zip(&cnt)
        .map(|(s, c)| if *c > 0.0 { s / c } else { 0.0 })
        .collect();
    (map, t90 / rows.max(1.0))
}

/// The teacher's N×n×n attention of sentences `idx`, in their order.
fn gather_attention(f: &Features, idx: &[usize]) -> Vec<f32> {
    let nn = f.n * f.n;
    idx.iter()
        .flat_map(|&i| f.attention[i * nn..(i + 1) * nn].iter().copied())
        .collect()
}

/// How a run of the experiment ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    Finished(Box<ExperimentResult>),
    /// Stopped by `cfg.solver.interrupt`: the convex students finished before
    /// it (a position whose path was cut short is dropped), and the softmax
    /// student's state if it was training.
    Interrupted {
        convex: Vec<ConvexStudent>,
        softmax: Option<Box<TrainState<CurvePoint>>>,
    },
}

/// What a stopped run had done: its solved positions and, if it was
/// training the softmax student, that student's saved state.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    pub convex: Vec<ConvexStudent>,
    pub softmax: Option<TrainState<CurvePoint>>,
}

/// Runs the teacher on `sentences` and both students; `log` gets progress lines.
pub fn run_experiment(
    teacher: &Teacher,
    sentences: &[String],
    cfg: &ExperimentConfig,
    log: impl FnMut(&str),
) -> Result<ExperimentResult> {
    let none = |_: &TrainState<CurvePoint>| Ok(());
    match run_experiment_resumed(
        teacher,
        sentences,
        cfg,
        Resume::default(),
        log,
        |_| Ok(()),
        none,
    )? {
        Outcome::Finished(r) => Ok(*r),
        Outcome::Interrupted { .. } => invalid("the experiment was interrupted"),
    }
}

/// [`run_experiment`] that can stop and go on: `done.convex` are the convex
/// students a stopped run finished (the first positions of
/// `cfg.positions`, in order), kept and not solved again, and
/// `done.softmax` the softmax student's saved state, continued exactly;
/// `on_position` sees the finished students after each position,
/// `on_softmax_state` the student's state every
/// `cfg.softmax.checkpoint_every` steps and when stopped; raising
/// `cfg.solver.interrupt` stops the run ([`Outcome::Interrupted`]).
pub fn run_experiment_resumed(
    teacher: &Teacher,
    sentences: &[String],
    cfg: &ExperimentConfig,
    done: Resume,
    mut log: impl FnMut(&str),
    mut on_position: impl FnMut(&[ConvexStudent]) -> Result<()>,
    mut on_softmax_state: impl FnMut(&TrainState<CurvePoint>) -> Result<()>,
) -> Result<Outcome> {
    let stop = cfg.solver.interrupt.clone().unwrap_or_default();
    if cfg.positions.is_empty() {
        return invalid("--positions must name at least one output position");
    }
    let t0 = std::time::Instant::now();
    let tokens = teacher.tokenize(sentences, cfg.max_tokens)?;
    let f = extract(teacher, &tokens, 32, |_| {})?;
    let teacher_seconds = t0.elapsed().as_secs_f64();
    if let Some(&r) = cfg.positions.iter().find(|&&r| r >= f.n) {
        return invalid(format!(
            "--positions {r} is beyond the longest sentence ({} tokens with --max-tokens {})",
            f.n, cfg.max_tokens
        ));
    }
    log(&format!(
        "teacher: {} sentences, up to {} tokens, width {}, in {teacher_seconds:.1} s",
        f.len(),
        f.n,
        f.dim
    ));
    let sets = split(f.len(), cfg.val_frac, cfg.test_frac, cfg.split_seed)?;
    let proj = Projection::fit(&f, &sets[0], cfg.proj_dim)?;
    log(&format!(
        "projection to {} features keeps {:.4} of the tokens' energy",
        proj.dim_out, proj.energy_kept
    ));

    // (b) convex, one certified path per position; the finished ones kept.
    let Resume {
        convex: done,
        softmax: softmax_state,
    } = done;
    if done.len() > cfg.positions.len()
        || done.iter().zip(&cfg.positions).any(|(s, &r)| {
            s.position != r || s.samples != [sets[0].len(), sets[1].len(), sets[2].len()]
        })
    {
        return invalid(
            "the finished convex students are not those of these positions and sentences",
        );
    }
    let mut convex = done;
    for &r in &cfg.positions[convex.len()..] {
        if stop.requested() {
            return Ok(Outcome::Interrupted {
                convex,
                softmax: None,
            });
        }
        let ds: Vec<_> = sets
            .iter()
            .map(|idx| position_dataset(&f, idx, r, &proj).map(|(d, _)| d))
            .collect::<Result<_>>()?;
        let student = fit_position(
            r,
            cfg.program,
            [&ds[0], &ds[1], &ds[2]],
            cfg.betas,
            cfg.beta_ratio,
            &cfg.solver,
            |p| {
                log(&format!(
                    "convex r={r} β/β_max={:.3e}: {:.2} s, gap {:.1e}, {} tokens, test error {:.4}",
                    p.beta_ratio,
                    p.seconds,
                    p.relative_gap,
                    p.active_tokens.len(),
                    p.error(2)
                ))
            },
        )?;
        if stop.requested() {
            // Its path may have been cut short: not a result.
            return Ok(Outcome::Interrupted {
                convex,
                softmax: None,
            });
        }
        convex.push(student);
        on_position(&convex)?;
    }
    let mut curves = convex_curve(&convex);

    // (a) softmax attention.
    let means = position_means(&f, &sets[0], &cfg.positions);
    let mean_all: Vec<f64> = (0..f.dim)
        .map(|q| means.iter().map(|m| m[q]).sum::<f64>() / means.len() as f64)
        .collect();
    let dev = Device::Cpu;
    let err = |m: &SoftmaxStudent, idx: &[usize]| -> Result<f64> {
        let (pred, _) = predict(m, &f, idx, &dev)?;
        Ok(pooled_error(&f, idx, &cfg.positions, &means, &pred))
    };
    let mut stopped = None;
    let mut on_state = |s: &TrainState<CurvePoint>| -> Result<()> {
        on_softmax_state(s)?;
        if stop.requested() {
            stopped = Some(s.clone());
        }
        Ok(())
    };
    let control = Control {
        resume: softmax_state.as_ref(),
        stop: Some(&stop),
        on_state: &mut on_state,
    };
    let (model, run) = train(
        &f,
        &sets[0],
        &cfg.positions,
        &mean_all,
        &cfg.softmax,
        control,
        |step, secs, m| {
            let p = CurvePoint {
                model: "softmax".into(),
                step,
                beta_ratio: None,
                seconds: secs,
                train_error: err(m, &sets[0])?,
                val_error: err(m, &sets[1])?,
                test_error: err(m, &sets[2])?,
                relative_gap: None,
                active_tokens: None,
            };
            log(&format!(
                "softmax step {step}: {secs:.1} s, train {:.4}, test {:.4}",
                p.train_error, p.test_error
            ));
            Ok(p)
        },
    )?;
    if run.interrupted || stop.requested() {
        return Ok(Outcome::Interrupted {
            convex,
            softmax: stopped.map(Box::new),
        });
    }
    if run.diverged {
        log(&format!(
            "softmax student: the loss stopped being finite at step {}; training ended there",
            run.steps
        ));
    }
    curves.extend(run.records);

    // Maps and sparsity on the test sentences.
    let test = &sets[2];
    let (_, soft_att) = predict(&model, &f, test, &dev)?;
    let (teacher_map, teacher90) = mean_map(&f, test, &cfg.positions, &gather_attention(&f, test));
    let (softmax_map, softmax90) = mean_map(&f, test, &cfg.positions, &soft_att);
    let mut convex_map = Vec::with_capacity(cfg.positions.len() * f.n);
    let mut convex90 = 0.0;
    for s in &convex {
        let w = &s.points[s.chosen].token_weight;
        let total: f64 = w.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        convex_map.extend(w.iter().map(|v| v / total));
        convex90 += tokens_for_mass(w, 0.9) as f64 / convex.len() as f64;
    }
    let ex = *test
        .iter()
        .max_by_key(|&&i| f.lengths[i])
        .unwrap_or(&test[0]);
    let ex_pos = test.iter().position(|&i| i == ex).unwrap_or(0);
    let len = f.lengths[ex];
    let crop = |att: &[f32], base: usize| -> Vec<f64> {
        (0..len * len)
            .map(|e| att[base + (e / len) * f.n + e % len] as f64)
            .collect()
    };
    let example = Example {
        sentence: ex,
        pieces: f.pieces[ex].clone(),
        teacher: crop(&f.attention, ex * f.n * f.n),
        softmax: crop(&soft_att, ex_pos * f.n * f.n),
    };
    let tokens_per_sentence = f.lengths.iter().sum::<usize>() as f64 / f.len() as f64;
    Ok(Outcome::Finished(Box::new(ExperimentResult {
        sentences: [sets[0].len(), sets[1].len(), sets[2].len()],
        tokens_per_sentence,
        n: f.n,
        dim: f.dim,
        projection_energy_kept: proj.energy_kept,
        teacher_seconds,
        convex,
        curves,
        maps: Maps {
            teacher: teacher_map,
            softmax: softmax_map,
            convex: convex_map,
        },
        tokens_for_90: [teacher90, softmax90, convex90],
        example,
        split: sets,
    })))
}

/// The convex students' path points pooled over positions by path index:
/// seconds add up (the positions are solved one after another).
fn convex_curve(convex: &[ConvexStudent]) -> Vec<CurvePoint> {
    let k = convex.iter().map(|s| s.points.len()).min().unwrap_or(0);
    (0..k)
        .map(|j| {
            let pooled = |set: usize| {
                let (a, b) = convex.iter().fold((0.0, 0.0), |(a, b), s| {
                    (a + s.points[j].sse[set].0, b + s.points[j].sse[set].1)
                });
                a / b
            };
            CurvePoint {
                model: "convex".into(),
                step: j,
                beta_ratio: Some(convex[0].points[j].beta_ratio),
                seconds: convex.iter().map(|s| s.points[j].seconds).sum(),
                train_error: pooled(0),
                val_error: pooled(1),
                test_error: pooled(2),
                relative_gap: convex
                    .iter()
                    .map(|s| s.points[j].relative_gap)
                    .reduce(f64::max),
                active_tokens: Some(
                    convex
                        .iter()
                        .map(|s| s.points[j].active_tokens.len() as f64)
                        .sum::<f64>()
                        / convex.len() as f64,
                ),
            }
        })
        .collect()
}
