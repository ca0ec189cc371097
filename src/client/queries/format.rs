//! Pure formatting helpers of the read verbs: short ids, times, durations and
//! aligned tables. Nothing here does I/O, so everything here is unit tested.

use chrono::{DateTime, SecondsFormat, Utc};

/// Characters of a freight id shown where space is short.
pub const SHORT_ID: usize = 12;

/// What an empty cell shows.
pub const NONE: &str = "-";

/// The first [`SHORT_ID`] characters of `id`.
pub fn short(id: &str) -> &str {
    match id.char_indices().nth(SHORT_ID) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// The alias of a freight if it has one, else its short id; `-` for none.
pub fn freight_label(id: &str, alias: &str) -> String {
    if !alias.is_empty() {
        alias.to_string()
    } else if id.is_empty() {
        NONE.to_string()
    } else {
        short(id).to_string()
    }
}

/// `s` with line breaks and tabs turned into spaces, so one entry stays on one line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// An RFC 3339 time in UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What a time on the command line may look like, for help and errors.
pub const TIME_FORMS: &str =
    "an RFC 3339 time (2024-05-01T12:00:00+02:00), a UTC date and time (2024-05-01 12:00, 2024-05-01T12:00:00, 2024-05-01), a UTC time of day (03:12, the last one), or a time ago (90m, 2h, \"1d 6h ago\", now)";

/// Reads a position given on the command line: a whole number. A time
/// given instead is answered with where times are taken.
pub fn position_arg(s: &str) -> Result<u64, String> {
    let s = s.trim();
    s.parse().map_err(|_| {
        let hint = if time_arg(s).is_ok() {
            "; that is a time: `waybill history` takes times with --since and --until, \
             `waybill at` a position or a time"
        } else {
            ""
        };
        format!("{s:?} is not a position (a whole number, e.g. 42){hint}")
    })
}

/// Reads a time given on the command line: RFC 3339; a date with an
/// optional time of day (to the minute, second or below) without an offset,
/// taken as UTC (the tables print UTC); a time of day alone, the last time
/// the UTC clock showed it; or a duration before now (`2h`, `1d 6h ago`,
/// `now`). Returns it as RFC 3339 in UTC.
pub fn time_arg(s: &str) -> Result<String, String> {
    time_arg_at(s, Utc::now())
}

/// [`time_arg`], with durations counted back from `now`.
pub fn time_arg_at(s: &str, now: DateTime<Utc>) -> Result<String, String> {
    use chrono::{NaiveDate, NaiveDateTime};
    let s = s.trim();
    let naive = || {
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|t| t.and_utc())
    };
    // "03:12": today's, or yesterday's when today's is yet to come.
    let time_of_day = || {
        let t = ["%H:%M", "%H:%M:%S%.f"]
            .iter()
            .find_map(|f| chrono::NaiveTime::parse_from_str(s, f).ok())?;
        let today = now.date_naive().and_time(t).and_utc();
        Some(match today > now {
            true => today - chrono::Duration::days(1),
            false => today,
        })
    };
    let ago = || {
        if s == "now" {
            return Some(now);
        }
        let span = s.strip_suffix("ago").unwrap_or(s).trim_end();
        let span = humantime::parse_duration(span).ok()?;
        now.checked_sub_signed(chrono::Duration::from_std(span).ok()?)
    };
    parse_time(s)
        .or_else(naive)
        .or_else(time_of_day)
        .or_else(ago)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .ok_or_else(|| format!("{s:?} is not {TIME_FORMS}"))
}

/// A server time to the second, `2024-05-01 12:00:00Z`; as given if it does
/// not parse; `-` when empty.
pub fn clock(s: &str) -> String {
    if s.is_empty() {
        return NONE.to_string();
    }
    match parse_time(s) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => s.to_string(),
    }
}

/// How long before `now` `then` was: `just now`, `45s ago`, `5m ago`, `3h ago`,
/// `2d ago`; `in 5m` for a time ahead of the local clock.
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    if secs < 0 {
        format!("in {}", coarse(secs.unsigned_abs()))
    } else if secs < 5 {
        "just now".to_string()
    } else {
        format!("{} ago", coarse(secs.unsigned_abs()))
    }
}

