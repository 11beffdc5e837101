//! A planted-heads generator for the sequence program.
//!
//! # Model
//!
//! Everything is drawn from one `ChaCha8Rng` seeded with `seed`, in this
//! order:
//!
//! 1. for each planted head j = 0..heads: the mixing matrix W_j, row by row:
//!    `support` distinct columns of 0..n (`rand::seq::index::sample`, sorted)
//!    with weights e_k/Σe (e_k i.i.d. Exp(1)), so W_j is sparse and
//!    row-stochastic; then V_j ∈ R^{d×c} of i.i.d. N(0, 1)/√heads entries
//!    (row-major); o_j = 1;
//! 2. the inputs X ∈ R^{N×n×d}, i.i.d. N(0, 1), sample-major;
//! 3. the noise ε ∈ R^{N×n×c}, i.i.d. N(0, 1).
//!
//! With Z_i = Σ_j o_j W_j X_i V_j + noise·ε_i, the targets are Z_i (`real`),
//! sign(Z_i) per position (`binary`, c = 1, sign(0) = +1), or the argmax
//! over the c outputs per position (`classes`).
//!
//! The CLI form is `synthetic:N=200,n=8,d=4,c=1,heads=2,support=2,noise=0.1,seed=0,kind=real`
//! (keys left out keep these defaults).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Exp1;

use super::recovery::{head_predictions, SequenceHead};
use crate::data::synthetic::{check_spec, normals, parse_spec, targets_of_kind, TargetKind};
use crate::data::{checked_len, Dataset, Targets};
use crate::error::Result;

/// Sizes and options of a planted-heads sequence data set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SequenceSyntheticSpec {
    /// N (key `N`).
    pub n_samples: usize,
    /// n, tokens per sample (key `n`).
    pub n_tokens: usize,
    /// d (key `d`).
    pub n_features: usize,
    /// c, outputs or classes per position (key `c`).
    pub n_outputs: usize,
    /// Planted heads (key `heads`).
    pub heads: usize,
    /// Nonzeros per row of each W_j, in 1..=n (key `support`).
    pub support: usize,
    /// Noise standard deviation (key `noise`).
    pub noise: f64,
    /// Seed (key `seed`).
    pub seed: u64,
    /// Targets: real, binary or classes (key `kind`).
    pub kind: TargetKind,
}

impl Default for SequenceSyntheticSpec {
    fn default() -> Self {
        SequenceSyntheticSpec {
            n_samples: 200,
            n_tokens: 8,
            n_features: 4,
            n_outputs: 1,
            heads: 2,
            support: 2,
            noise: 0.1,
            seed: 0,
            kind: TargetKind::Real,
        }
    }
}

const KEYS: &str = "N, n, d, c, heads, support, noise, seed, kind";

impl SequenceSyntheticSpec {
    pub fn validate(&self) -> Result<()> {
        let s = self;
        check_spec(
            WHAT,
            &[
                ("N", s.n_samples),
                ("n", s.n_tokens),
                ("d", s.n_features),
                ("c", s.n_outputs),
                ("heads", s.heads),
            ],
            ("support", s.support, s.n_tokens),
            s.noise,
            s.kind,
            s.n_outputs,
        )
    }
}

/// Leads the messages about this generator's specs.
const WHAT: &str = "synthetic sequence data";

/// Parses `synthetic` or `synthetic:key=value,…` (keys: N, n, d, c, heads,
/// support, noise, seed, kind) with the shared spec parser.
pub fn parse_sequence_synthetic(spec: &str) -> Result<SequenceSyntheticSpec> {
    let mut out = SequenceSyntheticSpec::default();
    parse_spec(spec, WHAT, KEYS, |v| {
        match v.key {
            "N" => out.n_samples = v.number()?,
            "n" => out.n_tokens = v.number()?,
            "d" => out.n_features = v.number()?,
            "c" => out.n_outputs = v.number()?,
            "heads" => out.heads = v.number()?,
            "support" => out.support = v.number()?,
            "noise" => out.noise = v.number()?,
            "seed" => out.seed = v.number()?,
            "kind" => out.kind = v.kind()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    out.validate()?;
    Ok(out)
}

/// Generates the data of `spec` and returns it with the planted heads.
pub fn generate_sequence(
    spec: &SequenceSyntheticSpec,
) -> Result<(Dataset<'static>, Vec<SequenceHead>)> {
    spec.validate()?;
    let (n_s, n, d, c) = (
        spec.n_samples,
        spec.n_tokens,
        spec.n_features,
        spec.n_outputs,
    );
    checked_len("synthetic X", &[n_s, n, d], 8)?;
    checked_len("synthetic y", &[n_s, n, c], 8)?;
    checked_len("planted heads", &[spec.heads, n, n], 8)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let scale = 1.0 / (spec.heads as f64).sqrt();
    let mut heads = Vec::with_capacity(spec.heads);
    for _ in 0..spec.heads {
        let mut mixing = vec![0.0; n * n];
        for r in 0..n {
            let mut cols = rand::seq::index::sample(&mut rng, n, spec.support).into_vec();
            cols.sort_unstable();
            let w: Vec<f64> = cols.iter().map(|_| rng.sample::<f64, _>(Exp1)).collect();
            let total: f64 = w.iter().sum();
            for (&k, wk) in cols.iter().zip(&w) {
                mixing[r * n + k] = wk / total;
            }
        }
        let value = normals(&mut rng, d * c).map(|z| z * scale).collect();
        heads.push(SequenceHead {
            mixing,
            value,
            output: 1.0,
        });
    }
    let x: Vec<f64> = normals(&mut rng, n_s * n * d).collect();
    let eps: Vec<f64> = normals(&mut rng, n_s * n * c).collect();
    // Clean targets from the heads, with zero targets as a placeholder.
    let clean = Dataset::new_real_per_position(x, (n_s, n, d), vec![0.0; n_s * n * c], c)?;
    let z: Vec<f64> = head_predictions(&heads, &clean)
        .iter()
        .zip(&eps)
        .map(|(s, e)| s + spec.noise * e)
        .collect();
    let ds = targets_of_kind(
        spec.kind,
        clean.x.into_owned(),
        (n_s, n, d),
        z,
        c,
        Targets::PerPosition,
    )?;
    Ok((ds, heads))
}
