//! The planted-teacher generator, the default data of the demo.
//!
//! # Model
//!
//! Everything is drawn from one `ChaCha8Rng` seeded with `seed`
//! (`SeedableRng::seed_from_u64`), in this order, so a spec always yields the
//! same data:
//!
//! 1. the planted tokens: `active` distinct indices of `0..n`, drawn with
//!    `rand::seq::index::sample(rng, n, active)` and then sorted, P = {k₁ < … < k_active};
//! 2. the teacher: for each planted token k ∈ P (increasing) and each output
//!    l = 0..c, a weight vector w_{k,l} ∈ R^d of i.i.d. N(0, 1) entries scaled
//!    by 1/√active (drawn in the order k, l, q);
//! 3. the inputs: X ∈ R^{N×n×d} of i.i.d. N(0, 1) entries, drawn sample-major
//!    (sample i, token k, feature q);
//! 4. the noise: ε ∈ R^{N×c} of i.i.d. N(0, 1) entries, sample-major;
//! 5. only when `rho` > 0: the common components u_i ∈ R^d, i = 0..N, of
//!    i.i.d. N(0, 1) entries, sample-major (sample i, feature q).
//!
//! Steps 1–4 do not depend on `rho` and `decay`, so a seed draws the same
//! teacher, e and noise whatever they are. The tokens are (SPEC §5, "data
//! shaped like real hidden states")
//!
//! x_{i,k} = D(√(1−ρ) e_{i,k} + √ρ u_i),  D = diag((1+q)^(−decay)), q = 0..d,
//!
//! with e the draws of step 3: the n tokens of a sample share the component
//! u_i (correlation ρ between any two tokens, feature by feature) and feature
//! q has standard deviation (1+q)^(−decay). With the defaults ρ = 0 and
//! decay = 0, x = e exactly (nothing is rescaled), as before the keys existed.
//!
//! With the clean score s_{i,l} = Σ_{k∈P} ⟨x_{i,k}, w_{k,l}⟩ and
//! z_{i,l} = s_{i,l} + noise·ε_{i,l}, the targets are
//!
//! - `real`: y_{i,l} = z_{i,l} (c outputs);
//! - `binary` (c = 1): y_i = sign(z_{i,0}) ∈ {−1, +1}, with sign(0) = +1;
//! - `classes` (c ≥ 2): label_i = argmax_l z_{i,l} (the first on ties), so c
//!   is the number of classes.
//!
//! Only the tokens in P carry signal; a solver that recovers the planted
//! tokens can be checked against the returned indices.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{checked_len, Dataset, Targets};
use crate::error::{invalid, Result};

/// What the targets of the synthetic data are (see the module's model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Real targets: the noisy teacher scores.
    Real,
    /// ±1 labels: the signs of the noisy teacher score (c = 1).
    Binary,
    /// Class labels: the argmax of the c noisy teacher scores (c ≥ 2).
    Classes,
}

impl TargetKind {
    fn parse(s: &str) -> Option<TargetKind> {
        match s {
            "real" => Some(TargetKind::Real),
            "binary" => Some(TargetKind::Binary),
            "classes" => Some(TargetKind::Classes),
            _ => None,
        }
    }
}

/// The sizes and options of a planted-teacher data set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SyntheticSpec {
    /// N, number of samples (key `N`).
    pub n_samples: usize,
    /// n, tokens per sample (key `n`).
    pub n_tokens: usize,
    /// d, features per token (key `d`).
    pub n_features: usize,
    /// c, outputs, or classes for `kind=classes` (key `c`).
    pub n_outputs: usize,
    /// Number of planted tokens, in 1..=n (key `active`).
    pub active: usize,
    /// Standard deviation of the noise added to the scores (key `noise`).
    pub noise: f64,
    /// Seed of the random generator (key `seed`).
    pub seed: u64,
    /// What the targets are (key `kind`: real, binary or classes).
    pub kind: TargetKind,
    /// ρ in [0, 1): the share of variance the tokens of a sample have in
    /// common (key `rho`).
    pub rho: f64,
    /// Feature q is scaled by (1+q)^(−decay), decay finite and ≥ 0 (key `decay`).
    pub decay: f64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            n_samples: 500,
            n_tokens: 16,
            n_features: 8,
            n_outputs: 1,
            active: 3,
            noise: 0.1,
            seed: 0,
            kind: TargetKind::Real,
            rho: 0.0,
            decay: 0.0,
        }
    }
}

const KEYS: &str = "N, n, d, c, active, noise, seed, kind, rho, decay";

