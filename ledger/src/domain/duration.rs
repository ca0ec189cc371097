//! Durations written as text (`90s`, `10m`, `1h30m`, `2d`), stored as seconds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of seconds, written `1h30m` and the like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    pub fn as_duration(self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty duration".into());
        }
        if text == "0" {
            return Ok(Seconds(0));
        }
        let mut total: u64 = 0;
        let mut number = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(format!("{text:?}: unknown unit {c:?} (use s, m, h or d)")),
            };
            let n: u64 = number
                .parse()
                .map_err(|_| format!("{text:?}: a number must come before {c:?}"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("{text:?} is too long"))?;
            number.clear();
        }
        if !number.is_empty() {
            return Err(format!(
                "{text:?}: the last number has no unit (s, m, h or d)"
            ));
        }
        Ok(Seconds(total))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Raw::Number(n) => Ok(Seconds(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, secs, shown) in [
            ("90s", 90, "1m30s"),
            ("10m", 600, "10m"),
            ("1h30m", 5400, "1h30m"),
            ("2d", 172_800, "2d"),
            ("0", 0, "0s"),
        ] {
            let s: Seconds = text.parse().expect(text);
            assert_eq!(s.0, secs);
            assert_eq!(s.to_string(), shown);
            assert_eq!(shown.parse::<Seconds>().expect("reparse"), s);
        }
        for bad in ["", "10", "5x", "h", "1.5h"] {
            assert!(bad.parse::<Seconds>().is_err(), "{bad}");
        }
    }
}
