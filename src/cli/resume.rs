//! `--resume`: a long command records its options in its output folder; a
//! resumed run must ask for the same computation, or it would splice two
//! different runs into one table.

use anyhow::{bail, Context};
use serde_json::Value;
use std::path::Path;

/// What a long command's summary says about the run as a whole (its `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Still computing (or killed before it could say otherwise).
    Running,
    Interrupted,
    Finished,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Interrupted => "interrupted",
            RunState::Finished => "finished",
        }
    }
}

/// Refuses to resume on other data than the recorded run's (`data` as
/// [`super::common::data_json`] records it).
pub fn check_same_data(recorded: &Value, now: &Value, out: &Path) -> anyhow::Result<()> {
    if recorded != now {
        bail!(
            "cannot resume in {}: the data differs from the recorded run's ({now} now, {recorded} recorded); start a new run with --force",
            out.display()
        );
    }
    Ok(())
}

/// The options of a run as recorded (the parsed arguments minus where the
/// output goes and whether to overwrite or resume).
pub fn arguments(args: &impl serde::Serialize) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(args)?)
}

/// Refuses to resume when `now` asks for something else than `recorded`,
/// naming every option that differs as it is spelled on the command line.
pub fn check_same_arguments(recorded: &Value, now: &Value, out: &Path) -> anyhow::Result<()> {
    let (Some(rec), Some(cur)) = (recorded.as_object(), now.as_object()) else {
        bail!(
            "cannot resume in {}: its recorded options are unreadable; start a new run with --force",
            out.display()
        );
    };
    let mut keys: Vec<&String> = rec.keys().chain(cur.keys()).collect();
    keys.sort();
    keys.dedup();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| rec.get(*k) != cur.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| match v {
                None | Some(Value::Null) => "(not given)".to_string(),
                Some(v) => v.to_string(),
            };
            format!(
                "--{}: {} in the recorded run, {} now",
                k.replace('_', "-"),
                show(rec.get(k)),
                show(cur.get(k))
            )
        })
        .collect();
    if !diffs.is_empty() {
        bail!(
            "cannot resume in {}: the command line differs from the recorded run ({}); repeat the recorded options, or start a new run with another --out or --force",
            out.display(),
            diffs.join("; ")
        );
    }
    Ok(())
}

/// The JSON summary a run keeps in `out`, for `--resume`.
pub fn read_summary(out: &Path, file: &str) -> anyhow::Result<Value> {
    let path = out.join(file);
    if !out.join(super::common::MARKER).exists() || !path.exists() {
        bail!(
            "nothing to resume in {}: it holds no {file} written by convexformer; run without --resume",
            out.display()
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "cannot resume: {} is not valid JSON; start a new run with --force",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_options_resume_and_different_ones_are_named() {
        let out = Path::new("run");
        let a = json!({"tol": 1e-6, "betas": 6, "val": null});
        check_same_arguments(&a, &a.clone(), out).unwrap();
        let b = json!({"tol": 1e-8, "betas": 6, "val": "v.npz"});
        let err = check_same_arguments(&a, &b, out).unwrap_err().to_string();
        assert!(
            err.contains("--tol: 1e-6 in the recorded run, 1e-8 now"),
            "{err}"
        );
        assert!(
            err.contains("--val: (not given) in the recorded run, \"v.npz\" now"),
            "{err}"
        );
        assert!(!err.contains("--betas"), "{err}");
    }

    #[test]
    fn a_folder_without_a_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_summary(dir.path(), "path.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing to resume"), "{err}");
    }
}
