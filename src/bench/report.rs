//! The results table: each Waybill figure beside its raw baseline, the ratio,
//! the target and whether it was met. Rendered as an aligned Markdown table,
//! readable on a terminal and in `docs/BENCHMARKS.md` alike.

use std::time::Duration;

/// A measured figure.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// Lower is better.
    Latency(Duration),
    /// Events per second; higher is better.
    Rate(f64),
}

impl Value {
    fn number(self) -> f64 {
        match self {
            Value::Latency(d) => d.as_secs_f64(),
            Value::Rate(r) => r,
        }
    }

    fn text(self) -> String {
        match self {
            Value::Latency(d) if d < Duration::from_millis(1) => {
                format!("{:.0} µs", d.as_secs_f64() * 1e6)
            }
            Value::Latency(d) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
            Value::Rate(r) => format!("{} ev/s", thousands(r.round() as u64)),
        }
    }
}

/// What a ratio (Waybill ÷ raw) must be.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Reported for information only.
    None,
    AtMost(f64),
    AtLeast(f64),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub waybill: Value,
    pub raw: Value,
    pub target: Target,
}

impl Row {
    pub fn new(metric: impl Into<String>, waybill: Value, raw: Value, target: Target) -> Row {
        Row {
            metric: metric.into(),
            waybill,
            raw,
            target,
        }
    }

    /// Waybill ÷ raw.
    pub fn ratio(&self) -> f64 {
        self.waybill.number() / self.raw.number()
    }

    /// `Some(true)` when the target is met, `None` when there is none.
    pub fn met(&self) -> Option<bool> {
        let ratio = self.ratio();
        match self.target {
            Target::None => None,
            Target::AtMost(max) => Some(ratio <= max),
            Target::AtLeast(min) => Some(ratio >= min),
        }
    }
}

/// `12345678` as `12,345,678`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    // A comma goes before every digit with a multiple of three digits after it.
    let phase = digits.len() % 3;
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % 3 == phase {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const HEADERS: [&str; 6] = [
    "metric",
    "waybill",
    "raw JetStream",
    "ratio",
    "target",
    "result",
];
/// Columns aligned right (numbers).
const RIGHT: [bool; 6] = [false, true, true, true, false, false];

/// The rows as a Markdown table with padded columns.
pub fn render(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            [
                row.metric.clone(),
                row.waybill.text(),
                row.raw.text(),
                format!("{:.2}×", row.ratio()),
                match row.target {
                    Target::None => "—".to_string(),
                    Target::AtMost(max) => format!("≤ {max:.1}×"),
                    Target::AtLeast(min) => format!("≥ {min:.1}×"),
                },
                match row.met() {
                    None => "—".to_string(),
                    Some(true) => "pass".to_string(),
                    Some(false) => "MISS".to_string(),
                },
            ]
        })
        .collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADERS.map(str::to_string);
    push_line(&mut out, &header, &widths);
    out.push('|');
    for (width, right) in widths.iter().zip(RIGHT) {
        let dashes = "-".repeat(width.saturating_sub(usize::from(right)));
        out.push_str(&format!(" {dashes}{} |", if right { ":" } else { "" }));
    }
    out.push('\n');
    for line in &cells {
        push_line(&mut out, line, &widths);
    }
    out
}

fn push_line(out: &mut String, cells: &[String; 6], widths: &[usize; 6]) {
    out.push('|');
    for ((cell, width), right) in cells.iter().zip(widths).zip(RIGHT) {
        if right {
            out.push_str(&format!(" {cell:>width$} |"));
        } else {
            out.push_str(&format!(" {cell:<width$} |"));
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_targets() {
        let latency = Row::new(
            "p50",
            Value::Latency(Duration::from_micros(125)),
            Value::Latency(Duration::from_micros(100)),
            Target::AtMost(1.3),
        );
        assert!((latency.ratio() - 1.25).abs() < 1e-9);
        assert_eq!(latency.met(), Some(true));
        let rate = Row::new(
            "throughput",
            Value::Rate(700.0),
            Value::Rate(1000.0),
            Target::AtLeast(0.8),
        );
        assert_eq!(rate.met(), Some(false));
        let info = Row::new("p99", rate.waybill, rate.raw, Target::None);
        assert_eq!(info.met(), None);
    }

    #[test]
    fn table_is_aligned_markdown() {
        let rows = [Row::new(
            "replay",
            Value::Rate(123_456.4),
            Value::Rate(1_000_000.0),
            Target::AtLeast(0.8),
        )];
        let table = render(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].contains("123,456 ev/s"));
        assert!(lines[2].contains("MISS"));
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "{table}");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
        assert_eq!(thousands(0), "0");
    }
}
