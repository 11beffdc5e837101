//! A flag that stops a solve between iterations: Ctrl-C in the command
//! line, KeyboardInterrupt in Python. The solve then ends with
//! [`super::StopReason::Interrupted`] and the certificate of the point it
//! reached, which is still a valid bound on the optimum.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared between the solve and whoever may stop it; clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks every solve holding this flag to stop at its next check.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Lowers the flag (e.g. before the next run in the same process).
    pub fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}
