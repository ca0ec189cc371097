//! The promotion domain shared by the command service and the projections:
//! pipeline definitions, the state of a project derived from its events
//! (`evolve`), the availability predicate, the freight id, and the working
//! set of a state that keeps part of its records elsewhere.

mod availability;
mod duration;
mod evolve;
pub use evolve::WouldAuthorize;
mod freight_id;
mod pipeline;
mod pipeline_changes;
mod promotion_id;
mod state;
pub mod window;
pub mod working_set;

pub use availability::{
    auto_candidate, auto_standing, auto_standing_with, available_to, check_available, gates_pass,
    why_none_available, AutoStanding, NoneAvailable, Unavailable,
};
pub use duration::Seconds;
pub use freight_id::{
    freight_id, is_id_prefix, is_lower_hex, short_start_note, FREIGHT_ID_LEN, MIN_ID_PREFIX,
};
pub use pipeline::*;
pub use pipeline_changes::pipeline_changes;
pub use promotion_id::{
    ambiguous_start, is_promotion_id_prefix, short_promotion_start_note, PROMOTION_ID_HEX,
    PROMOTION_ID_PREFIX,
};
pub use state::*;
