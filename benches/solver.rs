//! Criterion benches of the hot paths: one certified solve of each benchmark
//! instance (S, M; squared loss, β = 0.1·β_max, relative gap 1e-6), and one
//! full fused pass (predictions + gradient + adjoint over every token).

use convexformer::bench::{instance, run, SIZES};
use convexformer::loss::{Loss, SampleLoss};
use convexformer::operator::{LinearOperator, TokenOperator};
use convexformer::solver::SolverOptions;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn solves(c: &mut Criterion) {
    let mut g = c.benchmark_group("solve_to_1e-6");
    g.sample_size(10);
    for s in SIZES {
        let data = instance(&s).expect("instance");
        let opts = SolverOptions::default();
        g.bench_function(s.name, |b| {
            b.iter(|| black_box(run(&s, &data, &opts).expect("solve")))
        });
    }
    g.finish();
}

fn fused_pass(c: &mut Criterion) {
    let mut g = c.benchmark_group("fused_pass_all_tokens");
    g.sample_size(20);
    for s in SIZES {
        let data = instance(&s).expect("instance");
        let op = TokenOperator::new(&data, None);
        let all: Vec<usize> = (0..op.n_blocks()).collect();
        let coef = vec![0.01; all.len() * data.n_features];
        let mut buf = op.buffers(all.len());
        g.bench_function(s.name, |b| {
            b.iter(|| {
                black_box(op.fused_pass(
                    &all,
                    &coef,
                    &[0.0],
                    &all,
                    |i, y, gr| Loss::Squared.value_grad(y, data.target(i), gr),
                    &mut buf,
                ))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, solves, fused_pass);
criterion_main!(benches);