impl SyntheticSpec {
    /// Checks the sizes and the options against each other.
    pub fn validate(&self) -> Result<()> {
        let s = self;
        check_spec(
            "synthetic data",
            &[
                ("N", s.n_samples),
                ("n", s.n_tokens),
                ("d", s.n_features),
                ("c", s.n_outputs),
            ],
            ("active", s.active, s.n_tokens),
            s.noise,
            s.kind,
            s.n_outputs,
        )?;
        if !(s.rho.is_finite() && (0.0..1.0).contains(&s.rho)) {
            return invalid(format!(
                "synthetic data: rho must be in [0, 1), got {}",
                s.rho
            ));
        }
        if !(s.decay.is_finite() && s.decay >= 0.0) {
            return invalid(format!(
                "synthetic data: decay must be finite and ≥ 0, got {}",
                s.decay
            ));
        }
        Ok(())
    }
}

/// The checks every synthetic spec shares, with `what` (the generator's
/// name) leading each message: the `sizes` are at least 1, `count` (key,
/// value, n) is in 1..=n, the noise is finite and ≥ 0, and `kind` suits the
/// c = `n_outputs` outputs.
pub fn check_spec(
    what: &str,
    sizes: &[(&str, usize)],
    (key, count, n): (&str, usize, usize),
    noise: f64,
    kind: TargetKind,
    n_outputs: usize,
) -> Result<()> {
    if let Some((key, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return invalid(format!("{what}: {key} must be at least 1, got 0"));
    }
    if count == 0 || count > n {
        return invalid(format!(
            "{what}: {key} must be in 1..=n = 1..={n}, got {count}"
        ));
    }
    if !(noise.is_finite() && noise >= 0.0) {
        return invalid(format!("{what}: noise must be finite and ≥ 0, got {noise}"));
    }
    match kind {
        TargetKind::Classes if n_outputs < 2 => invalid(format!(
            "{what}: kind=classes needs c ≥ 2 classes, got c = {n_outputs}"
        )),
        TargetKind::Binary if n_outputs != 1 => invalid(format!(
            "{what}: kind=binary needs c = 1, got c = {n_outputs}"
        )),
        _ => Ok(()),
    }
}

/// Parses the CLI form `synthetic` or
/// `synthetic:N=1000,n=16,d=32,c=1,active=3,noise=0.1,seed=0,kind=real,rho=0,decay=0`;
/// keys left out keep their defaults.
pub fn parse(spec: &str) -> Result<SyntheticSpec> {
    let mut out = SyntheticSpec::default();
    parse_spec(spec, "synthetic data", KEYS, |v| {
        match v.key {
            "N" => out.n_samples = v.number()?,
            "n" => out.n_tokens = v.number()?,
            "d" => out.n_features = v.number()?,
            "c" => out.n_outputs = v.number()?,
            "active" => out.active = v.number()?,
            "noise" => out.noise = v.number()?,
            "seed" => out.seed = v.number()?,
            "kind" => out.kind = v.kind()?,
            "rho" => out.rho = v.number()?,
            "decay" => out.decay = v.number()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    out.validate()?;
    Ok(out)
}

/// One `key=value` item of a synthetic spec, for the setter of
/// [`parse_spec`]; its parsers name the spec in their errors.
pub struct SpecItem<'a> {
    /// The key, trimmed.
    pub key: &'a str,
    /// The value text, trimmed.
    pub value: &'a str,
    what: &'a str,
}

impl SpecItem<'_> {
    /// The value as a number (or anything `FromStr`).
    pub fn number<T: std::str::FromStr>(&self) -> Result<T> {
        let (what, key, value) = (self.what, self.key, self.value);
        value
            .parse()
            .or_else(|_| invalid(format!("{what}: bad value '{value}' for key {key}")))
    }

    /// The value as a [`TargetKind`] (`real`, `binary` or `classes`).
    pub fn kind(&self) -> Result<TargetKind> {
        let (what, value) = (self.what, self.value);
        TargetKind::parse(value).map_or_else(
            || {
                invalid(format!(
                    "{what}: bad value '{value}' for key kind \
                     (expected real, binary or classes)"
                ))
            },
            Ok,
        )
    }
}

/// The one parser of the CLI form `synthetic` or `synthetic:key=value,…`:
/// checks the form, refuses repeated keys, and hands each item to `set`,
/// which returns `Ok(false)` for a key it does not know (an error naming
/// `keys`). `what` (such as "synthetic data") leads the messages.
pub fn parse_spec(
    spec: &str,
    what: &str,
    keys: &str,
    mut set: impl FnMut(&SpecItem) -> Result<bool>,
) -> Result<()> {
    let spec = spec.trim();
    let rest = match spec.split_once(':') {
        None if spec == "synthetic" => "",
        Some(("synthetic", rest)) => rest,
        _ => {
            return invalid(format!(
                "'{spec}' is not a synthetic data spec: expected 'synthetic' or \
                 'synthetic:key=value,…' with keys {keys}"
            ))
        }
    };
    let mut seen: Vec<&str> = Vec::new();
    for item in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return invalid(format!("{what}: '{item}' is not key=value (keys: {keys})"));
        };
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return invalid(format!("{what}: key {key} is given twice"));
        }
        seen.push(key);
        if !set(&SpecItem { key, value, what })? {
            return invalid(format!(
                "{what}: unknown key '{key}'; valid keys are {keys}"
            ));
        }
    }
    Ok(())
}

