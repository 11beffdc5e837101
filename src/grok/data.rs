//! Modular-arithmetic data (Power et al. 2022): every pair (x, y) ∈ Z_p × Z_p
//! of one operation x ∘ y mod p, written as the four tokens `x op y =`, the
//! answer as the target class in 0..p.
//!
//! Token ids: the residues 0..p are themselves, the operation symbols follow
//! (p + index of the operation in [`ModOp::ALL`], six of them), and `=` is
//! the last id, p + 6, so the vocabulary has p + 7 tokens whatever the operation.

use crate::data::Dataset;
use crate::error::{invalid, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Tokens per example: `x op y =`.
pub const SEQ_LEN: usize = 4;

/// The operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModOp {
    /// x + y.
    Add,
    /// x − y.
    Sub,
    /// x · y.
    Mul,
    /// x · y⁻¹ (y ≠ 0; the inverse is y^{p−2} by Fermat).
    Div,
    /// x² + xy + y² (symmetric in x and y).
    Poly,
    /// x³ + xy (not symmetric: x³ + xy ≠ y³ + yx in general).
    Poly2,
}

impl ModOp {
    pub const ALL: [ModOp; 6] = [
        ModOp::Add,
        ModOp::Sub,
        ModOp::Mul,
        ModOp::Div,
        ModOp::Poly,
        ModOp::Poly2,
    ];

    /// Parses add|+, sub|-, mul|*|x, div|/, poly (x²+xy+y²), poly2 (x³+xy).
    pub fn parse(s: &str) -> Result<ModOp> {
        match s.trim().to_ascii_lowercase().as_str() {
            "add" | "+" | "plus" => Ok(ModOp::Add),
            "sub" | "-" | "minus" => Ok(ModOp::Sub),
            "mul" | "*" | "x" | "times" => Ok(ModOp::Mul),
            "div" | "/" => Ok(ModOp::Div),
            "poly" | "x2+xy+y2" => Ok(ModOp::Poly),
            "poly2" | "x3+xy" => Ok(ModOp::Poly2),
            _ => invalid(format!(
                "unknown operation '{s}': use add, sub, mul, div, poly (x²+xy+y²) or poly2 (x³+xy)"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModOp::Add => "add",
            ModOp::Sub => "sub",
            ModOp::Mul => "mul",
            ModOp::Div => "div",
            ModOp::Poly => "poly",
            ModOp::Poly2 => "poly2",
        }
    }

    /// The formula, for reports.
    pub fn formula(&self) -> &'static str {
        match self {
            ModOp::Add => "x + y",
            ModOp::Sub => "x - y",
            ModOp::Mul => "x * y",
            ModOp::Div => "x / y",
            ModOp::Poly => "x^2 + x*y + y^2",
            ModOp::Poly2 => "x^3 + x*y",
        }
    }

    /// Index among the operation tokens.
    pub fn index(&self) -> usize {
        ModOp::ALL.iter().position(|o| o == self).expect("listed")
    }

    /// x ∘ y mod p, or None where undefined (division by 0).
    pub fn apply(&self, x: u64, y: u64, p: u64) -> Option<u64> {
        let (x, y) = (x % p, y % p);
        Some(match self {
            ModOp::Add => (x + y) % p,
            ModOp::Sub => (x + p - y) % p,
            ModOp::Mul => x * y % p,
            ModOp::Div => {
                if y == 0 {
                    return None;
                }
                x * mod_pow(y, p - 2, p) % p
            }
            ModOp::Poly => (x * x % p + x * y % p + y * y % p) % p,
            ModOp::Poly2 => (x * x % p * x % p + x * y % p) % p,
        })
    }
}

/// b^e mod m (m < 2³²).
pub fn mod_pow(mut b: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1 % m;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % m;
        }
        b = b * b % m;
        e >>= 1;
    }
    r
}

/// Is `p` prime (trial division; p is small)?
pub fn is_prime(p: u64) -> bool {
    if p < 2 {
        return false;
    }
    let mut q = 2;
    while q * q <= p {
        if p % q == 0 {
            return false;
        }
        q += 1;
    }
    true
}

/// One split of the examples: token ids (row-major, [`SEQ_LEN`] per
/// example), answers, and the operand pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct Examples {
    pub tokens: Vec<u32>,
    pub answers: Vec<u32>,
    pub pairs: Vec<(u32, u32)>,
}

