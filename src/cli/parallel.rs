//! `mpirun -np P convexformer fit ...`: the data-parallel fit, one shard of
//! the samples per rank (built with `--features mpi`). Rank 0 writes the
//! outputs; an error on any rank ends every rank.

use anyhow::bail;

/// The ranks of the job this process was started in by an MPI launcher
/// (Open MPI's `mpirun`, or a PMI launcher: MPICH's, Slurm's `srun`).
pub fn launched_ranks() -> usize {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
        .unwrap_or(1)
}

/// Refuses commands that would run once per rank, each writing the same
/// outputs, when the process was started as one of several ranks.
pub fn check_single(command: &str) -> anyhow::Result<()> {
    let ranks = launched_ranks();
    if ranks > 1 {
        bail!(
            "started as one of {ranks} MPI ranks, but `{command}` runs in one process: only \
             `convexformer fit` runs data-parallel; run `{command}` without mpirun"
        );
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
pub fn run_fit(_a: super::fit::FitArgs) -> anyhow::Result<()> {
    bail!(
        "started as one of {} MPI ranks, but this convexformer was built without MPI: every \
         rank would solve the whole problem alone. Build it with `cargo build --release \
         --features mpi` (needs libopenmpi-dev and libclang-dev), or run without mpirun",
        launched_ranks()
    )
}

#[cfg(feature = "mpi")]
pub use with_mpi::run_fit;

#[cfg(feature = "mpi")]
mod with_mpi {
    use super::super::common::{load_data, prepare_out_dir, write_json};
    use super::super::fit::{print_summary, report_json, FitArgs};
    use super::super::interrupt::Interrupted;
    use anyhow::{bail, Context};
    use convexformer::comm::mpi::MpiWorld;
    use convexformer::comm::{shard_range, Communicator};
    use convexformer::data::shards::{read_shard, shard_files};
    use convexformer::data::tensors::read_dataset;
    use convexformer::solver::StopReason;

    pub fn run_fit(a: FitArgs) -> anyhow::Result<()> {
        super::super::interrupt::install()?;
        let world = MpiWorld::init().context("MPI could not be initialised")?;
        match fit_on_shards(&a, &world) {
            Ok(()) => Ok(()),
            // Every rank stopped together (the stop is agreed): all exit alike.
            Err(e) if e.downcast_ref::<Interrupted>().is_some() => Err(e),
            Err(e) => {
                eprintln!("error on rank {} of {}: {e:#}", world.rank(), world.size());
                world.abort(1)
            }
        }
    }

    fn fit_on_shards(a: &FitArgs, world: &MpiWorld) -> anyhow::Result<()> {
        let (rank, size) = (world.rank(), world.size());
        if a.problem.model == "sequence" {
            bail!("the sequence program does not run data-parallel from the command line yet: run it in one process");
        }
        if a.resume {
            bail!("--resume does not run data-parallel yet: resume in one process");
        }
        if a.problem.val_frac.is_some() {
            bail!("--val-frac would hold out a different part of each shard: give --val FILE");
        }
        let fit = a.fit()?;
        if rank == 0 {
            prepare_out_dir(&a.out, a.force)?;
        }
        let spec = a.problem.data.as_str();
        let (shard, files) = if spec == "synthetic" || spec.starts_with("synthetic:") {
            // Every rank draws the same data and keeps its block.
            let (all, _) = load_data(spec)?;
            let rows: Vec<usize> = shard_range(all.n_samples, rank, size).collect();
            (all.select(&rows), Vec::new())
        } else {
            read_shard(&shard_files(spec)?, rank, size)?
        };
        let val = a
            .problem
            .val
            .as_ref()
            .map(|p| read_dataset(p).context("reading the validation data"))
            .transpose()?;
        fit.check_memory(&shard)?;
        let fitted = fit.fit_sharded(&shard, val.as_ref(), None, world)?;
        // Each rank's samples, summed into one list.
        let mut per_rank = vec![0.0; size];
        per_rank[rank] = shard.n_samples as f64;
        world.sum(&mut per_rank);
        let stats = world.stats();
        let report = &fitted.report;
        if rank == 0 {
            fitted.model.save(&a.out.join("model.safetensors"))?;
            let (_, t, d, c) = shard.shape();
            let iterations = report.solve.iterations.max(1) as f64;
            let data = serde_json::json!({
                "source": spec,
                "n_samples": per_rank.iter().sum::<f64>() as usize,
                "n_tokens": t,
                "n_features": d,
                "n_outputs": c,
                "classes": shard.labels.is_some(),
                "validation_samples": val.as_ref().map(|v| v.n_samples),
            });
            let arguments = super::super::resume::arguments(a)?;
            let mut json = report_json(arguments, false, data, &fit, report);
            json["parallel"] = serde_json::json!({
                "ranks": size,
                "samples_per_rank": per_rank.iter().map(|&v| v as usize).collect::<Vec<_>>(),
                "rank0_files": files,
                "sums": stats.calls,
                "bytes_reduced": stats.bytes,
                "bytes_reduced_per_iteration": stats.bytes as f64 / iterations,
            });
            write_json(&a.out.join("report.json"), &json)?;
            print_summary(report);
            println!(
                "{size} ranks: {} sums, {:.0} bytes reduced per iteration per rank",
                stats.calls,
                stats.bytes as f64 / iterations
            );
        }
        if report.solve.stop_reason == StopReason::Interrupted {
            return Err(Interrupted::wrote_to(&a.out, false));
        }
        if rank == 0 {
            println!(
                "wrote {}/report.json and {}/model.safetensors",
                a.out.display(),
                a.out.display()
            );
        }
        Ok(())
    }
}
