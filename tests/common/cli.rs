//! Running the built binary from the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// `convexformer ARGS` in `cwd`.
pub fn cf(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convexformer"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
