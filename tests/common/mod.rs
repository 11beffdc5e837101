//! Helpers shared by the integration tests.

// Each test target compiles this module on its own and uses only part of it.
#[allow(dead_code)]
pub mod clarabel_ref;
#[allow(dead_code)]
pub mod cli;