/// Generates the data set of `spec` and returns it with the sorted planted
/// token indices (the model is in the module documentation).
pub fn generate(spec: &SyntheticSpec) -> Result<(Dataset<'static>, Vec<usize>)> {
    spec.validate()?;
    let (n, t, d, c) = (
        spec.n_samples,
        spec.n_tokens,
        spec.n_features,
        spec.n_outputs,
    );
    checked_len("synthetic X", &[n, t, d], 8)?;
    checked_len("synthetic y", &[n, c], 8)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);

    let mut planted = rand::seq::index::sample(&mut rng, t, spec.active).into_vec();
    planted.sort_unstable();
    let scale = 1.0 / (spec.active as f64).sqrt();
    // w[(j·c + l)·d + q]: token planted[j], output l, feature q.
    let w: Vec<f64> = normals(&mut rng, spec.active * c * d)
        .map(|z| z * scale)
        .collect();
    let mut x: Vec<f64> = normals(&mut rng, n * t * d).collect();
    let eps: Vec<f64> = normals(&mut rng, n * c).collect();
    if spec.rho > 0.0 {
        let u: Vec<f64> = normals(&mut rng, n * d).collect();
        let (a, b) = ((1.0 - spec.rho).sqrt(), spec.rho.sqrt());
        for (xi, ui) in x.chunks_exact_mut(t * d).zip(u.chunks_exact(d)) {
            for xk in xi.chunks_exact_mut(d) {
                for (v, &uq) in xk.iter_mut().zip(ui) {
                    *v = a * *v + b * uq;
                }
            }
        }
    }
    if spec.decay > 0.0 {
        let scale: Vec<f64> = (0..d).map(|q| (1.0 + q as f64).powf(-spec.decay)).collect();
        for xk in x.chunks_exact_mut(d) {
            xk.iter_mut().zip(&scale).for_each(|(v, s)| *v *= s);
        }
    }

    let z = noisy_scores(&x, &w, &eps, &planted, spec);
    let ds = targets_of_kind(spec.kind, x, (n, t, d), z, c, Targets::PerSample)?;
    Ok((ds, planted))
}

/// The data set of the noisy scores `z` (c per target row) as targets of
/// `kind`: the scores (`real`), their signs (`binary`, c = 1, sign(0) = +1)
/// or the argmax per row (`classes`, the first on ties).
pub fn targets_of_kind(
    kind: TargetKind,
    x: Vec<f64>,
    shape: (usize, usize, usize),
    z: Vec<f64>,
    c: usize,
    layout: Targets,
) -> Result<Dataset<'static>> {
    match kind {
        TargetKind::Real => Dataset::real(x, shape, z, c, layout),
        TargetKind::Binary => {
            let y = z
                .iter()
                .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
                .collect();
            Dataset::real(x, shape, y, 1, layout)
        }
        TargetKind::Classes => {
            let labels = z.chunks_exact(c).map(argmax).collect();
            Dataset::classes(x, shape, labels, c, layout)
        }
    }
}

/// `count` i.i.d. N(0, 1) draws from `rng`.
pub fn normals(rng: &mut ChaCha8Rng, count: usize) -> impl Iterator<Item = f64> + '_ {
    (0..count).map(move |_| rng.sample::<f64, _>(StandardNormal))
}

