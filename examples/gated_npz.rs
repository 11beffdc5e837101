//! The attention + gated-ReLU program (SPEC §4d) fitted from an `.npz` file
//! (`X`: N×n×d, `y`: N or N×c), in one expression of the `Fit` facade.
//! Without an argument it writes a planted data set to a temporary file
//! first.
//!
//!     cargo run --release --example gated_npz [-- DATA.npz]

use convexformer::data::npz::{read_npz, write_npz};
use convexformer::data::synthetic::{generate, SyntheticSpec};
use convexformer::fit::Fit;
use convexformer::operator::{GateKind, GateSpec};

fn main() -> convexformer::Result<()> {
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let p = std::env::temp_dir().join("convexformer-gated-example.npz");
            let (data, _) = generate(&SyntheticSpec {
                n_samples: 400,
                n_tokens: 8,
                n_features: 4,
                seed: 3,
                ..Default::default()
            })?;
            write_npz(&p, &data)?;
            p
        }
    };
    let data = read_npz(&path)?;
    let gates = GateSpec {
        n_gates: 4,
        kind: GateKind::Gaussian,
        tokenwise: false,
        seed: 0,
    };
    let fitted = Fit::gated(gates)
        .intercept(true)
        .beta_frac(0.05)
        .fit(&data)?;
    let r = &fitted.report;
    println!(
        "{}: objective {:.6e}, relative gap {:.1e} ({}), {} heads, train error {:.4}",
        path.display(),
        r.solve.objective,
        r.solve.relative_gap,
        if r.solve.converged {
            "certified"
        } else {
            "NOT converged"
        },
        r.n_heads,
        r.train_error
    );
    println!("active (gate, token) pairs: {:?}", r.active_gate_tokens);
    Ok(())
}
