//! Promotion windows and freezes, evaluated in the policy's time zone: the
//! one judgement the command side refuses with and the query side shows.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::{Freeze, PromotionPolicy, Window};

/// Whether promotions into a stage are allowed at a moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Openness {
    Open,
    /// A freeze is in force, until the first minute without one (within
    /// two weeks), for its reason.
    Frozen {
        until: Option<DateTime<Utc>>,
        reason: String,
    },
    /// Outside every window; the next one opens then (within a week).
    Closed {
        next: Option<DateTime<Utc>>,
    },
}

/// The policy's time zone is not one the tz database knows (checked when
/// the pipeline is applied).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown time zone {0:?}")]
pub struct UnknownTimeZone(pub String);

/// Parses the policy's time zone.
pub fn time_zone(policy: &PromotionPolicy) -> Result<Tz, UnknownTimeZone> {
    policy
        .timezone
        .parse::<Tz>()
        .map_err(|_| UnknownTimeZone(policy.timezone.clone()))
}

/// Whether `policy` allows promotions at `now`: a freeze wins over windows;
/// without windows, any time outside a freeze is open.
pub fn openness(policy: &PromotionPolicy, now: DateTime<Utc>) -> Result<Openness, UnknownTimeZone> {
    let tz = time_zone(policy)?;
    let local = now.with_timezone(&tz).naive_local();
    if let Some(freeze) = policy.freezes.iter().find(|f| in_freeze(f, local)) {
        return Ok(Openness::Frozen {
            until: freeze_end(policy, &tz, local),
            reason: freeze.reason.clone(),
        });
    }
    if policy.windows.is_empty() || policy.windows.iter().any(|w| in_window(w, local)) {
        return Ok(Openness::Open);
    }
    Ok(Openness::Closed {
        next: next_window_start(policy, &tz, local),
    })
}

/// Whether `local` is inside `w`. A window whose end is not after its start
/// runs across midnight: `days` name the day it opens, so a Friday
/// 22:00-02:00 window is open until 02:00 on Saturday, and not from
/// midnight to 02:00 on Friday.
fn in_window(w: &Window, local: NaiveDateTime) -> bool {
    let opens_on = |day: Weekday| w.days.is_empty() || w.days.contains(&day);
    let t = local.time();
    if w.start <= w.end {
        opens_on(local.weekday()) && t >= w.start && t < w.end
    } else {
        (t >= w.start && opens_on(local.weekday()))
            || (t < w.end && opens_on(local.weekday().pred()))
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

/// The instant of a local time; one that a daylight-saving change skips
/// (02:30 on a spring-forward night) is taken as the first instant after the
/// gap, when the clocks show that time or later.
fn to_utc(tz: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=(4 * 60))
        .map(|m| local + Duration::minutes(m))
        .find_map(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
}

/// The first minute (within two weeks) at which no freeze applies.
fn freeze_end(policy: &PromotionPolicy, tz: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    freeze_end_local(policy, local).and_then(|t| to_utc(tz, t))
}

fn freeze_end_local(policy: &PromotionPolicy, local: NaiveDateTime) -> Option<NaiveDateTime> {
    let mut t = local.with_second0();
    for _ in 0..(14 * 24 * 60) {
        t += Duration::minutes(1);
        if !policy.freezes.iter().any(|f| in_freeze(f, t)) {
            return Some(t);
        }
    }
    None
}

/// When promotions are next allowed (within a week), from a moment outside
/// every window and every freeze: the next window start, or, when a freeze
/// is in force then, the end of that freeze if it falls in a window.
fn next_window_start(
    policy: &PromotionPolicy,
    tz: &Tz,
    local: NaiveDateTime,
) -> Option<DateTime<Utc>> {
    let horizon = local + Duration::days(8);
    let mut t = local;
    while t < horizon {
        t = window_start_after(policy, t)?;
        if policy.freezes.iter().any(|f| in_freeze(f, t)) {
            t = freeze_end_local(policy, t)?;
            if policy.windows.iter().any(|w| in_window(w, t)) {
                return to_utc(tz, t);
            }
        } else {
            return to_utc(tz, t);
        }
    }
    None
}

/// The first window start after `local` (looking eight days ahead).
fn window_start_after(policy: &PromotionPolicy, local: NaiveDateTime) -> Option<NaiveDateTime> {
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
