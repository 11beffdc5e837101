//! `path --resume`: the finished points, β grid and warm start of the run
//! recorded in an output folder, once it is shown to be the same computation.

use super::checkpoint::Checkpoint;
use super::common::{data_json, Loaded};
use super::resume;
use anyhow::bail;
use convexformer::report::SolveReport;
use convexformer::solver::StopReason;
use std::path::Path;

/// The points a resumed run starts with.
pub struct Resumed {
    /// The finished points (every recorded point but an interrupted last one).
    pub reports: Vec<SolveReport>,
    /// The β grid of the recorded run.
    pub grid: Vec<f64>,
    pub warm: Option<Checkpoint>,
}

/// The finished points of the run recorded in `out`, after checking it asked
/// for the same computation on the same data.
pub fn read_resumed(
    out: &Path,
    arguments: &serde_json::Value,
    loaded: &Loaded,
) -> anyhow::Result<Resumed> {
    let summary = resume::read_summary(out, "path.json")?;
    resume::check_same_arguments(&summary["arguments"], arguments, out)?;
    resume::check_same_data(&summary["data"], &data_json(loaded), out)?;
    let unreadable = |what: &str, e: serde_json::Error| {
        anyhow::anyhow!(
            "cannot resume: {} in {}/path.json is unreadable ({e}); start a new run with --force",
            what,
            out.display()
        )
    };
    let grid: Vec<f64> = serde_json::from_value(summary["betas"].clone())
        .map_err(|e| unreadable("the β grid", e))?;
    let mut reports: Vec<SolveReport> =
        serde_json::from_value(summary["path"].clone()).map_err(|e| unreadable("the path", e))?;
    if reports
        .last()
        .is_some_and(|r| r.solve.stop_reason == StopReason::Interrupted)
    {
        reports.pop();
    }
    if reports.len() > grid.len() {
        bail!(
            "cannot resume: {}/path.json holds {} points for a grid of {}; start a new run with --force",
            out.display(),
            reports.len(),
            grid.len()
        );
    }
    // Only a checkpoint of the next point (interrupted) or of the last finished one helps.
    let warm =
        Checkpoint::load(out)?.filter(|c| c.point + 1 == reports.len() || c.point == reports.len());
    Ok(Resumed {
        reports,
        grid,
        warm,
    })
}
