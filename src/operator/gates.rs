//! Fixed gates of the attention + gated-ReLU model (SPEC §3.4, §4d):
//! G_1..G_P ∈ R^{n×d} and the indicators D_p(X) = 1[⟨X, G_p⟩ ≥ 0].
//!
//! Gates are drawn once (seeded) and stored with the model, so new data is
//! gated exactly as the training data was.

use super::token::GateMasks;
use crate::data::Dataset;
use crate::error::{invalid, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Where gate matrices come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    /// i.i.d. N(0, 1) entries.
    Gaussian,
    /// Token matrices of random training samples (convex ReLU-network practice).
    Samples,
}

impl GateKind {
    pub fn parse(s: &str) -> Result<GateKind> {
        match s {
            "gaussian" => Ok(GateKind::Gaussian),
            "samples" => Ok(GateKind::Samples),
            _ => invalid(format!("unknown gate kind '{s}': use gaussian or samples")),
        }
    }
}

/// How to draw the gates.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct GateSpec {
    pub n_gates: usize,
    pub kind: GateKind,
    /// Token-wise gates: G_p is zero outside one token row (row p mod n), so
    /// D_p reads one token; otherwise the gate sees all tokens.
    pub tokenwise: bool,
    pub seed: u64,
}

/// P gate matrices, P×n×d.
#[derive(Clone, Debug)]
pub struct Gates {
    pub spec: GateSpec,
    pub n_tokens: usize,
    pub n_features: usize,
    pub vectors: Vec<f64>,
}

impl Gates {
    /// Draws the gates for data shaped like `train`.
    pub fn draw(spec: GateSpec, train: &Dataset) -> Result<Gates> {
        if spec.n_gates == 0 {
            return invalid("the gated model needs at least one gate (--gates P with P ≥ 1)");
        }
        let (n, t, d, _) = train.shape();
        let len = crate::data::checked_len("gates", &[spec.n_gates, t, d], 8)?;
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let mut vectors = Vec::with_capacity(len);
        for _ in 0..spec.n_gates {
            match spec.kind {
                GateKind::Gaussian => {
                    vectors.extend((0..t * d).map(|_| rng.sample::<f64, _>(StandardNormal)))
                }
                GateKind::Samples => {
                    vectors.extend_from_slice(train.sample(rng.random_range(0..n)))
                }
            }
        }
        if spec.tokenwise {
            for (p, g) in vectors.chunks_exact_mut(t * d).enumerate() {
                let keep = p % t;
                for (k, row) in g.chunks_exact_mut(d).enumerate() {
                    if k != keep {
                        row.iter_mut().for_each(|v| *v = 0.0);
                    }
                }
            }
        }
        Ok(Gates {
            spec,
            n_tokens: t,
            n_features: d,
            vectors,
        })
    }

    /// D_p(X_i) for every sample and gate.
    pub fn masks(&self, data: &Dataset) -> Result<GateMasks> {
        if (data.n_tokens, data.n_features) != (self.n_tokens, self.n_features) {
            return invalid(format!(
                "the gates are {}×{}, the data's token matrices {}×{}",
                self.n_tokens, self.n_features, data.n_tokens, data.n_features
            ));
        }
        let p = self.spec.n_gates;
        let size = self.n_tokens * self.n_features;
        let mut mask = Vec::with_capacity(data.n_samples * p);
        for i in 0..data.n_samples {
            let x = data.sample(i);
            for g in self.vectors.chunks_exact(size) {
                mask.push(super::kernels::dot(x, g) >= 0.0);
            }
        }
        Ok(GateMasks { n_gates: p, mask })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Loss;
    use crate::testutil::random_instance;

    #[test]
    fn gates_are_seeded_tokenwise_and_sign_tests() {
        let ds = random_instance(30, 4, 3, 1, Loss::Squared, 0);
        for kind in [GateKind::Gaussian, GateKind::Samples] {
            let spec = GateSpec {
                n_gates: 5,
                kind,
                tokenwise: true,
                seed: 9,
            };
            let g = Gates::draw(spec, &ds).unwrap();
            assert_eq!(g.vectors, Gates::draw(spec, &ds).unwrap().vectors);
            // Token-wise: gate p lives on row p mod n only.
            for (p, gv) in g.vectors.chunks_exact(12).enumerate() {
                for (k, row) in gv.chunks_exact(3).enumerate() {
                    if k != p % 4 {
                        assert!(row.iter().all(|&v| v == 0.0));
                    }
                }
            }
            let m = g.masks(&ds).unwrap();
            for i in 0..30 {
                for p in 0..5 {
                    let s: f64 = ds
                        .sample(i)
                        .iter()
                        .zip(&g.vectors[p * 12..(p + 1) * 12])
                        .map(|(a, b)| a * b)
                        .sum();
                    assert_eq!(m.mask[i * 5 + p], s >= 0.0);
                }
            }
        }
        assert!(Gates::draw(
            GateSpec {
                n_gates: 0,
                kind: GateKind::Gaussian,
                tokenwise: false,
                seed: 0
            },
            &ds
        )
        .is_err());
        assert!(GateKind::parse("relu").is_err());
    }
}
