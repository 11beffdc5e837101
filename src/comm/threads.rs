//! P shards as P threads of one process: the data-parallel engine exercised
//! without MPI (tests, and trying a sharded solve on one machine).

use super::{Communicator, Counters, ReduceStats};
use std::sync::{Arc, Barrier, Mutex};

/// One member of a group of threads that sum across each other. Make the
/// group with [`ThreadGroup::new`] and move one member into each thread.
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
    counters: Counters,
}

struct Shared {
    size: usize,
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

impl ThreadGroup {
    /// The `size` members of a new group, member r at index r.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            size,
            slots: Mutex::new(vec![Vec::new(); size]),
            barrier: Barrier::new(size),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
                counters: Counters::default(),
            })
            .collect()
    }
}

impl Communicator for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum(&self, values: &mut [f64]) {
        self.counters.add(values.len());
        if self.shared.size == 1 {
            return;
        }
        self.shared.slots.lock().expect("no member panicked")[self.rank] = values.to_vec();
        self.shared.barrier.wait();
        {
            let slots = self.shared.slots.lock().expect("no member panicked");
            assert!(
                slots.iter().all(|s| s.len() == values.len()),
                "members of a thread group summed vectors of different lengths"
            );
            // Rank order on every member: the same bits everywhere.
            for (k, v) in values.iter_mut().enumerate() {
                *v = slots.iter().map(|s| s[k]).sum();
            }
        }
        // Nobody overwrites a slot before everyone has read them all.
        self.shared.barrier.wait();
    }
    fn stats(&self) -> ReduceStats {
        self.counters.get()
    }
}
