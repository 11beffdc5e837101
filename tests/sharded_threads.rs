//! Data-parallel solves with the shards as threads of this process: the
//! objective, the certificate and the active blocks equal the one-process
//! solve's to 1e-10 relative, for every program and every solver, on 2, 3
//! and 4 shards of unequal sizes.

mod sharded;

use convexformer::comm::{Communicator, ThreadGroup};
use sharded::{cases, disagreements, run, solvers};

#[test]
fn sharded_solves_agree_with_one_process_on_every_program_and_solver() {
    let mut failures = Vec::new();
    for case in cases() {
        for solver in solvers(&case) {
            let one = run(&case, solver, None);
            for size in [2, 3, 4] {
                let members = ThreadGroup::new(size);
                let outs: Vec<_> = std::thread::scope(|s| {
                    let handles: Vec<_> = members
                        .iter()
                        .map(|m| {
                            let case = &case;
                            s.spawn(move || {
                                (run(case, solver, Some(m as &dyn Communicator)), m.stats())
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                for (rank, (out, stats)) in outs.iter().enumerate() {
                    assert!(stats.calls > 0, "{}: shard {rank} never summed", case.name);
                    // Every shard holds the same iterate, bit for bit.
                    assert_eq!(out.coef, outs[0].0.coef, "{}: shards differ", case.name);
                    assert_eq!(out.intercept, outs[0].0.intercept);
                    assert_eq!(out.objective.to_bits(), outs[0].0.objective.to_bits());
                }
                for d in disagreements(&one, &outs[0].0) {
                    failures.push(format!(
                        "{} / {} / {size} shards: {d}",
                        case.name,
                        solver.name()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
