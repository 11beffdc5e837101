//! A certified regularization path of the scalar program (SPEC §4a) on
//! planted data: every point with its duality gap, the tokens it reads and
//! whether the recovered heads reproduce the convex objective.
//!
//!     cargo run --release --example scalar_path

use convexformer::data::synthetic::{generate, SyntheticSpec};
use convexformer::fit::{Fit, PathBetas};
use convexformer::loss::Loss;

fn main() -> convexformer::Result<()> {
    let spec = SyntheticSpec {
        n_samples: 1000,
        n_tokens: 16,
        n_features: 8,
        active: 3,
        seed: 1,
        ..Default::default()
    };
    let (data, planted) = generate(&spec)?;
    // 8 values of β from β_max down to 0.01·β_max, each solve started from
    // the one before (the one path loop, `convexformer::solver::solve_path`).
    let betas = PathBetas::Grid { n: 8, ratio: 0.01 };
    let (points, beta_max) = Fit::scalar().loss(Loss::Squared).path(&data, &betas)?;
    println!("planted tokens {planted:?}, beta_max {beta_max:.4e}");
    println!(
        "{:>12} {:>14} {:>10} {:>12}  active tokens",
        "beta", "objective", "rel. gap", "heads differ"
    );
    for p in &points {
        let (s, r) = (&p.report.solve, &p.report);
        println!(
            "{:>12.4e} {:>14.6e} {:>10.1e} {:>12.1e}  {:?}",
            s.beta, s.objective, s.relative_gap, r.recovery_relative_difference, r.active_tokens
        );
    }
    Ok(())
}
