//! A stage's promotion policy, as `waybill status STAGE` shows it and as the
//! commands that act on a promotion say what it still needs.

use serde_json::{json, Value};
use waybill_proto::v1 as pb;

/// The policy as `field: value` lines of the stage view (empty values left out).
pub fn lines(p: &pb::StagePolicy) -> Vec<(&'static str, String)> {
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
        ("approvals", approvals),
        ("ticket", p.ticket_pattern.clone()),
        ("windows", p.windows.join("; ")),
        ("freezes", p.freezes.join("; ")),
        ("time zone", zone),
        ("gates", p.gates.join(", ")),
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
            ..Default::default()
        };
        let l = lines(&p);
        let get = |name: &str| l.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(
            get("approvals"),
            Some("2 (approver role; the requester's own does not count)")
        );
        assert_eq!(get("freezes"), Some("Sat, Sun"));
        assert_eq!(get("time zone"), Some("Europe/Berlin"));
        assert_eq!(get("windows"), Some(""));
        assert_eq!(get("bypass"), Some("anyone with the bypass role"));
        assert_eq!(json(&p)["required_approvals"], 2);
    }
}
