//! How times are shown to people: `2026-11-23 22:30:00 UTC`.

use time::OffsetDateTime;
use time::macros::format_description;

/// Formats Unix seconds for messages and tables.
pub fn format_unix(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// Unix milliseconds as RFC 3339 with milliseconds, for audit lines.
pub fn format_unix_millis(ms: i64) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| format!("@{ms}ms"))
}

/// The UTC day of Unix seconds, `2026-11-23`: a directory name.
pub fn format_day(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// The Unix seconds a `2026-11-23` day starts at (UTC); `None` for any
/// other text.
pub fn parse_day(text: &str) -> Option<i64> {
    let fmt = format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &fmt).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// Parses an RFC 3339 time (`2026-11-24T10:00:00Z`) into Unix milliseconds.
pub fn parse_rfc3339_millis(text: &str) -> Result<i64, String> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| format!("{text:?} is not a time like 2026-11-24T10:00:00Z: {e}"))
}

/// `3h12m`-style remaining time, for `jsh status`.
pub fn format_remaining(secs: i64) -> String {
    crate::Ttl::from_secs(secs.max(0) as u64).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::format_unix(1_800_000_000), "2027-01-15 08:00:00 UTC");
        assert_eq!(super::format_remaining(3 * 3600 + 720), "3h12m");
        assert_eq!(super::format_remaining(-5), "0s");
        assert_eq!(
            super::format_unix_millis(1_800_000_000_123),
            "2027-01-15T08:00:00.123Z"
        );
        assert_eq!(
            super::parse_rfc3339_millis("2027-01-15T08:00:00.123Z"),
            Ok(1_800_000_000_123)
        );
        assert!(super::parse_rfc3339_millis("yesterday").is_err());
        assert_eq!(super::format_day(1_800_000_000), "2027-01-15");
        assert_eq!(super::parse_day("2027-01-15"), Some(1_799_971_200));
        for other in ["2027-1-15", "2027-01-15x", "lost+found", "", "2027-02-30"] {
            assert_eq!(super::parse_day(other), None, "{other}");
        }
    }
}
