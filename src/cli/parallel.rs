//! `mpirun -np P convexformer fit|path ...`: data-parallel solves, one shard
//! of the samples per rank (built with `--features mpi`). Rank 0 writes the
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
             `convexformer fit` and `convexformer path` run data-parallel; run `{command}` \
             without mpirun"
        );
    }
    Ok(())
}

/// Runs `command` as one rank of the MPI job this process was started in.
#[cfg(not(feature = "mpi"))]
pub fn on_world(
    _command: impl FnOnce(&dyn convexformer::comm::Communicator) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    bail!(
        "started as one of {} MPI ranks, but this convexformer was built without MPI: every \
         rank would solve the whole problem alone. Build it with `cargo build --release \
         --features mpi` (needs libopenmpi-dev and libclang-dev), or run without mpirun",
        launched_ranks()
    )
}

/// Runs `command` as one rank of the MPI job this process was started in:
/// an error on any rank ends every rank (the others would wait in their
/// next sum); an interrupt, agreed by all ranks, ends all of them alike.
#[cfg(feature = "mpi")]
pub fn on_world(
    command: impl FnOnce(&dyn convexformer::comm::Communicator) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use convexformer::comm::mpi::MpiWorld;
    use convexformer::comm::Communicator;
    super::interrupt::install()?;
    let world = MpiWorld::init().context("MPI could not be initialised")?;
    match command(&world) {
        Ok(()) => Ok(()),
        Err(e) if e.downcast_ref::<super::interrupt::Interrupted>().is_some() => Err(e),
        Err(e) => {
            eprintln!("error on rank {} of {}: {e:#}", world.rank(), world.size());
            world.abort(1)
        }
    }
}
