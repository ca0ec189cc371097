//! The read verbs of the CLI, clients of the query service: `status`,
//! `history`, `freight`, `promotions`, `watch`, `at` and `pipeline`.
//!
//! - `command`: the verbs' arguments and their dispatch ([`run`]);
//! - `rpc`: the connection, refusals, exit codes and standard output;
//! - `format`: short ids, times, durations and aligned tables (pure);
//! - `stages`, `history`, `freight`, `promotions`: each verb's text and JSON;
//! - `watch`: following the log, reconnecting without gaps or repeats;
//! - `testing`: a flaky query server for the tests.

mod at;
mod command;
mod format;
mod freight;
mod history;
mod pages;
pub(crate) mod pipeline;
mod policy;
mod projects;
mod promotions;
pub(crate) mod rpc;
pub(crate) mod stages;
#[cfg(test)]
mod testing;
mod watch;

pub use format::{position_arg, time_arg};

pub use command::{run, with_project_hint, QueryCommand};
