//! The experiments, as library calls: a typed configuration in (its
//! `Default` is the command line's defaults), typed results out (all
//! `serde::Serialize`, so a caller writes them as JSON). The command line
//! only turns its arguments into a configuration, calls these, and writes
//! the files and plots.
//!
//! - [`compare`]: the certified convex solve against simplex- and
//!   softmax-attention training (issue #3; `convexformer compare`);
//! - [`grok`]: the typed run summaries of the grokking comparison (issue #5;
//!   `convexformer grok`), built from [`crate::grok`]'s training and path runs.
//!
//! Everything here needs the `nn` feature (candle).

pub mod compare;
pub mod grok;

pub use compare::{
    run_compare, CompareConfig, CompareEvent, CompareResult, ConvexResult, LowerBoundCheck, Method,
    RunSummary as CompareRunSummary, TableRow,
};
pub use grok::{Curve, CurveRow, GlobalSummary, GrokRunSummary, TransformerSummary};
