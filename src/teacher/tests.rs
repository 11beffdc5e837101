use super::bert::Teacher;
use super::corpus::{read_corpus, split};
use super::experiment::{run_experiment, tokens_for_mass, ExperimentConfig};
use super::features::{extract, position_dataset, squared_errors, Projection};
use super::softmax_student::SoftmaxConfig;
use super::tiny::{write_tiny_bert, TinySize};
use crate::solver::SolverOptions;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{layer_norm, linear, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config};

const CORPUS: &str = include_str!("../../tests/data/tiny_corpus.txt");

fn sentences() -> Vec<String> {
    CORPUS.lines().map(String::from).collect()
}

fn tiny(dir: &std::path::Path) -> Teacher {
    write_tiny_bert(dir, CORPUS, TinySize::default(), 7).unwrap();
    Teacher::load(dir).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// The target is the real last attention sublayer: completing the layer from
/// it (residual, LayerNorm, feed-forward, LayerNorm) gives candle-transformers'
/// full model output.
#[test]
fn target_completes_to_the_full_model() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny(dir.path());
    let toks = teacher.tokenize(&sentences()[..6], 12).unwrap();
    let n = toks.iter().map(|t| t.ids.len()).max().unwrap();
    let (x, y, probs) = teacher.run(&toks, n).unwrap();
    // The attention rows are distributions that ignore padding.
    let sums = probs.sum(3).unwrap();
    assert!(max_diff(&sums, &sums.ones_like().unwrap()) < 1e-5);

    let cfg: Config =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[dir.path().join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
    }
    .unwrap();
    let full = BertModel::load(vb.clone(), &cfg).unwrap();
    let b = toks.len();
    let mut ids = vec![0u32; b * n];
    let mut mask = vec![0u32; b * n];
    for (i, t) in toks.iter().enumerate() {
        ids[i * n..i * n + t.ids.len()].copy_from_slice(&t.ids);
        mask[i * n..i * n + t.ids.len()].fill(1);
    }
    let ids = Tensor::from_vec(ids, (b, n), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (b, n), &Device::Cpu).unwrap();
    let want = full
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();

    let l = vb.pp(format!("encoder.layer.{}", cfg.num_hidden_layers - 1));
    let h = cfg.hidden_size;
    let ln1 = layer_norm(h, cfg.layer_norm_eps, l.pp("attention.output.LayerNorm")).unwrap();
    let inter = linear(h, cfg.intermediate_size, l.pp("intermediate.dense")).unwrap();
    let out = linear(cfg.intermediate_size, h, l.pp("output.dense")).unwrap();
    let ln2 = layer_norm(h, cfg.layer_norm_eps, l.pp("output.LayerNorm")).unwrap();
    let a = ln1.forward(&(&y + &x).unwrap()).unwrap();
    let f = out
        .forward(&inter.forward(&a).unwrap().gelu_erf().unwrap())
        .unwrap();
    let got = ln2.forward(&(f + &a).unwrap()).unwrap();
    let d = max_diff(&got, &want);
    assert!(
        d < 1e-4,
        "completed layer differs from the full model by {d}"
    );
}

#[test]
fn features_zero_padding_and_position_sets_hold_the_right_rows() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny(dir.path());
    let toks = teacher.tokenize(&sentences(), 10).unwrap();
    let f = extract(&teacher, &toks, 7, |_| {}).unwrap();
    assert_eq!(f.len(), 40);
    assert!(f.lengths.iter().all(|&l| l <= 10) && f.n == 10);
    for i in 0..f.len() {
        for k in f.lengths[i]..f.n {
            assert!(f.row(&f.x, i, k).iter().all(|&v| v == 0.0));
            assert!(f.row(&f.y, i, k).iter().all(|&v| v == 0.0));
        }
    }
    // Batching does not change the features.
    let g = extract(&teacher, &toks, 40, |_| {}).unwrap();
    let d =
        f.x.iter()
            .zip(&g.x)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
    assert!(d < 1e-5, "batch size changed the features by {d}");

    // A full-rank projection whitens: the projected tokens' second moment is I.
    let all: Vec<usize> = (0..f.len()).collect();
    let p = Projection::fit(&f, &all, f.dim).unwrap();
    assert!((p.energy_kept - 1.0).abs() < 1e-9);
    let (ds, keep) = position_dataset(&f, &all, 0, &p).unwrap();
    assert_eq!(keep.len(), f.len());
    let d = f.dim;
    let mut m = vec![0.0; d * d];
    for row in ds.x.chunks_exact(d) {
        for a in 0..d {
            for b in 0..d {
                m[a * d + b] += row[a] * row[b];
            }
        }
    }
    let tokens: usize = f.lengths.iter().sum();
    for a in 0..d {
        for b in 0..d {
            let want = if a == b { 1.0 } else { 0.0 };
            assert!(
                (m[a * d + b] / tokens as f64 - want).abs() < 1e-6,
                "moment ({a},{b})"
            );
        }
    }
    let (ds, keep) = position_dataset(&f, &all, 2, &p).unwrap();
    assert_eq!(keep.len(), f.lengths.iter().filter(|&&l| l > 2).count());
    for (s, &i) in keep.iter().enumerate() {
        for k in f.lengths[i]..f.n {
            let o = (s * f.n + k) * f.dim;
            assert!(ds.x[o..o + f.dim].iter().all(|&v| v == 0.0));
        }
        let y: Vec<f64> = f.row(&f.y, i, 2).iter().map(|&v| v as f64).collect();
        assert_eq!(ds.target(s), &y[..]);
    }
    let p4 = Projection::fit(&f, &all, 4).unwrap();
    assert!(p4.energy_kept > 0.0 && p4.energy_kept < 1.0);
    assert!(Projection::fit(&f, &all, 0).is_err());
    assert!(Projection::fit(&f, &all, f.dim + 1).is_err());
}

