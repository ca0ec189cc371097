//! Promotion windows and freezes as refusals (evaluated by
//! [`waybill_ledger::domain::window`]).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use waybill_ledger::domain::window::{self, Openness};
use waybill_ledger::domain::PromotionPolicy;

use crate::rejection::{Reason, Rejection};

/// Parses the policy's time zone (checked when the pipeline was applied).
pub fn time_zone(policy: &PromotionPolicy) -> Result<Tz, Rejection> {
    window::time_zone(policy).map_err(|e| Rejection::invalid("timezone", e.to_string()))
}

/// Refuses a promotion during a freeze or outside every window.
pub fn check_open(policy: &PromotionPolicy, now: DateTime<Utc>) -> Result<(), Rejection> {
    let openness =
        window::openness(policy, now).map_err(|e| Rejection::invalid("timezone", e.to_string()))?;
    let mut details = vec![("timezone", policy.timezone.clone())];
    match openness {
        Openness::Open => Ok(()),
        Openness::Frozen { until, reason } => {
            if let Some(u) = until {
                details.push(("until", u.to_rfc3339()));
            }
            let reason = if reason.is_empty() {
                "a freeze is in force".to_string()
            } else {
                format!("a freeze is in force: {reason}")
            };
            let message = match until {
                Some(u) => format!("{reason} (until {})", u.to_rfc3339()),
                None => reason,
            };
            Err(Rejection::policy(Reason::StageFrozen, message, details))
        }
        Openness::Closed { next } => {
            if let Some(n) = next {
                details.push(("until", n.to_rfc3339()));
            }
            let message = match next {
                Some(n) => format!(
                    "outside every promotion window; the next opens at {}",
                    n.to_rfc3339()
                ),
                None => "outside every promotion window".to_string(),
            };
            Err(Rejection::policy(
                Reason::PromotionWindowClosed,
                message,
                details,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, Weekday};
    use waybill_ledger::domain::{Freeze, Window};

    fn policy(tz: &str) -> PromotionPolicy {
        PromotionPolicy {
            timezone: tz.into(),
            ..PromotionPolicy::default()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("rfc3339")
    }

    #[test]
    fn weekend_freeze_in_the_policy_time_zone() {
        let mut p = policy("Europe/Berlin");
        p.freezes.push(Freeze {
            days: vec![Weekday::Sat, Weekday::Sun],
            from: None,
            to: None,
            reason: "weekend".into(),
        });
        // Friday 23:30 UTC is Saturday 00:30 in Berlin (winter, UTC+1).
        let err = check_open(&p, utc("2026-12-04T23:30:00Z")).expect_err("frozen");
        assert_eq!(err.reason(), Some(Reason::StageFrozen));
        match err {
            Rejection::Policy { details, .. } => {
                // Monday 00:00 Berlin = Sunday 23:00 UTC.
                assert_eq!(
                    details.get("until").map(String::as_str),
                    Some("2026-12-06T23:00:00+00:00")
                );
            }
            other => panic!("{other:?}"),
        }
        // Friday 22:30 UTC is still Friday in Berlin.
        assert!(check_open(&p, utc("2026-12-04T22:30:00Z")).is_ok());
    }

    #[test]
    fn windows_say_when_they_open_next() {
        let mut p = policy("UTC");
        p.windows.push(Window {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            start: NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
            end: NaiveTime::from_hms_opt(17, 0, 0).expect("time"),
        });
        assert!(check_open(&p, utc("2026-12-02T10:00:00Z")).is_ok());
        let err = check_open(&p, utc("2026-12-02T18:00:00Z")).expect_err("closed");
        assert_eq!(err.reason(), Some(Reason::PromotionWindowClosed));
        assert!(
            err.to_string().contains("2026-12-03T09:00:00+00:00"),
            "{err}"
        );
        // Friday evening: next window is Monday.
        let err = check_open(&p, utc("2026-12-04T18:00:00Z")).expect_err("closed");
        assert!(
            err.to_string().contains("2026-12-07T09:00:00+00:00"),
            "{err}"
        );
    }

    #[test]
    fn dated_freezes_end_when_they_say() {
        let mut p = policy("UTC");
        p.freezes.push(Freeze {
            days: vec![],
            from: Some("2026-12-20T00:00:00".parse().expect("dt")),
            to: Some("2027-01-02T00:00:00".parse().expect("dt")),
            reason: "year-end".into(),
        });
        let err = check_open(&p, utc("2026-12-24T12:00:00Z")).expect_err("frozen");
        assert!(err.to_string().contains("year-end"), "{err}");
        assert!(
            err.to_string().contains("2027-01-02T00:00:00+00:00"),
            "{err}"
        );
        assert!(check_open(&p, utc("2027-01-02T00:00:00Z")).is_ok());
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("time")
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_opens() {
        let mut p = policy("UTC");
        p.windows.push(Window {
            days: vec![Weekday::Fri],
            start: time(22, 0),
            end: time(2, 0),
        });
        // Friday 2026-12-04 23:00 and Saturday 01:00: the Friday night window.
        assert!(check_open(&p, utc("2026-12-04T23:00:00Z")).is_ok());
        assert!(check_open(&p, utc("2026-12-05T01:00:00Z")).is_ok());
        // Friday 01:00 is Thursday's night, which has no window.
        let err = check_open(&p, utc("2026-12-04T01:00:00Z")).expect_err("closed");
        assert_eq!(err.reason(), Some(Reason::PromotionWindowClosed));
        assert!(
            err.to_string().contains("2026-12-04T22:00:00+00:00"),
            "{err}"
        );
        // Saturday 02:00: closed until next Friday night.
        let err = check_open(&p, utc("2026-12-05T02:00:00Z")).expect_err("closed");
        assert!(
            err.to_string().contains("2026-12-11T22:00:00+00:00"),
            "{err}"
        );
    }

    #[test]
    fn a_window_opening_in_a_daylight_saving_gap_opens_after_it() {
        // 2027-03-28 in Berlin: clocks go from 02:00 CET to 03:00 CEST, so
        // 02:30 never happens; the window opens at 03:00 CEST (01:00 UTC).
        let mut p = policy("Europe/Berlin");
        p.windows.push(Window {
            days: vec![],
            start: time(2, 30),
            end: time(6, 0),
        });
        let err = check_open(&p, utc("2027-03-27T23:30:00Z")).expect_err("closed");
        assert!(
            err.to_string().contains("2027-03-28T01:00:00+00:00"),
            "{err}"
        );
        assert!(check_open(&p, utc("2027-03-28T01:00:00Z")).is_ok());
    }

    #[test]
    fn the_next_window_is_one_no_freeze_takes() {
        let mut p = policy("UTC");
        p.windows.push(Window {
            days: vec![Weekday::Mon, Weekday::Tue],
            start: time(9, 0),
            end: time(17, 0),
        });
        // Monday 2026-12-07 is frozen until noon, and all of Tuesday.
        p.freezes.push(Freeze {
            days: vec![],
            from: Some("2026-12-07T00:00:00".parse().expect("dt")),
            to: Some("2026-12-07T12:00:00".parse().expect("dt")),
            reason: "release".into(),
        });
        p.freezes.push(Freeze {
            days: vec![],
            from: Some("2026-12-08T00:00:00".parse().expect("dt")),
            to: Some("2026-12-09T00:00:00".parse().expect("dt")),
            reason: "audit".into(),
        });
        // Friday evening: Monday's window opens at 09:00 inside the freeze,
        // so promotions are next allowed at noon.
        let err = check_open(&p, utc("2026-12-04T18:00:00Z")).expect_err("closed");
        assert!(
            err.to_string().contains("2026-12-07T12:00:00+00:00"),
            "{err}"
        );
        // Monday evening: Tuesday is frozen, so the next is a week later.
        let err = check_open(&p, utc("2026-12-07T18:00:00Z")).expect_err("closed");
        assert!(
            err.to_string().contains("2026-12-14T09:00:00+00:00"),
            "{err}"
        );
    }
}
