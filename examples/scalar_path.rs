//! A certified regularization path of the scalar program (SPEC §4a) on
//! planted data: every point with its duality gap and the tokens it reads.
//!
//!     cargo run --release --example scalar_path

use convexformer::comm::SingleProcess;
use convexformer::data::synthetic::{generate, SyntheticSpec};
use convexformer::loss::Loss;
use convexformer::operator::TokenOperator;
use convexformer::penalty::Penalty;
use convexformer::problem::Problem;
use convexformer::solver::{beta_grid, beta_max, solve_path, PathStart, SolverOptions};

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
    let op = TokenOperator::new(&data, None);
    let mut problem = Problem::new(op, Loss::Squared, Penalty::GroupL2, 1.0, false)?;
    let betas = beta_grid(beta_max(&problem), 0.01, 8)?;
    println!("planted tokens {planted:?}");
    println!(
        "{:>12} {:>14} {:>10}  active tokens",
        "beta", "objective", "rel. gap"
    );
    let block = problem.block_len();
    let (opts, start) = (SolverOptions::default(), PathStart::default());
    solve_path(
        &mut problem,
        &betas,
        &opts,
        start,
        &SingleProcess,
        |_, _, s| {
            println!(
                "{:>12.4e} {:>14.6e} {:>10.1e}  {:?}",
                s.beta,
                s.certificate.primal,
                s.certificate.relative_gap,
                s.active_blocks(block)
            );
            Ok::<(), convexformer::Error>(())
        },
    )?;
    Ok(())
}
