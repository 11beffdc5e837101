//! The sequence-output program (SPEC §4c) on planted heads: a certified
//! solve, the recovered mixing matrices, and the check that they reproduce
//! the convex objective in the nonconvex model.
//!
//!     cargo run --release --example sequence_fit

use convexformer::loss::Loss;
use convexformer::sequence::{
    generate_sequence, sequence_beta_max, solve_sequence, SequenceSyntheticSpec,
};
use convexformer::solver::SolverOptions;

fn main() -> convexformer::Result<()> {
    let spec = SequenceSyntheticSpec {
        n_samples: 300,
        n_tokens: 6,
        n_features: 3,
        seed: 2,
        ..Default::default()
    };
    let (data, _planted) = generate_sequence(&spec)?;
    let beta = 0.1 * sequence_beta_max(&data, Loss::Squared)?;
    let sol = solve_sequence(&data, Loss::Squared, beta, &SolverOptions::default())?;
    let c = &sol.certificate;
    println!(
        "objective {:.8e}, relative gap {:.1e} ({:?}), {} iterations, {:.0} data passes",
        c.primal, c.relative_gap, sol.stop, sol.iterations, sol.data_passes
    );
    println!(
        "{} heads; their nonconvex objective {:.8e} (differs by {:.1e})",
        sol.heads.len(),
        sol.nonconvex_objective,
        (sol.nonconvex_objective - c.primal).abs() / c.primal.abs().max(1.0)
    );
    if let Some(h) = sol.heads.first() {
        let n = sol.n_tokens;
        println!("first head's mixing matrix (output {:+.3}):", h.output);
        for row in h.mixing.chunks_exact(n) {
            println!(
                "  {}",
                row.iter()
                    .map(|v| format!("{v:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    Ok(())
}
