//! Promotion windows and freezes, evaluated in the policy's time zone.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use waybill_ledger::domain::{Freeze, PromotionPolicy, Window};

use crate::rejection::{Reason, Rejection};

/// Parses the policy's time zone (checked when the pipeline was applied).
pub fn time_zone(policy: &PromotionPolicy) -> Result<Tz, Rejection> {
    policy.timezone.parse::<Tz>().map_err(|_| {
        Rejection::invalid(
            "timezone",
            format!("unknown time zone {:?}", policy.timezone),
        )
    })
}

/// Refuses a promotion during a freeze or outside every window.
pub fn check_open(policy: &PromotionPolicy, now: DateTime<Utc>) -> Result<(), Rejection> {
    let tz = time_zone(policy)?;
    let local = now.with_timezone(&tz).naive_local();
    if let Some(freeze) = policy.freezes.iter().find(|f| in_freeze(f, local)) {
        let until = freeze_end(policy, &tz, local);
        let mut details = vec![("timezone", policy.timezone.clone())];
        if let Some(u) = until {
            details.push(("until", u.to_rfc3339()));
        }
        let reason = if freeze.reason.is_empty() {
            "a freeze is in force".to_string()
        } else {
            format!("a freeze is in force: {}", freeze.reason)
        };
        let message = match until {
            Some(u) => format!("{reason} (until {})", u.to_rfc3339()),
            None => reason,
        };
        return Err(Rejection::policy(Reason::StageFrozen, message, details));
    }
    if policy.windows.is_empty() || policy.windows.iter().any(|w| in_window(w, local)) {
        return Ok(());
    }
    let next = next_window_start(policy, &tz, local);
    let mut details = vec![("timezone", policy.timezone.clone())];
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

fn in_window(w: &Window, local: NaiveDateTime) -> bool {
    let day_ok = w.days.is_empty() || w.days.contains(&local.weekday());
    let t = local.time();
    day_ok
        && if w.start <= w.end {
            t >= w.start && t < w.end
        } else {
            // A window across midnight.
            t >= w.start || t < w.end
        }
}

fn in_freeze(f: &Freeze, local: NaiveDateTime) -> bool {
    let day = f.days.is_empty() || f.days.contains(&local.weekday());
    let from_ok = f.from.is_none_or(|from| local >= from);
    let to_ok = f.to.is_none_or(|to| local < to);
    let has_range = f.from.is_some() || f.to.is_some();
    if f.days.is_empty() && !has_range {
        return false;
    }
    day && from_ok && to_ok
}

fn to_utc(tz: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The first minute (within two weeks) at which no freeze applies.
fn freeze_end(policy: &PromotionPolicy, tz: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut t = local.with_second0();
    for _ in 0..(14 * 24 * 60) {
        t += Duration::minutes(1);
        if !policy.freezes.iter().any(|f| in_freeze(f, t)) {
            return to_utc(tz, t);
        }
    }
    None
}

fn next_window_start(
    policy: &PromotionPolicy,
    tz: &Tz,
    local: NaiveDateTime,
) -> Option<DateTime<Utc>> {
    (0..8)
        .flat_map(|d| {
            let date = local.date() + Duration::days(d);
            policy.windows.iter().filter_map(move |w| {
                let start = date.and_time(w.start);
                let day_ok = w.days.is_empty() || w.days.contains(&date.weekday());
                (day_ok && start > local).then_some(start)
            })
        })
        .min()
        .and_then(|start| to_utc(tz, start))
}

trait Second0 {
    fn with_second0(self) -> Self;
}

impl Second0 for NaiveDateTime {
    fn with_second0(self) -> Self {
        use chrono::Timelike;
        self.with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, Weekday};

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
}
