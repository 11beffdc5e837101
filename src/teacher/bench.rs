//! Training steps per second of the teacher experiment's softmax student
//! (student (a), [`super::softmax_student`]) at its default size, for
//! `convexformer bench --training`: D = 384 (the MiniLM teacher's width),
//! 16 tokens, 12 heads of 32, batch 64, AdamW, f32, loss at positions 0–3.
//! The data are Gaussian stand-ins for the teacher's hidden states (a step
//! costs the same on any values). `scripts/teacher_student_pytorch.py` is
//! the same network and step in PyTorch, for a side-by-side run.

use super::features::{column_mean, Features};
use super::softmax_student::{train, Control, SoftmaxConfig};
use crate::error::Result;
use crate::nn::TrainState;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Sentences, tokens and width of the benchmark.
pub const STUDENT_SIZE: (usize, usize, usize) = (1024, 16, 384);

/// One measured run of the softmax student.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StudentBench {
    pub steps: usize,
    /// Training seconds (evaluation excluded).
    pub seconds: f64,
    pub steps_per_second: f64,
}

/// Trains the softmax student for `steps` steps on random features.
pub fn student_training_benchmark(steps: usize) -> Result<StudentBench> {
    let (count, n, dim) = STUDENT_SIZE;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut draw = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| rng.sample::<f64, _>(StandardNormal) as f32)
            .collect()
    };
    let f = Features {
        n,
        dim,
        x: draw(count * n * dim),
        y: draw(count * n * dim),
        lengths: vec![n; count],
        attention: vec![0.0; count * n * n],
        pieces: vec![Vec::new(); count],
    };
    let y64: Vec<f64> = f.y.iter().map(|&v| v as f64).collect();
    let mean = column_mean(&y64, dim);
    let cfg = SoftmaxConfig {
        heads: 12,
        head_dim: 32,
        lr: 1e-3,
        weight_decay: 1e-2,
        batch: 64,
        max_steps: steps,
        max_seconds: f64::INFINITY,
        eval_every: steps.max(1),
        seed: 0,
        checkpoint_every: 0,
    };
    let idx: Vec<usize> = (0..count).collect();
    let mut on_state = |_: &TrainState<usize>| Ok(());
    let control = Control::<usize> {
        resume: None,
        stop: None,
        on_state: &mut on_state,
    };
    let (_, run) = train(
        &f,
        &idx,
        &[0, 1, 2, 3],
        &mean,
        &cfg,
        control,
        |step, _, _| Ok(step),
    )?;
    Ok(StudentBench {
        steps: run.steps,
        seconds: run.seconds,
        steps_per_second: run.steps as f64 / run.seconds.max(1e-12),
    })
}

/// The result as a table.
pub fn student_training_table(r: &StudentBench) -> String {
    let (count, n, dim) = STUDENT_SIZE;
    format!(
        "teacher's softmax student: {count} sentences, n={n}, D={dim}, 12 heads of 32, batch 64, AdamW, f32, {} threads\n{:>6} {:>9} {:>8}\n{:>6} {:>9.3} {:>8.1}\n",
        rayon::current_num_threads(),
        "steps",
        "seconds",
        "steps/s",
        r.steps,
        r.seconds,
        r.steps_per_second
    )
}
