//! The command verbs of the CLI: `apply`, `discover`, `record-verification`,
//! `promote`, `approve`, `reject`, `abort`, `approve-freight`, `rollback`,
//! `report`.

mod args;
mod git;
mod report;
mod run;

pub use args::ClientCommand;
pub use run::run;