fn config(positions: Vec<usize>) -> ExperimentConfig {
    ExperimentConfig {
        program: crate::problem::Program::VectorL1,
        max_tokens: 10,
        positions,
        val_frac: 0.2,
        test_frac: 0.2,
        split_seed: 1,
        proj_dim: 8,
        betas: 4,
        beta_ratio: 1e-2,
        solver: SolverOptions::default(),
        softmax: SoftmaxConfig {
            heads: 2,
            head_dim: 4,
            lr: 1e-2,
            weight_decay: 0.0,
            batch: 8,
            max_steps: 60,
            max_seconds: 60.0,
            eval_every: 20,
            seed: 3,
            checkpoint_every: 0,
        },
    }
}

#[test]
fn the_experiment_certifies_the_convex_students_and_trains_the_softmax_one() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny(dir.path());
    let res = run_experiment(&teacher, &sentences(), &config(vec![0, 2]), |_| {}).unwrap();
    assert_eq!(res.sentences, [24, 8, 8]);
    assert_eq!(res.convex.len(), 2);
    for s in &res.convex {
        assert_eq!(s.points.len(), 4);
        // Every point certified; the training loss falls as β falls.
        for w in s.points.windows(2) {
            assert!(w[1].certified && w[0].certified);
            assert!(w[1].sse[0].0 <= w[0].sse[0].0 * (1.0 + 1e-6) + 1e-9);
        }
        // At β_max only the intercept: the training mean, relative error 1.
        assert!(s.points[0].active_tokens.is_empty());
        assert!((s.points[0].error(0) - 1.0).abs() < 1e-6);
        assert!(s.points.last().unwrap().error(0) < 0.9);
    }
    let soft: Vec<_> = res.curves.iter().filter(|p| p.model == "softmax").collect();
    assert_eq!(soft.first().unwrap().step, 0);
    assert_eq!(soft.last().unwrap().step, 60);
    assert!(soft.last().unwrap().train_error < soft[0].train_error);
    let n = res.n;
    assert_eq!(res.maps.teacher.len(), 2 * n);
    for row in res.maps.convex.chunks(n) {
        let s: f64 = row.iter().sum();
        assert!(s == 0.0 || (s - 1.0).abs() < 1e-9);
    }
    // Teacher rows are averages of distributions over real tokens.
    for row in res.maps.teacher.chunks(n) {
        assert!(row.iter().all(|&v| (0.0..=1.0 + 1e-6).contains(&v)));
    }
    let len = res.example.pieces.len();
    assert_eq!(res.example.teacher.len(), len * len);
}

#[test]
fn bad_input_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = Teacher::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("setup_teacher.sh"), "{err}");
    let teacher = tiny(dir.path());
    assert!(teacher.tokenize(&sentences(), 2).is_err());
    let err = run_experiment(&teacher, &sentences(), &config(vec![40]), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--positions"), "{err}");
    assert!(run_experiment(&teacher, &sentences(), &config(vec![]), |_| {}).is_err());
    let f = dir.path().join("c.txt");
    std::fs::write(&f, "one\n\ntwo\none\n").unwrap();
    assert!(read_corpus(&f, None)
        .unwrap_err()
        .to_string()
        .contains("at least 10"));
    assert!(read_corpus(&dir.path().join("missing.txt"), None).is_err());
}

