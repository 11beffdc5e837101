//! Learning-rate schedules: linear warmup from 0 over `warmup_steps`, then
//! constant, cosine or linear decay to `min_lr_frac`·lr at the end of
//! training, where "the end" is whichever of the step cap and the time budget
//! comes first (progress = max(step / max_steps, seconds / budget)).

use crate::error::{invalid, Result};

/// The shape of the learning rate after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    Constant,
    Cosine,
    Linear,
}

impl Decay {
    /// Parses `constant`, `cosine` or `linear`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "constant" | "none" => Ok(Decay::Constant),
            "cosine" => Ok(Decay::Cosine),
            "linear" => Ok(Decay::Linear),
            _ => invalid(format!(
                "unknown learning-rate decay '{s}': use constant, cosine or linear"
            )),
        }
    }
}

/// Warmup then decay.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Schedule {
    pub lr: f64,
    pub warmup_steps: usize,
    pub decay: Decay,
    /// The rate at the end of training, as a fraction of `lr`.
    pub min_lr_frac: f64,
}

impl Schedule {
    /// The rate at `step` (0-based) when training is a fraction `progress`
    /// ∈ [0, 1] through.
    pub fn lr_at(&self, step: usize, progress: f64) -> f64 {
        let warm = if self.warmup_steps > 0 && step < self.warmup_steps {
            self.lr * (step + 1) as f64 / self.warmup_steps as f64
        } else {
            self.lr
        };
        let p = progress.clamp(0.0, 1.0);
        let m = self.min_lr_frac.clamp(0.0, 1.0);
        let f = match self.decay {
            Decay::Constant => 1.0,
            Decay::Cosine => m + (1.0 - m) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()),
            Decay::Linear => 1.0 - (1.0 - m) * p,
        };
        warm * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_and_decays() {
        let s = Schedule {
            lr: 1.0,
            warmup_steps: 4,
            decay: Decay::Cosine,
            min_lr_frac: 0.1,
        };
        assert!((s.lr_at(0, 0.0) - 0.25).abs() < 1e-15);
        assert!((s.lr_at(3, 0.0) - 1.0).abs() < 1e-15);
        assert!((s.lr_at(10, 1.0) - 0.1).abs() < 1e-15);
        assert!((s.lr_at(10, 0.5) - 0.55).abs() < 1e-15);
        let l = Schedule {
            decay: Decay::Linear,
            ..s
        };
        assert!((l.lr_at(10, 0.5) - 0.55).abs() < 1e-15);
        let c = Schedule {
            decay: Decay::Constant,
            ..s
        };
        assert_eq!(c.lr_at(10, 0.9), 1.0);
    }
}
