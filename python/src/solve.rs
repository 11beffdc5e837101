//! Runs a solve without the GIL, so other Python threads go on (and rayon
//! uses every core), while this thread keeps watching for Ctrl-C: a
//! KeyboardInterrupt raises the solver's interrupt flag, the solve stops at
//! its next check, and the KeyboardInterrupt propagates to the caller.

use convexformer::solver::Interrupt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

/// How often the waiting thread takes the GIL to check for signals.
const POLL: Duration = Duration::from_millis(50);

pub fn run_interruptible<T: Send>(
    py: Python<'_>,
    interrupt: &Interrupt,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    let mut signal: Option<PyErr> = None;
    let out = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = channel();
            let worker = s.spawn(move || {
                let out = work();
                // Wakes the waiting thread at once (it holds the receiver).
                let _ = tx.send(());
                out
            });
            loop {
                match rx.recv_timeout(POLL) {
                    // Done, or panicked (the sender dropped): join says which.
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return worker.join().ok(),
                    Err(RecvTimeoutError::Timeout) => {
                        if signal.is_none() {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                interrupt.request();
                                signal = Some(e);
                            }
                        }
                    }
                }
            }
        })
    });
    if let Some(e) = signal {
        return Err(e);
    }
    out.ok_or_else(|| {
        PyRuntimeError::new_err(
            "the solver panicked: please report this with the data that caused it",
        )
    })
}
