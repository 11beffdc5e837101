//! The warm start a resumed path continues from: the coefficients and
//! intercepts of the last solve (finished or interrupted: any point is a
//! valid start, and the interrupted one is the closest), in
//! `checkpoint.safetensors`, rewritten atomically after every point.

use anyhow::{bail, Context};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

pub const CHECKPOINT: &str = "checkpoint.safetensors";
const KEY: &str = "convexformer-checkpoint";

/// A solver state: which point of the path it belongs to, and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Index of the point in the β grid.
    pub point: usize,
    pub beta: f64,
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    point: usize,
    beta: f64,
}

fn le_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Checkpoint {
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(CHECKPOINT);
        let (c, b) = (le_bytes(&self.coef), le_bytes(&self.intercept));
        let views = vec![
            (
                "coef",
                TensorView::new(Dtype::F64, vec![self.coef.len()], &c)?,
            ),
            (
                "intercept",
                TensorView::new(Dtype::F64, vec![self.intercept.len()], &b)?,
            ),
        ];
        let meta = serde_json::to_string(&Meta {
            point: self.point,
            beta: self.beta,
        })?;
        let bytes = safetensors::serialize(views, Some(HashMap::from([(KEY.to_string(), meta)])))?;
        super::common::write_file(&path, bytes)
    }

    /// The checkpoint in `dir`, or `None` when there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Checkpoint>> {
        let path = dir.join(CHECKPOINT);
        if !path.exists() {
            return Ok(None);
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let bad = |why: String| {
            anyhow::anyhow!(
                "{} is not a convexformer checkpoint ({why}): delete it to resume from the last finished point without a warm start",
                path.display()
            )
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta: Meta = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(KEY))
            .ok_or_else(|| bad(format!("no '{KEY}' metadata")))
            .and_then(|m| serde_json::from_str(m).map_err(|e| bad(e.to_string())))?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let read = |name: &str| -> anyhow::Result<Vec<f64>> {
            let t = tensors.tensor(name).map_err(|e| bad(e.to_string()))?;
            if t.dtype() != Dtype::F64 {
                bail!(bad(format!("tensor {name} is not float64")));
            }
            Ok(t.data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect())
        };
        Ok(Some(Checkpoint {
            point: meta.point,
            beta: meta.beta,
            coef: read("coef")?,
            intercept: read("intercept")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), None);
        let c = Checkpoint {
            point: 3,
            beta: 0.125,
            coef: vec![1.0, -2.5, 1e-300, 0.0],
            intercept: vec![],
        };
        c.save(dir.path()).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(c));
    }

    #[test]
    fn a_damaged_checkpoint_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT), b"not safetensors").unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a convexformer checkpoint"), "{err}");
        assert!(err.contains("delete it"), "{err}");
    }
}
