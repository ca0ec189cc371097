//! Change tickets: a stage may require one matching a pattern.

use regex::Regex;
use waybill_ledger::domain::PromotionPolicy;

use crate::rejection::{Reason, Rejection};

/// Compiles a ticket pattern so that it must match the whole ticket.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())
}

/// Refuses a missing or non-matching ticket when the policy has a pattern.
pub fn check_ticket(policy: &PromotionPolicy, ticket: &str) -> Result<(), Rejection> {
    let Some(pattern) = &policy.ticket_pattern else {
        return Ok(());
    };
    if ticket.is_empty() {
        return Err(Rejection::policy(
            Reason::TicketRequired,
            format!("a change ticket matching {pattern} is required"),
            [("pattern", pattern.clone())],
        ));
    }
    let re = compile(pattern).map_err(|e| Rejection::invalid("ticket_pattern", e))?;
    if !re.is_match(ticket) {
        return Err(Rejection::policy(
            Reason::TicketInvalid,
            format!("ticket {ticket:?} does not match {pattern}"),
            [("pattern", pattern.clone()), ("ticket", ticket.to_string())],
        ));
    }
    Ok(())
}
