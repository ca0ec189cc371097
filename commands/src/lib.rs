//! Waybill's command side: nothing is appended unless policy allows it.
//!
//! - [`command`]: the commands callers issue and the context they come with.
//! - [`decide`]: `decide(state, context, command) → event | rejection`, every
//!   rule and no I/O.
//! - [`policy`]: promotion windows, freezes and change tickets.
//! - [`pipeline_check`]: the rules a pipeline definition must follow.
//! - [`rejection`]: typed refusals with machine-readable reasons.
//! - [`auth`]: principals, bearer tokens and JWTs, roles per project and stage.

pub mod auth;
pub mod command;
pub mod decide;
pub mod pipeline_check;
pub mod policy;
pub mod rejection;

pub use command::{Command, Context, FreightSelector, PromotionResult};
pub use decide::{decide, Decision};
pub use rejection::{Reason, Rejection};
