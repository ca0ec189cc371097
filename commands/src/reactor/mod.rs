//! Reactors: consume the log and issue ordinary commands as service principals.

mod auto_promote;

pub use auto_promote::{due, AutoPromoter, Intent, TICK};
