//! A stage's promotion policy, as `waybill status STAGE` shows it and as the
//! commands that act on a promotion say what it still needs.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use waybill_proto::v1 as pb;

use super::format::when;

/// `open`, `frozen until in 1d (...): weekend freeze`, `closed (outside
/// every window) until ...`; `now` for the times it names.
fn openness(state: &str, until: &str, reason: &str, now: DateTime<Utc>) -> String {
    let until = match until {
        "" => String::new(),
        t => format!(" until {}", when(t, now)),
    };
    match state {
        "frozen" if reason.is_empty() => format!("frozen{until}"),
        "frozen" => format!("frozen{until}: {reason}"),
        "closed" => format!("closed (outside every window){until}"),
        other => other.to_string(),
    }
}

/// A stage that takes no promotion now, as the status table's footer says it.
pub fn closed_line(c: &pb::ClosedStage, now: DateTime<Utc>) -> String {
    format!(
        "{}: {}",
        c.stage,
        openness(&c.now, &c.until, &c.reason, now)
    )
}

/// The policy as `field: value` lines of the stage view (empty values left
/// out); `now` for the times it names.
pub fn lines(p: &pb::StagePolicy, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
    let state = openness(&p.now, &p.until, &p.closed_reason, now);
    let approvals = match (p.required_approvals, p.separation_of_duties) {
        (0, _) => "none".to_string(),
        (n, true) => format!("{n} (approver role; the requester's own does not count)"),
        (n, false) => format!("{n} (approver role)"),
    };
    // The zone the windows and freezes are written in.
    let zone = if p.windows.is_empty() && p.freezes.is_empty() {
        String::new()
    } else {
        p.timezone.clone()
    };
    let bypass = match p.bypass.as_slice() {
        [] => "anyone with the bypass role".to_string(),
        subjects => subjects.join(", "),
    };
    vec![
        ("promotions now", state),
        ("approvals", approvals),
        ("ticket", p.ticket_pattern.clone()),
        ("windows", p.windows.join("; ")),
        ("freezes", p.freezes.join("; ")),
        ("time zone", zone),
        ("gates", p.gates.join(", ")),
        ("auto-promotion", p.auto_promotion.clone()),
        ("bypass", bypass),
        ("policy version", p.policy_version.to_string()),
    ]
}

/// The policy as JSON.
pub fn json(p: &pb::StagePolicy) -> Value {
    json!({
        "mode": p.mode,
        "required_approvals": p.required_approvals,
        "separation_of_duties": p.separation_of_duties,
        "ticket_pattern": p.ticket_pattern,
        "timezone": p.timezone,
        "windows": p.windows,
        "freezes": p.freezes,
        "gates": p.gates,
        "bypass": p.bypass,
        "policy_version": p.policy_version,
        "now": p.now,
        "until": p.until,
        "closed_reason": p.closed_reason,
        "auto_promotion": p.auto_promotion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_leave_out_what_the_policy_does_not_set() {
        let p = pb::StagePolicy {
            mode: "manual".into(),
            required_approvals: 2,
            separation_of_duties: true,
            ticket_pattern: "CHG-\\d+".into(),
            timezone: "Europe/Berlin".into(),
            freezes: vec!["Sat, Sun".into()],
            policy_version: 7,
            now: "frozen".into(),
            until: "2026-12-06T23:00:00.000Z".into(),
            closed_reason: "weekend freeze".into(),
            ..Default::default()
        };
        let now = "2026-12-05T11:00:00Z".parse().expect("time");
        let l = lines(&p, now);
        let get = |name: &str| l.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(
            get("approvals"),
            Some("2 (approver role; the requester's own does not count)")
        );
        assert_eq!(get("freezes"), Some("Sat, Sun"));
        assert_eq!(get("time zone"), Some("Europe/Berlin"));
        assert_eq!(get("windows"), Some(""));
        assert_eq!(get("bypass"), Some("anyone with the bypass role"));
        assert_eq!(
            get("promotions now"),
            Some("frozen until in 1d (2026-12-06 23:00:00Z): weekend freeze")
        );
        assert_eq!(json(&p)["required_approvals"], 2);
        let closed = pb::ClosedStage {
            stage: "prod".into(),
            now: "closed".into(),
            until: "2026-12-05T12:00:00.000Z".into(),
            reason: String::new(),
        };
        assert_eq!(
            closed_line(&closed, now),
            "prod: closed (outside every window) until in 1h (2026-12-05 12:00:00Z)"
        );
    }
}
