//! The time decisions are made at. Production uses the system clock; tests of
//! the binary may start the clock at a chosen instant (windows and freezes are
//! otherwise untestable), after which it advances in real time.

use chrono::{DateTime, Utc};

/// A source of "now".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    /// The system clock shifted by a fixed offset.
    Offset(chrono::Duration),
    /// Always this instant (tests that must decide twice at the same time).
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// A clock that reads `start` now and advances in real time.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock::Offset(start - Utc::now())
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Offset(d) => Utc::now() + *d,
            Clock::Fixed(t) => *t,
        }
    }
}
