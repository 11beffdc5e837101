//! Running the built binary from the integration tests.

use std::path::Path;
use std::process::{Child, Command, Output};

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

/// The length of the array `key` in the JSON file `dir/file` (0 while the
/// file is not there yet, or not whole): how far a running command got.
#[allow(dead_code)] // not every test file watches a run
pub fn recorded(dir: &Path, file: &str, key: &str) -> usize {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|j| j[key].as_array().map(|a| a.len()))
        .unwrap_or(0)
}

/// Sends a signal (`"-INT"`, `"-TERM"`) to a running child.
#[allow(dead_code)] // not every test file signals
pub fn signal(child: &Child, sig: &str) {
    let s = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(s.success(), "kill {sig} failed");
}

/// Temporary files (`.tmp-*`) left in `dir`.
#[allow(dead_code)]
pub fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect()
}

/// Waits (up to 120 s) until `ready`, failing if the child ends first.
#[allow(dead_code)]
pub fn wait_until(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the command ended before {what}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "no {what} in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
