//! Policy checks that are more than a comparison: windows and freezes in a
//! time zone, change-ticket patterns.

mod ticket;
mod window;

pub use ticket::{check_ticket, compile as compile_ticket_pattern};
pub use window::{check_open, time_zone};