/// z_{i,l} = Σ_{k∈P} ⟨x_{i,k}, w_{k,l}⟩ + noise·ε_{i,l}, sample-major (N×c).
fn noisy_scores(
    x: &[f64],
    w: &[f64],
    eps: &[f64],
    planted: &[usize],
    spec: &SyntheticSpec,
) -> Vec<f64> {
    let (t, d, c) = (spec.n_tokens, spec.n_features, spec.n_outputs);
    let mut z = vec![0.0; spec.n_samples * c];
    for (i, zi) in z.chunks_exact_mut(c).enumerate() {
        for (l, zil) in zi.iter_mut().enumerate() {
            let s: f64 = planted
                .iter()
                .enumerate()
                .map(|(j, &k)| {
                    let xk = &x[(i * t + k) * d..(i * t + k + 1) * d];
                    let wk = &w[(j * c + l) * d..(j * c + l + 1) * d];
                    xk.iter().zip(wk).map(|(a, b)| a * b).sum::<f64>()
                })
                .sum();
            *zil = s + spec.noise * eps[i * c + l];
        }
    }
    z
}

/// Index of the largest value, the first on ties.
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (l, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = l;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(spec: &str) -> String {
        parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn parses_defaults_and_keys() {
        assert_eq!(parse("synthetic").unwrap(), SyntheticSpec::default());
        assert_eq!(parse(" synthetic: ").unwrap(), SyntheticSpec::default());
        let s =
            parse("synthetic:N=1000,n=16,d=32,c=4,active=5,noise=0.5,seed=9,kind=classes").unwrap();
        let want = SyntheticSpec {
            n_samples: 1000,
            n_tokens: 16,
            n_features: 32,
            n_outputs: 4,
            active: 5,
            noise: 0.5,
            seed: 9,
            kind: TargetKind::Classes,
            rho: 0.0,
            decay: 0.0,
        };
        assert_eq!(s, want);
        let d = SyntheticSpec::default();
        assert_eq!(
            (d.n_samples, d.n_tokens, d.n_features, d.n_outputs),
            (500, 16, 8, 1)
        );
        assert_eq!(
            (d.active, d.noise, d.seed, d.kind),
            (3, 0.1, 0, TargetKind::Real)
        );
        let json = serde_json::to_string(&parse("synthetic:kind=binary").unwrap()).unwrap();
        assert!(json.contains("\"kind\":\"binary\""), "{json}");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let e = err("synthetic:foo=1");
        assert!(
            e.contains("foo") && e.contains("active, noise, seed, kind, rho, decay"),
            "{e}"
        );
        for bad in ["rho=1", "rho=-0.1", "rho=nan", "rho=inf", "rho=1.5"] {
            let e = err(&format!("synthetic:{bad}"));
            assert!(e.contains("rho must be in [0, 1)"), "{bad}: {e}");
        }
        for bad in ["decay=-1", "decay=nan", "decay=inf"] {
            let e = err(&format!("synthetic:{bad}"));
            assert!(e.contains("decay must be finite and ≥ 0"), "{bad}: {e}");
        }
        assert!(err("synthetic:rho=x").contains("key rho"));
        let s = parse("synthetic:rho=0.8,decay=0.5").unwrap();
        assert_eq!((s.rho, s.decay), (0.8, 0.5));
        let e = err("synthetic:N=abc");
        assert!(e.contains("'abc'") && e.contains("key N"), "{e}");
        let e = err("synthetic:noise=-1");
        assert!(e.contains("noise"), "{e}");
        assert!(err("synthetic:noise=inf").contains("noise"));
        assert!(err("synthetic:noise=nan").contains("noise"));
        let e = err("synthetic:n=4,active=5");
        assert!(e.contains("active") && e.contains("1..=4"), "{e}");
        assert!(err("synthetic:active=0").contains("active"));
        for key in ["N", "n", "d", "c"] {
            let e = err(&format!("synthetic:{key}=0"));
            assert!(e.contains(&format!("{key} must be at least 1")), "{e}");
        }
        assert!(err("synthetic:kind=classes").contains("c ≥ 2"));
        assert!(err("synthetic:kind=binary,c=2").contains("c = 1"));
        assert!(err("synthetic:kind=ordinal").contains("real, binary or classes"));
        assert!(err("synthetic:N").contains("key=value"));
        assert!(err("synthetic:N=1,N=2").contains("twice"));
        assert!(err("synth").contains("not a synthetic data spec"));
        assert!(err("synthetic:seed=-3").contains("seed"));
    }

    #[test]
    fn generate_is_reproducible_and_seeded() {
        let spec = parse("synthetic:N=50,n=10,d=4,c=2,active=3,seed=5").unwrap();
        let (a, pa) = generate(&spec).unwrap();
        let (b, pb) = generate(&spec).unwrap();
        assert_eq!((&a.x, &a.y, &pa), (&b.x, &b.y, &pb));
        assert_eq!(a.shape(), (50, 10, 4, 2));
        assert_eq!(pa.len(), 3);
        assert!(pa.windows(2).all(|w| w[0] < w[1]) && pa.iter().all(|&k| k < 10));
        let other = SyntheticSpec { seed: 6, ..spec };
        let (c, _) = generate(&other).unwrap();
        assert_ne!(a.x, c.x);
    }

    #[test]
    fn real_targets_follow_the_planted_teacher() {
        // Without noise, y is a linear function of the planted tokens only:
        // changing an unplanted token of a sample must not change its score,
        // which we check through the least-squares residual of y on X_P.
        let spec = parse("synthetic:N=200,n=6,d=3,active=2,noise=0").unwrap();
        let (ds, planted) = generate(&spec).unwrap();
        // Features of the planted tokens, N × (active·d).
        let m = planted.len() * 3;
        let rows: Vec<Vec<f64>> = (0..ds.n_samples)
            .map(|i| {
                planted
                    .iter()
                    .flat_map(|&k| ds.token(i, k).to_vec())
                    .collect()
            })
            .collect();
        // Normal equations (AᵀA) w = Aᵀy solved by Gaussian elimination.
        let mut a = vec![vec![0.0; m + 1]; m];
        for (r, &y) in rows.iter().zip(&ds.y) {
            for p in 0..m {
                for q in 0..m {
                    a[p][q] += r[p] * r[q];
                }
                a[p][m] += r[p] * y;
            }
        }
        for p in 0..m {
            for q in p + 1..m {
                let f = a[q][p] / a[p][p];
                let pivot = a[p].clone();
                for (v, pv) in a[q][p..].iter_mut().zip(&pivot[p..]) {
                    *v -= f * pv;
                }
            }
        }
        let mut w = vec![0.0; m];
        for p in (0..m).rev() {
            let s: f64 = (p + 1..m).map(|k| a[p][k] * w[k]).sum();
            w[p] = (a[p][m] - s) / a[p][p];
        }
        let max_res = rows
            .iter()
            .zip(&ds.y)
            .map(|(r, y)| (r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() - y).abs())
            .fold(0.0, f64::max);
        assert!(max_res < 1e-9, "residual {max_res}");
    }

    #[test]
    fn binary_and_class_labels() {
        let (ds, _) = generate(&parse("synthetic:N=300,kind=binary").unwrap()).unwrap();
        assert!(ds.y.iter().all(|&v| v == 1.0 || v == -1.0));
        assert!(ds.y.contains(&1.0) && ds.y.contains(&-1.0));
        let (ds, planted) =
            generate(&parse("synthetic:N=300,c=4,kind=classes,active=5").unwrap()).unwrap();
        let labels = ds.labels.as_ref().unwrap();
        assert_eq!(ds.n_outputs, 4);
        assert_eq!(planted.len(), 5);
        assert!(labels.iter().all(|&l| l < 4));
        assert!((0..4).all(|l| labels.contains(&l)), "every class occurs");
    }

    #[test]
    fn generate_refuses_bad_specs() {
        let spec = SyntheticSpec {
            active: 20,
            ..SyntheticSpec::default()
        };
        assert!(generate(&spec).is_err());
        let huge = SyntheticSpec {
            n_samples: 1 << 40,
            ..SyntheticSpec::default()
        };
        let e = generate(&huge).unwrap_err();
        assert!(matches!(e, crate::Error::TooLarge(_)), "{e}");
    }

    /// FNV-1a over the bits of X, y and the labels.
    fn data_hash(ds: &Dataset) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let labels = ds.labels.iter().flatten().map(|&l| l as u64);
        let bits = ds.x.iter().chain(&ds.y).map(|v| v.to_bits()).chain(labels);
        for b in bits {
            h = (h ^ b).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    /// The data of rho = 0, decay = 0 (the defaults) are bit for bit those
    /// of the generator before the keys existed: the hashes below were
    /// computed by that code.
    #[test]
    fn defaults_give_the_data_of_before() {
        let cases = [
            (
                "synthetic:N=20,n=5,d=3,c=2,active=2,seed=3",
                0x7da3_ea33_54db_8e6a_u64,
            ),
            (
                "synthetic:N=30,n=4,d=6,kind=binary,seed=1",
                0x9fea_cf47_ea77_ce1a,
            ),
            (
                "synthetic:N=25,n=6,d=2,c=3,kind=classes,active=3,noise=0.5",
                0xb282_c84b_ac5b_dec9,
            ),
        ];
        let got: Vec<u64> = cases
            .iter()
            .map(|(spec, _)| data_hash(&generate(&parse(spec).unwrap()).unwrap().0))
            .collect();
        println!("HASH {got:#x?}");
        for ((spec, want), h) in cases.iter().zip(got) {
            assert_eq!(h, *want, "{spec}");
        }
    }

    #[test]
    fn explicit_zero_rho_and_decay_are_the_defaults() {
        let a = generate(&parse("synthetic:N=40,n=5,d=3,c=2,seed=4").unwrap()).unwrap();
        let b =
            generate(&parse("synthetic:N=40,n=5,d=3,c=2,seed=4,rho=0,decay=0").unwrap()).unwrap();
        assert_eq!((&a.0.x, &a.0.y, &a.1), (&b.0.x, &b.0.y, &b.1));
        // rho and decay change X but not the planted tokens (drawn first).
        let c =
            generate(&parse("synthetic:N=40,n=5,d=3,c=2,seed=4,rho=0.5,decay=1").unwrap()).unwrap();
        assert_eq!(a.1, c.1);
        assert_ne!(a.0.x, c.0.x);
    }

    /// Two tokens of a sample correlate with coefficient ρ (per feature), and
    /// feature q has standard deviation (1+q)^(−decay).
    #[test]
    fn rho_correlates_tokens_and_decay_scales_features() {
        let (n, d) = (20_000, 4);
        for (rho, decay) in [(0.0, 0.0), (0.3, 0.0), (0.8, 0.5), (0.5, 1.0)] {
            let spec = SyntheticSpec {
                n_samples: n,
                n_tokens: 3,
                n_features: d,
                active: 1,
                rho,
                decay,
                ..SyntheticSpec::default()
            };
            let (ds, _) = generate(&spec).unwrap();
            for q in 0..d {
                let sd = (1.0 + q as f64).powf(-decay);
                let col =
                    |k: usize| -> Vec<f64> { (0..n).map(|i| ds.token(i, k)[q] / sd).collect() };
                let (a, b) = (col(0), col(2));
                let var_a = a.iter().map(|v| v * v).sum::<f64>() / n as f64;
                let var_b = b.iter().map(|v| v * v).sum::<f64>() / n as f64;
                let cov = a.iter().zip(&b).map(|(u, v)| u * v).sum::<f64>() / n as f64;
                // Unit variance once D is undone: the scale follows decay.
                assert!(
                    (var_a - 1.0).abs() < 0.05,
                    "rho {rho} decay {decay} q {q}: {var_a}"
                );
                assert!(
                    (var_b - 1.0).abs() < 0.05,
                    "rho {rho} decay {decay} q {q}: {var_b}"
                );
                let corr = cov / (var_a * var_b).sqrt();
                assert!((corr - rho).abs() < 0.03, "rho {rho} q {q}: corr {corr}");
            }
        }
    }

    /// The one spec parser: the form, repeated and unknown keys, values.
    #[test]
    fn the_shared_parser_names_its_generator() {
        let mut got = Vec::new();
        parse_spec(" synthetic: a = 1 , b=x ", "test data", "a, b", |v| {
            got.push((v.key.to_string(), v.value.to_string()));
            Ok(true)
        })
        .unwrap();
        assert_eq!(got, [("a".into(), "1".into()), ("b".into(), "x".into())]);
        let e = parse_spec("synthetic:z=1", "test data", "a, b", |_| Ok(false)).unwrap_err();
        assert!(e
            .to_string()
            .contains("test data: unknown key 'z'; valid keys are a, b"));
        let e = parse_spec("synthetic:a=q", "test data", "a", |v| {
            v.number::<u32>().map(|_| true)
        })
        .unwrap_err();
        assert!(e.to_string().contains("test data: bad value 'q' for key a"));
        let e = crate::sequence::parse_sequence_synthetic("synthetic:active=2").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("synthetic sequence data: unknown key 'active'"),
            "{msg}"
        );
        assert!(msg.contains("heads, support"), "{msg}");
        // The sequence generator has no common component or feature decay:
        // it refuses rho and decay as unknown keys.
        for key in ["rho", "decay"] {
            let e = crate::sequence::parse_sequence_synthetic(&format!("synthetic:{key}=0"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("unknown key '{key}'")), "{e}");
        }
    }
}
