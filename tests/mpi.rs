//! The data-parallel agreement test over MPI (feature `mpi`): run under
//! `mpirun -np P` (scripts/test-mpi.sh runs P = 2 and 4). Every rank solves
//! every case on its shard, summing across the ranks, and compares with the
//! one-process solve it also makes on the whole data: objective,
//! certificate and active blocks to 1e-10 relative. The ranks then agree on
//! the verdict, so all exit 0 or all exit 1. Without `mpirun` it runs as one
//! rank.

mod sharded;

use convexformer::comm::mpi::MpiWorld;
use convexformer::comm::Communicator;
use convexformer::data::npz::write_npz;
use convexformer::data::shards::{read_shard, shard_files};
use convexformer::data::synthetic::{generate, SyntheticSpec, TargetKind};
use convexformer::data::Targets;
use convexformer::fit::Fit;
use convexformer::loss::Loss;
use sharded::{cases, disagreements, run, solvers};
use std::path::PathBuf;

/// Rank 0 writes a data set as 5 `.npz` files (in $CF_MPI_SHARD_DIR, where
/// scripts/test-mpi.sh then runs the command line on them); every rank
/// reads its run of files through the `--data` pattern and fits its shard.
/// The fit equals the one-process fit on the whole set.
fn shard_files_agree(world: &MpiWorld) -> Vec<String> {
    let dir = std::env::var("CF_MPI_SHARD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("convexformer-mpi-shards"));
    let (all, _) = generate(&SyntheticSpec {
        n_samples: 250,
        n_tokens: 8,
        n_features: 4,
        n_outputs: 3,
        kind: TargetKind::Classes,
        rho: 0.5,
        ..Default::default()
    })
    .unwrap();
    if world.rank() == 0 {
        std::fs::create_dir_all(&dir).unwrap();
        for k in 0..5 {
            let rows: Vec<usize> = (k * 50..(k + 1) * 50).collect();
            write_npz(&dir.join(format!("part-{k}.npz")), &all.select(&rows)).unwrap();
        }
    }
    world.barrier();
    let pattern = format!("{}/part-*.npz", dir.display());
    let files = shard_files(&pattern).unwrap();
    let (shard, _) = read_shard(&files, world.rank(), world.size(), Targets::PerSample).unwrap();
    let fit = Fit::vector_l1()
        .loss(Loss::CrossEntropy)
        .intercept(true)
        .beta_frac(0.05)
        .tol(1e-10);
    let one = fit.fit(&all).unwrap().report;
    let sharded = fit.fit_sharded(&shard, None, None, world).unwrap().report;
    let mut out = Vec::new();
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-300);
    if rel(one.solve.objective, sharded.solve.objective) > 1e-10
        || !sharded.solve.converged
        || one.active_tokens != sharded.active_tokens
        || one.train_error != sharded.train_error
    {
        out.push(format!(
            "shard files: objective {} vs {}, active {:?} vs {:?}, train error {} vs {}",
            one.solve.objective,
            sharded.solve.objective,
            one.active_tokens,
            sharded.active_tokens,
            one.train_error,
            sharded.train_error
        ));
    }
    out
}

fn main() {
    let world = MpiWorld::init().expect("MPI initialises once");
    let (rank, size) = (world.rank(), world.size());
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        for solver in solvers(&case) {
            let one = run(&case, solver, None);
            let sharded = run(&case, solver, Some(&world));
            // Every rank holds the same iterate: the sum of the differences
            // to rank 0's coefficients, sent by rank 0 alone, is zero.
            let mut first = if rank == 0 {
                sharded.coef.clone()
            } else {
                vec![0.0; sharded.coef.len()]
            };
            world.sum(&mut first);
            if first != sharded.coef {
                failures.push(format!(
                    "{} / {}: rank {rank}'s coefficients differ from rank 0's",
                    case.name,
                    solver.name()
                ));
            }
            for d in disagreements(&one, &sharded) {
                failures.push(format!(
                    "{} / {} / {size} ranks: {d}",
                    case.name,
                    solver.name()
                ));
            }
            checked += 1;
        }
    }
    failures.extend(shard_files_agree(&world));
    for f in &failures {
        eprintln!("rank {rank}: {f}");
    }
    let failed = world.any(!failures.is_empty());
    let stats = world.stats();
    if rank == 0 {
        println!(
            "mpi agreement on {size} ranks: {checked} solves, {} sums, {} bytes reduced per rank: {}",
            stats.calls,
            stats.bytes,
            if failed { "FAILED" } else { "ok" }
        );
    }
    world.barrier();
    drop(world);
    std::process::exit(i32::from(failed));
}
