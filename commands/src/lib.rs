//! Waybill's command side: nothing is appended unless policy allows it.
//!
//! - [`clock`]: the time decisions are made at.
//! - [`command`]: the commands callers issue and the context they come with.
//! - [`decide`](mod@decide): `decide(state, context, command) → event | rejection`, every
//!   rule and no I/O.
//! - [`policy`]: promotion windows, freezes and change tickets.
//! - [`pipeline_check`]: the rules a pipeline definition must follow.
//! - [`rejection`]: typed refusals with machine-readable reasons.
//! - [`handler`]: authorize, decide, append with optimistic concurrency, retry.
//! - [`service`]: the gRPC command service; errors map to statuses in one place.
//! - [`reactor`]: auto-promotion, acting through the same command path.
//! - [`auth`]: principals, bearer tokens and JWTs, roles per project and stage.

pub mod auth;
pub mod clock;
pub mod command;
pub mod decide;
pub mod handler;
pub mod pipeline_check;
pub mod pipeline_file;
pub mod policy;
pub mod reactor;
pub mod rejection;
pub mod service;

pub use command::{Command, Context, FreightSelector, PromotionResult};
pub use decide::{decide, promotion_id, Decision};
pub use rejection::{Reason, Rejection};