/// One unit, rounded down.
fn coarse(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A server time as `5m ago (2024-05-01 12:00:00Z)`; `-` when empty.
pub fn when(s: &str, now: DateTime<Utc>) -> String {
    match parse_time(s) {
        Some(t) => format!("{} ({})", ago(t, now), clock(s)),
        None => clock(s),
    }
}

/// A duration in its two largest units: `45s`, `5m 3s`, `1h 5m`, `2d 3h`.
pub fn duration(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, unit) in UNITS {
        let n = rest / size;
        rest %= size;
        if n > 0 || !parts.is_empty() {
            parts.push(format!("{n}{unit}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    // Drop a trailing zero unit: `1h 0m` reads better as `1h`.
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

/// Columns separated by two spaces, each as wide as its widest cell.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; empty cells show `-`, missing cells are empty.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells
            .into_iter()
            .map(|c| {
                if c.is_empty() {
                    NONE.to_string()
                } else {
                    one_line(&c)
                }
            })
            .collect();
        cells.resize(self.headers.len(), NONE.to_string());
        self.rows.push(cells);
    }

    /// Adds a row that goes on with the one above (more of the same
    /// thing): its empty cells stay blank instead of showing `-`.
    pub fn continued(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells.iter().map(|c| one_line(c)).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header line and one line per row, without trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).expect("test times are valid")
    }

    #[test]
    fn short_ids_keep_twelve_characters() {
        assert_eq!(short("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
        assert_eq!(short(""), "");
        // Cut on a character boundary, never inside one.
        assert_eq!(short("ééééééééééééé"), "éééééééééééé");
    }

    #[test]
    fn freight_label_prefers_the_alias() {
        assert_eq!(freight_label("0123456789abcdef", "v1.2"), "v1.2");
        assert_eq!(freight_label("0123456789abcdef", ""), "0123456789ab");
        assert_eq!(freight_label("", ""), "-");
    }

    #[test]
    fn relative_times() {
        let now = t("2024-05-01T12:00:00Z");
        assert_eq!(ago(t("2024-05-01T12:00:00Z"), now), "just now");
        assert_eq!(ago(t("2024-05-01T11:59:15Z"), now), "45s ago");
        assert_eq!(ago(t("2024-05-01T11:55:00Z"), now), "5m ago");
        assert_eq!(ago(t("2024-05-01T11:00:01Z"), now), "59m ago");
        assert_eq!(ago(t("2024-05-01T09:00:00Z"), now), "3h ago");
        assert_eq!(ago(t("2024-04-28T12:00:00Z"), now), "3d ago");
        assert_eq!(ago(t("2024-05-01T12:05:00Z"), now), "in 5m");
    }

    #[test]
    fn when_shows_relative_and_absolute() {
        let now = t("2024-05-01T12:00:00Z");
        assert_eq!(
            when("2024-05-01T11:55:00.123456Z", now),
            "4m ago (2024-05-01 11:55:00Z)",
            "rounded down, to the second"
        );
        // Offsets are shown in UTC.
        assert_eq!(
            when("2024-05-01T13:55:00+02:00", now),
            "5m ago (2024-05-01 11:55:00Z)"
        );
        assert_eq!(when("", now), "-");
        assert_eq!(when("yesterday", now), "yesterday");
    }

    #[test]
    fn positions_are_whole_numbers_and_a_time_is_pointed_elsewhere() {
        assert_eq!(position_arg("42"), Ok(42));
        assert_eq!(position_arg(" 7 "), Ok(7));
        let not = position_arg("-1").expect_err("negative");
        assert_eq!(not, "\"-1\" is not a position (a whole number, e.g. 42)");
        let time = position_arg("2026-12-03").expect_err("a date");
        assert!(
            time.contains("that is a time: `waybill history` takes times with --since"),
            "{time}"
        );
    }

    #[test]
    fn time_arguments_are_checked_and_normalized() {
        for (given, want) in [
            ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00Z"),
            ("2024-05-01T12:00:00.250Z", "2024-05-01T12:00:00.250Z"),
            // Without an offset: UTC.
            ("2024-05-01", "2024-05-01T00:00:00Z"),
            ("2024-05-01 03:12", "2024-05-01T03:12:00Z"),
            ("2024-05-01T03:12", "2024-05-01T03:12:00Z"),
            (" 2024-05-01 03:12:09 ", "2024-05-01T03:12:09Z"),
            ("2024-05-01T03:12:09.5", "2024-05-01T03:12:09.500Z"),
        ] {
            assert_eq!(time_arg(given).as_deref(), Ok(want), "{given}");
        }
        let now = t("2024-05-01T12:00:00Z");
        for (given, want) in [
            ("now", "2024-05-01T12:00:00Z"),
            ("90m", "2024-05-01T10:30:00Z"),
            ("2h ago", "2024-05-01T10:00:00Z"),
            ("1d 6h ago", "2024-04-30T06:00:00Z"),
            (" 2weeks ", "2024-04-17T12:00:00Z"),
            ("30s", "2024-05-01T11:59:30Z"),
            // A time of day: the last time the UTC clock showed it.
            ("03:12", "2024-05-01T03:12:00Z"),
            ("12:00", "2024-05-01T12:00:00Z"),
            ("12:00:01", "2024-04-30T12:00:01Z"),
            ("23:59:59.5", "2024-04-30T23:59:59.500Z"),
        ] {
            assert_eq!(time_arg_at(given, now).as_deref(), Ok(want), "{given}");
        }
        for bad in [
            "",
            "ago",
            "2h later",
            "-2h",
            "9999999999999d",
            "yesterday",
            "2024-13-01",
            "2024-05-01 25:00",
            "25:00",
            "3:12pm",
            "05/01/2024",
            "2024-05-01 3pm",
        ] {
            let err = time_arg(bad).expect_err(bad);
            assert!(err.contains("RFC 3339") && err.contains("ago"), "{err}");
        }
    }

    #[test]
    fn durations_use_two_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(303), "5m 3s");
        assert_eq!(duration(3_600), "1h");
        assert_eq!(duration(3_900), "1h 5m");
        assert_eq!(duration(3_601), "1h");
        assert_eq!(duration(2 * 86_400 + 3 * 3_600 + 59), "2d 3h");
    }

    #[test]
    fn one_line_replaces_line_breaks() {
        assert_eq!(one_line("a\nb\tc"), "a b c");
    }

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&["STAGE", "MODE", "FREIGHT"]);
        table.row(vec!["test".into(), "auto".into(), "v1".into()]);
        table.row(vec!["production".into(), "".into(), "0123456789ab".into()]);
        assert_eq!(
            table.render(),
            "STAGE       MODE  FREIGHT\n\
             test        auto  v1\n\
             production  -     0123456789ab\n"
        );
    }

    #[test]
    fn table_fills_missing_cells_and_trims_trailing_spaces() {
        let mut table = Table::new(&["A", "LONG HEADER"]);
        table.row(vec!["x".into()]);
        table.row(vec!["y".into(), "multi\nline".into()]);
        let text = table.render();
        assert_eq!(text, "A  LONG HEADER\nx  -\ny  multi line\n");
        assert!(text.lines().all(|l| !l.ends_with(' ')));
        assert!(!table.is_empty());
        assert!(Table::new(&["A"]).is_empty());
    }
}
