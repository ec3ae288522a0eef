//! Human durations such as `90s`, `30m`, `12h`, `1h30m`, `7d`, used for TTLs
//! in flags, config files and roles.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written the human way. Parsing accepts one or more
/// `<number><unit>` groups with units `s`, `m`, `h`, `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(pub Duration);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {reason} (examples: 90s, 30m, 12h, 1h30m, 7d)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl Ttl {
    pub const fn from_secs(secs: u64) -> Self {
        Ttl(Duration::from_secs(secs))
    }

    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }
}

impl FromStr for Ttl {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: s.to_string(),
            reason,
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(err("empty"));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if digits.is_empty() {
                return Err(err("a unit must follow a number"));
            }
            let n: u64 = digits.parse().map_err(|_| err("number too large"))?;
            digits.clear();
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return Err(err("unknown unit")),
            };
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| err("duration too large"))?;
        }
        if !digits.is_empty() {
            return Err(err("missing unit after the last number"));
        }
        Ok(Ttl(Duration::from_secs(total)))
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        let mut out = String::new();
        for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                out.push_str(&format!("{}{}", secs / size, unit));
                secs %= size;
            }
        }
        f.write_str(&out)
    }
}

impl Serialize for Ttl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let table = [
            ("90s", Some(90), "1m30s"),
            ("30m", Some(1800), "30m"),
            ("12h", Some(43200), "12h"),
            ("1h30m", Some(5400), "1h30m"),
            ("7d", Some(604800), "168h"),
            ("0s", Some(0), "0s"),
            ("", None, ""),
            ("10", None, ""),
            ("h", None, ""),
            ("5x", None, ""),
            ("99999999999999999999d", None, ""),
        ];
        for (input, secs, printed) in table {
            let parsed = input.parse::<Ttl>();
            match secs {
                Some(secs) => {
                    let ttl = parsed.unwrap_or_else(|e| panic!("{input}: {e}"));
                    assert_eq!(ttl.as_secs(), secs, "{input}");
                    assert_eq!(ttl.to_string(), printed, "{input}");
                }
                None => assert!(parsed.is_err(), "{input} should be rejected"),
            }
        }
    }
}
