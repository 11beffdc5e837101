//! Ctrl-C (SIGINT) and SIGTERM in the long commands: the first signal raises
//! one process-wide [`Interrupt`] that every solve and training loop checks
//! between iterations, so the command finishes the current iteration, writes
//! what it has computed (`"stop_reason": "interrupted"`) and exits with
//! [`EXIT_INTERRUPTED`]; a second signal exits at once with [`EXIT_ABORTED`].

use convexformer::solver::Interrupt;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::path::Path;
use std::sync::OnceLock;

/// Exit code of a command stopped by a signal after writing its results.
/// 130 = 128 + SIGINT, what shells report for a Ctrl-C'd program.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit code after a second signal: stopped at once, the point in progress
/// was not written (every file already written is whole).
pub const EXIT_ABORTED: i32 = 131;

static FLAG: OnceLock<Interrupt> = OnceLock::new();

/// The process-wide flag (raised by [`install`]'s handler).
pub fn flag() -> Interrupt {
    FLAG.get_or_init(Interrupt::new).clone()
}

/// Takes over SIGINT and SIGTERM for a command that honours [`flag`]; the
/// others keep the default (a signal ends them at once). Idempotent.
pub fn install() -> anyhow::Result<Interrupt> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let flag = flag();
    if INSTALLED.get().is_some() {
        return Ok(flag);
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let raised = flag.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let name = if sig == SIGTERM { "SIGTERM" } else { "Ctrl-C" };
            if raised.requested() {
                eprintln!("\n{name} again: stopping now; the point in progress is not written");
                convexformer::atomic::remove_unfinished();
                std::process::exit(EXIT_ABORTED);
            }
            raised.request();
            eprintln!(
                "\n{name}: finishing the current iteration and writing the results so far \
                 (press Ctrl-C again to stop at once)"
            );
        }
    });
    let _ = INSTALLED.set(());
    Ok(flag)
}

/// What a command returns after a signal stopped it and its results were
/// written; `main` prints it and exits with [`EXIT_INTERRUPTED`].
#[derive(Debug)]
pub struct Interrupted {
    pub message: String,
}

impl Interrupted {
    /// Stopped after writing into `out`; `resume` says how to continue, if it can.
    pub fn wrote_to(out: &Path, resume: bool) -> anyhow::Error {
        let how = if resume {
            "; to continue, run the same command with --resume".to_string()
        } else {
            String::new()
        };
        anyhow::Error::new(Interrupted {
            message: format!(
                "interrupted: the results computed so far are in {}{how}",
                out.display()
            ),
        })
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}