impl Examples {
    pub fn len(&self) -> usize {
        self.answers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    fn push(&mut self, x: u32, y: u32, ans: u32, op_tok: u32, eq_tok: u32) {
        self.tokens.extend_from_slice(&[x, op_tok, y, eq_tok]);
        self.answers.push(ans);
        self.pairs.push((x, y));
    }

    /// The examples `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Examples {
        let mut e = Examples {
            tokens: Vec::with_capacity(idx.len() * SEQ_LEN),
            answers: Vec::with_capacity(idx.len()),
            pairs: Vec::with_capacity(idx.len()),
        };
        for &i in idx {
            e.tokens
                .extend_from_slice(&self.tokens[i * SEQ_LEN..(i + 1) * SEQ_LEN]);
            e.answers.push(self.answers[i]);
            e.pairs.push(self.pairs[i]);
        }
        e
    }
}

/// The task: operation, modulus, train/validation split.
#[derive(Clone, Debug)]
pub struct ModularTask {
    pub op: ModOp,
    pub p: u32,
    pub train_frac: f64,
    pub split_seed: u64,
    pub train: Examples,
    pub val: Examples,
}

impl ModularTask {
    /// All pairs, shuffled with `split_seed`; the first round(frac·N) train.
    pub fn new(op: ModOp, p: u32, train_frac: f64, split_seed: u64) -> Result<ModularTask> {
        if !is_prime(p as u64) {
            return invalid(format!(
                "p must be a prime (so that division is defined), got {p}"
            ));
        }
        if p > 4093 {
            return invalid(format!(
                "p = {p} gives {} pairs: use p ≤ 4093",
                (p as u64).pow(2)
            ));
        }
        if !(train_frac > 0.0 && train_frac < 1.0) {
            return invalid(format!(
                "the train fraction must be in (0, 1), got {train_frac}"
            ));
        }
        let all = all_examples(op, p);
        let n = all.len();
        let n_train = ((n as f64) * train_frac).round() as usize;
        if n_train == 0 || n_train >= n {
            return invalid(format!(
                "train fraction {train_frac} of {n} pairs leaves an empty train or validation set"
            ));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(split_seed));
        let (tr, va) = idx.split_at(n_train);
        Ok(ModularTask {
            op,
            p,
            train_frac,
            split_seed,
            train: all.select(tr),
            val: all.select(va),
        })
    }

    /// Vocabulary size: p residues, 6 operation symbols, `=` (p + 7).
    pub fn vocab(&self) -> usize {
        vocab_size(self.p)
    }
}

/// p residues + 6 operation tokens + `=`.
pub fn vocab_size(p: u32) -> usize {
    p as usize + ModOp::ALL.len() + 1
}

/// The id of `=`.
pub fn eq_token(p: u32) -> u32 {
    p + ModOp::ALL.len() as u32
}

/// Every pair (x, y), x-major, without y = 0 for division.
pub fn all_examples(op: ModOp, p: u32) -> Examples {
    let mut e = Examples {
        tokens: Vec::new(),
        answers: Vec::new(),
        pairs: Vec::new(),
    };
    let op_tok = p + op.index() as u32;
    let eq = eq_token(p);
    for x in 0..p {
        for y in 0..p {
            if let Some(a) = op.apply(x as u64, y as u64, p as u64) {
                e.push(x, y, a as u32, op_tok, eq);
            }
        }
    }
    e
}

/// The examples as a [`Dataset`] for the core solver: each token one-hot
/// (n = 4 rows of d = vocab features), the answer as one of p classes.
pub fn one_hot_dataset(e: &Examples, p: u32) -> Result<Dataset<'static>> {
    let v = vocab_size(p);
    let n = e.len();
    let mut x = vec![0.0; n * SEQ_LEN * v];
    for (i, t) in e.tokens.chunks_exact(SEQ_LEN).enumerate() {
        for (k, &tok) in t.iter().enumerate() {
            x[(i * SEQ_LEN + k) * v + tok as usize] = 1.0;
        }
    }
    let labels = e.answers.iter().map(|&a| a as usize).collect();
    Dataset::new_classes(x, (n, SEQ_LEN, v), labels, p as usize)
}