#[test]
fn corpus_split_is_disjoint_complete_and_seeded() {
    let [a, b, c] = split(100, 0.1, 0.2, 5).unwrap();
    assert_eq!((a.len(), b.len(), c.len()), (70, 10, 20));
    let mut all: Vec<usize> = a.iter().chain(&b).chain(&c).copied().collect();
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(split(100, 0.1, 0.2, 5).unwrap()[2], c);
    assert_ne!(split(100, 0.1, 0.2, 6).unwrap()[2], c);
    assert!(split(3, 0.1, 0.2, 0).is_err());
    assert!(split(100, 0.0, 0.2, 0).is_err());
}

#[test]
fn small_helpers() {
    assert_eq!(tokens_for_mass(&[0.5, 0.3, 0.2], 0.9), 3);
    assert_eq!(tokens_for_mass(&[0.05, 0.95, 0.0], 0.9), 1);
    assert_eq!(tokens_for_mass(&[0.0, 0.0], 0.9), 0);
    let (num, den) = squared_errors(&[1.0f64, 2.0], &[1.0, 4.0], &[0.0, 0.0]);
    assert_eq!((num, den), (4.0, 17.0));
}

#[test]
fn a_stopped_experiment_keeps_its_positions_and_resumes_to_the_same_students() {
    use super::convex_student::ConvexStudent;
    use super::experiment::{run_experiment_resumed, CurvePoint, Outcome, Resume};
    use crate::nn::TrainState;
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny(dir.path());
    let stop = crate::solver::Interrupt::new();
    let cfg = ExperimentConfig {
        solver: SolverOptions {
            interrupt: Some(stop.clone()),
            ..Default::default()
        },
        ..config(vec![0, 1, 2])
    };
    // Timings aside, the positions' paths and the student's training are
    // deterministic.
    let untimed = |v: &[ConvexStudent]| {
        let mut v = v.to_vec();
        for s in &mut v {
            s.points.iter_mut().for_each(|p| p.seconds = 0.0);
        }
        v
    };
    let untimed_curve = |v: &[CurvePoint]| {
        let mut v = v.to_vec();
        v.iter_mut().for_each(|p| p.seconds = 0.0);
        v
    };
    let no_state = |_: &TrainState<CurvePoint>| Ok(());
    let whole = run_experiment(&teacher, &sentences(), &cfg, |_| {}).unwrap();

    // Ctrl-C once the first position is solved.
    let mut seen = Vec::new();
    let out = run_experiment_resumed(
        &teacher,
        &sentences(),
        &cfg,
        Resume::default(),
        |_| {},
        |c| {
            seen.push(c.len());
            stop.request();
            Ok(())
        },
        no_state,
    )
    .unwrap();
    let Outcome::Interrupted { convex, softmax } = out else {
        panic!("not interrupted")
    };
    assert_eq!(seen, [1]);
    assert!(softmax.is_none());
    assert_eq!(untimed(&convex), untimed(&whole.convex[..1]));
    stop.clear();

    // Resumed, then Ctrl-C again while the softmax student trains (after its
    // evaluation at step 20): its state comes back, with its curve so far.
    let mut seen = Vec::new();
    let mut states = Vec::new();
    let out = run_experiment_resumed(
        &teacher,
        &sentences(),
        &cfg,
        Resume {
            convex: convex.clone(),
            softmax: None,
        },
        |line| {
            if line.starts_with("softmax step 20:") {
                stop.request();
            }
        },
        |c| {
            seen.push(c.len());
            Ok(())
        },
        |s| {
            states.push(s.step);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(seen, [2, 3], "only the remaining positions are solved");
    let Outcome::Interrupted { convex, softmax } = out else {
        panic!("not interrupted")
    };
    assert_eq!(untimed(&convex), untimed(&whole.convex));
    let state = *softmax.expect("the student's state");
    assert_eq!(state.step, 20);
    assert_eq!(states, [20]);
    let soft_whole: Vec<CurvePoint> = whole
        .curves
        .iter()
        .filter(|p| p.model == "softmax")
        .cloned()
        .collect();
    assert_eq!(
        untimed_curve(&state.records),
        untimed_curve(&soft_whole[..2])
    );
    stop.clear();

    // Through a file, then to the end: the run never stopped.
    let file = dir.path().join("softmax.safetensors");
    state.save(&file).unwrap();
    let back = TrainState::<CurvePoint>::load(&file).unwrap();
    assert_eq!(back, state);
    let out = run_experiment_resumed(
        &teacher,
        &sentences(),
        &cfg,
        Resume {
            convex: convex.clone(),
            softmax: Some(back),
        },
        |_| {},
        |_| panic!("no position is left to solve"),
        no_state,
    )
    .unwrap();
    let Outcome::Finished(res) = out else {
        panic!("stopped again")
    };
    assert_eq!(res.convex, convex, "kept positions are not solved again");
    assert_eq!(untimed_curve(&res.curves), untimed_curve(&whole.curves));
    assert_eq!(res.maps, whole.maps);

    // Students of other positions are refused.
    let err = run_experiment_resumed(
        &teacher,
        &sentences(),
        &config(vec![1, 2]),
        Resume {
            convex,
            softmax: None,
        },
        |_| {},
        |_| Ok(()),
        no_state,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not those of these positions"), "{err}");
}

/// Random stand-in features: `count` sentences of up to n tokens (lengths
/// from 1 to n), padding rows zero as the teacher writes them.
fn random_features(count: usize, n: usize, dim: usize, seed: u64) -> super::features::Features {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let lengths: Vec<usize> = (0..count).map(|i| 1 + (i * 7 + 3) % n).collect();
    let mut x = vec![0f32; count * n * dim];
    let mut y = vec![0f32; count * n * dim];
    for (i, &len) in lengths.iter().enumerate() {
        for v in &mut x[i * n * dim..(i * n + len) * dim] {
            *v = rng.random_range(-1.0..1.0);
        }
        for v in &mut y[i * n * dim..(i * n + len) * dim] {
            *v = rng.random_range(-1.0..1.0);
        }
    }
    super::features::Features {
        n,
        dim,
        x,
        y,
        lengths,
        attention: vec![0.0; count * n * n],
        pieces: vec![Vec::new(); count],
    }
}

#[test]
fn the_fused_student_step_has_the_candle_graphs_loss_and_gradient() {
    use super::fused_student::{FusedStudent, StudentDims, SHARD_SENTENCES};
    use super::softmax_student::{loss, make_batch, SoftmaxStudent};
    let (n, dim) = (6, 10);
    let f = random_features(40, n, dim, 5);
    let cfg = SoftmaxConfig {
        heads: 3,
        head_dim: 4,
        lr: 1e-3,
        weight_decay: 0.0,
        batch: 8,
        max_steps: 1,
        max_seconds: 1.0,
        eval_every: 1,
        seed: 2,
        checkpoint_every: 0,
    };
    let dev = Device::Cpu;
    let mean = vec![0.1; dim];
    let model = SoftmaxStudent::init(dim, &cfg, &mean, &dev).unwrap();
    let vars = [&model.wq, &model.wk, &model.wv, &model.wo, &model.bias];
    let params: Vec<f32> = vars
        .iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect();
    let dims = StudentDims {
        n,
        dim,
        heads: 3,
        head_dim: 4,
    };
    // Positions in any order, one past some sentences' ends; a batch of
    // more than two shards, the last one partial, sentences repeated.
    let positions = [3, 0, 5];
    let idx: Vec<usize> = (0..2 * SHARD_SENTENCES + 5)
        .map(|i| (i * 13) % 40)
        .collect();
    let mut fused = FusedStudent::new(dims, &positions).unwrap();
    let got = fused.loss_and_grad(&f, &idx, &params).unwrap();
    let batch = make_batch(&f, &idx, &positions, &dev).unwrap();
    let (out, _) = model.forward(&batch.x, &batch.mask).unwrap();
    let l = loss(&out, &batch, dim).unwrap();
    let want = l.to_scalar::<f32>().unwrap() as f64;
    assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    let grads = l.backward().unwrap();
    let want: Vec<f32> = vars
        .iter()
        .enumerate()
        .flat_map(|(i, v)| {
            let g = grads
                .get(v)
                .unwrap_or_else(|| panic!("no gradient for variable {i}"));
            g.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        })
        .collect();
    let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    for (i, (g, w)) in fused.grad().iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * scale, "entry {i}: {g} vs {w}");
    }
    // The same gradient on one thread and on three, to the bit.
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut w = FusedStudent::new(dims, &positions).unwrap();
        let l = pool.install(|| w.loss_and_grad(&f, &idx, &params).unwrap());
        (
            l.to_bits(),
            w.grad().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(on(1), on(3));
    // Bad input: a position past n, a repeated one, a wrong shape.
    assert!(FusedStudent::new(dims, &[6]).is_err());
    assert!(FusedStudent::new(dims, &[1, 1]).is_err());
    assert!(fused.loss_and_grad(&f, &idx, &params[1..]).is_err());
    assert!(fused.loss_and_grad(&f, &[40], &params).is_err());
    assert!(fused.loss_and_grad(&f, &[], &params).is_err());
}
