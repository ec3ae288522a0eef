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
    }
}
