//! Heatmaps of the recovered mixing matrices W_j (PNG + SVG, by
//! [`crate::plot::heatmap`]).

use std::path::{Path, PathBuf};

use super::recovery::SequenceHead;
use crate::error::{invalid, Result};
use crate::plot::{heatmap, Heatmap};

/// Writes `dir/{prefix}_{j}.png` and `.svg` for every head j (its n×n
/// mixing matrix W_j, rows = output positions r, columns = input tokens k)
/// and returns the stems written. `n` is the number of tokens.
pub fn plot_mixing_matrices(
    dir: &Path,
    prefix: &str,
    heads: &[SequenceHead],
    n: usize,
) -> Result<Vec<PathBuf>> {
    if prefix.is_empty() || prefix.contains(['/', '\\']) {
        return invalid(format!(
            "plot prefix '{prefix}' must be a non-empty file name without path separators"
        ));
    }
    let width = heads.len().max(1).to_string().len();
    let mut stems = Vec::with_capacity(heads.len());
    for (j, h) in heads.iter().enumerate() {
        if h.mixing.len() != n * n {
            return invalid(format!(
                "head {j} has {} mixing entries, an n×n matrix with n = {n} needs {}",
                h.mixing.len(),
                n * n
            ));
        }
        let active: Vec<String> = h
            .value
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(k, _)| k.to_string())
            .collect();
        let title = format!(
            "head {j}: W (o = {:+.3}, ‖V‖₁ = {:.3}, V entries {})",
            h.output,
            h.value.iter().map(|v| v.abs()).sum::<f64>(),
            if active.len() <= 4 {
                active.join(",")
            } else {
                format!("{} nonzero", active.len())
            }
        );
        let stem = dir.join(format!("{prefix}_{j:0width$}"));
        heatmap(
            &stem,
            &Heatmap {
                title: &title,
                x_label: "input token k",
                y_label: "output position r",
                rows: n,
                cols: n,
                values: &h.mixing,
                row_names: None,
                col_names: None,
            },
        )?;
        stems.push(stem);
    }
    Ok(stems)
}
