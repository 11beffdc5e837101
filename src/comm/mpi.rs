//! The shards as MPI processes (cargo feature `mpi`): one shard per rank of
//! `MPI_COMM_WORLD`, under `mpirun -np P` or `srun`.

use super::{Communicator, Counters, ReduceStats};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

/// MPI_COMM_WORLD, initialised once per process; finalised when dropped.
pub struct MpiWorld {
    // Declared before `_universe`: dropped (and used) before MPI_Finalize.
    world: SimpleCommunicator,
    counters: Counters,
    _universe: Universe,
}

// The solver sums only from the thread that initialised MPI (rayon's
// workers never call it): MPI's funnelled use, which every MPI library
// supports. `Sync` is needed because operators are shared with rayon.
unsafe impl Sync for MpiWorld {}

impl MpiWorld {
    /// Initialises MPI. None if it was initialised already in this process.
    pub fn init() -> Option<MpiWorld> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
        Some(MpiWorld {
            world: universe.world(),
            counters: Counters::default(),
            _universe: universe,
        })
    }
    /// Ends every rank of the job with `code`, from any one of them: a
    /// rank that fails must not leave the others waiting in a sum.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
    /// Waits until every rank is here.
    pub fn barrier(&self) {
        self.world.barrier();
    }
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn sum(&self, values: &mut [f64]) {
        self.counters.add(values.len());
        if self.size() == 1 || values.is_empty() {
            return;
        }
        // Reduce to rank 0, then broadcast: every rank gets rank 0's bits.
        // (An allreduce may round differently on different ranks, and the
        // ranks must take the same decisions.)
        let root = self.world.process_at_rank(0);
        if self.rank() == 0 {
            let mut out = vec![0.0; values.len()];
            root.reduce_into_root(&values[..], &mut out[..], SystemOperation::sum());
            values.copy_from_slice(&out);
        } else {
            root.reduce_into(&values[..], SystemOperation::sum());
        }
        root.broadcast_into(values);
    }
    fn stats(&self) -> ReduceStats {
        self.counters.get()
    }
}
