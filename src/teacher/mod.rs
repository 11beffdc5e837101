//! Student–teacher on a pretrained BERT-family model (the paper's first
//! experiment, SPEC §6): the teacher's layers before the last are frozen and
//! run on a text corpus; students learn the last layer's attention sublayer
//! output from the same inputs:
//!
//! - (a) standard softmax attention (SPEC §2), AdamW from scratch
//!   ([`softmax_student`]; its training step in [`fused_student`]);
//! - (b) convex attention, SPEC §4b per output position on projected token
//!   features, certified along a β path ([`convex_student`]).
//!
//! [`bert`] says exactly which tensors are the inputs and targets;
//! [`features`] runs the teacher and builds the per-position data sets;
//! [`experiment`] runs both students and measures them on held-out sentences.

pub mod bench;
pub mod bert;
pub mod convex_student;
pub mod corpus;
pub mod experiment;
pub mod features;
pub mod fused_student;
pub mod softmax_student;
pub mod tiny;

pub use bert::Teacher;
pub use experiment::{run_experiment, ExperimentConfig, ExperimentResult};

#[cfg(test)]
mod tests;
