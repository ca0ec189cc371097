//! Pipeline files: the YAML people write and `waybill apply -f` reads.
//!
//! Every error names the file, the line and column, and what is wrong — both
//! for YAML that cannot be read as a [`PipelineDefinition`] (bad syntax, an
//! unknown field, a wrong type, a bad duration) and for a definition that reads
//! but breaks the rules of [`crate::pipeline_check`], whose paths are pointed
//! back at the YAML node they name.
//!
//! - `parse`: [`parse_pipeline`], the one entry point, and its limits.
//! - `error`: [`PipelineFileError`] and the list of them a parse returns.
//! - `tree`: the document as a tree of nodes that remember where they are.
//! - `query`: the node a path names, and the path of the node at a position.
//! - `path`: the `stages[1].policy.gates[0]` paths problems are reported under.
//! - `yaml_error`: the deserializer's errors, pointed at a path.
//! - `recover`: the shape errors after the first, found by blanking out
//!   what was reported and reading again.
//! - `digest`: [`source_digest`], the hash recorded with an applied file.
//! - `render`: [`render_pipeline`], a definition written back as a file.
//!
//! [`PipelineDefinition`]: waybill_ledger::domain::PipelineDefinition

mod digest;
mod error;
mod parse;
mod path;
mod query;
mod recover;
mod render;
mod tree;
mod yaml_error;

pub use digest::source_digest;
pub use error::{PipelineFileError, PipelineFileErrors};
pub use parse::{parse_pipeline, MAX_PIPELINE_FILE_BYTES};
pub use render::render_pipeline;
