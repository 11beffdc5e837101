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
use rand_distr::{Exp1, StandardNormal};

use super::data::SequenceDataset;
use super::recovery::{head_predictions, SequenceHead};
use crate::data::checked_len;
use crate::data::synthetic::TargetKind;
use crate::error::{invalid, Result};

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
        for (key, v) in [
            ("N", s.n_samples),
            ("n", s.n_tokens),
            ("d", s.n_features),
            ("c", s.n_outputs),
            ("heads", s.heads),
        ] {
            if v == 0 {
                return invalid(format!(
                    "synthetic sequence data: {key} must be at least 1, got 0"
                ));
            }
        }
        if s.support == 0 || s.support > s.n_tokens {
            return invalid(format!(
                "synthetic sequence data: support must be in 1..=n = 1..={}, got {}",
                s.n_tokens, s.support
            ));
        }
        if !(s.noise.is_finite() && s.noise >= 0.0) {
            return invalid(format!(
                "synthetic sequence data: noise must be finite and ≥ 0, got {}",
                s.noise
            ));
        }
        match s.kind {
            TargetKind::Classes if s.n_outputs < 2 => invalid(format!(
                "synthetic sequence data: kind=classes needs c ≥ 2, got c = {}",
                s.n_outputs
            )),
            TargetKind::Binary if s.n_outputs != 1 => invalid(format!(
                "synthetic sequence data: kind=binary needs c = 1, got c = {}",
                s.n_outputs
            )),
            _ => Ok(()),
        }
    }
}

/// Parses `synthetic` or `synthetic:key=value,…` (keys: N, n, d, c, heads,
/// support, noise, seed, kind).
pub fn parse_sequence_synthetic(spec: &str) -> Result<SequenceSyntheticSpec> {
    let spec = spec.trim();
    let rest = match spec.split_once(':') {
        None if spec == "synthetic" => "",
        Some(("synthetic", rest)) => rest,
        _ => {
            return invalid(format!(
                "'{spec}' is not a synthetic data spec: expected 'synthetic' or \
                 'synthetic:key=value,…' with keys {KEYS}"
            ))
        }
    };
    let mut out = SequenceSyntheticSpec::default();
    let mut seen: Vec<&str> = Vec::new();
    for item in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return invalid(format!(
                "synthetic sequence data: '{item}' is not key=value (keys: {KEYS})"
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return invalid(format!("synthetic sequence data: key {key} is given twice"));
        }
        seen.push(key);
        fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
            value.parse().or_else(|_| {
                invalid(format!(
                    "synthetic sequence data: bad value '{value}' for key {key}"
                ))
            })
        }
        match key {
            "N" => out.n_samples = num(key, value)?,
            "n" => out.n_tokens = num(key, value)?,
            "d" => out.n_features = num(key, value)?,
            "c" => out.n_outputs = num(key, value)?,
            "heads" => out.heads = num(key, value)?,
            "support" => out.support = num(key, value)?,
            "noise" => out.noise = num(key, value)?,
            "seed" => out.seed = num(key, value)?,
            "kind" => {
                out.kind = match value {
                    "real" => TargetKind::Real,
                    "binary" => TargetKind::Binary,
                    "classes" => TargetKind::Classes,
                    _ => {
                        return invalid(format!(
                            "synthetic sequence data: bad value '{value}' for key kind \
                             (expected real, binary or classes)"
                        ))
                    }
                }
            }
            _ => {
                return invalid(format!(
                    "synthetic sequence data: unknown key '{key}'; valid keys are {KEYS}"
                ))
            }
        }
    }
    out.validate()?;
    Ok(out)
}

/// Generates the data of `spec` and returns it with the planted heads.
pub fn generate_sequence(
    spec: &SequenceSyntheticSpec,
) -> Result<(SequenceDataset, Vec<SequenceHead>)> {
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
        let value = (0..d * c)
            .map(|_| rng.sample::<f64, _>(StandardNormal) * scale)
            .collect();
        heads.push(SequenceHead {
            mixing,
            value,
            output: 1.0,
        });
    }
    let x: Vec<f64> = (0..n_s * n * d)
        .map(|_| rng.sample::<f64, _>(StandardNormal))
        .collect();
    let eps: Vec<f64> = (0..n_s * n * c)
        .map(|_| rng.sample::<f64, _>(StandardNormal))
        .collect();
    // Clean targets from the heads, with zero targets as a placeholder.
    let clean = SequenceDataset::new_real(x, (n_s, n, d), vec![0.0; n_s * n * c], c)?;
    let z: Vec<f64> = head_predictions(&heads, &clean)
        .iter()
        .zip(&eps)
        .map(|(s, e)| s + spec.noise * e)
        .collect();
    let x = clean.x;
    let ds = match spec.kind {
        TargetKind::Real => SequenceDataset::new_real(x, (n_s, n, d), z, c)?,
        TargetKind::Binary => {
            let y = z
                .iter()
                .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
                .collect();
            SequenceDataset::new_real(x, (n_s, n, d), y, 1)?
        }
        TargetKind::Classes => {
            let labels = z
                .chunks_exact(c)
                .map(|row| {
                    let mut best = 0;
                    for (l, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = l;
                        }
                    }
                    best
                })
                .collect();
            SequenceDataset::new_classes(x, (n_s, n, d), labels, c)?
        }
    };
    Ok((ds, heads))
}
