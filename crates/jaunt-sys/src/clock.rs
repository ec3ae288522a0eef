//! The wall clock as Unix time. Pure code elsewhere takes time as a value;
//! these are the places that read it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch; zero if the clock is set before it (every
/// certificate then reads as not yet valid, which fails closed).
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Unix seconds.
pub fn now() -> i64 {
    since_epoch().as_secs() as i64
}

/// Unix milliseconds.
pub fn now_millis() -> i64 {
    since_epoch().as_millis() as i64
}

/// Unix nanoseconds, for orderings within a millisecond.
pub fn now_nanos() -> u128 {
    since_epoch().as_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_agree() {
        let (s, ms, ns) = (now(), now_millis(), now_nanos());
        // Read in order, so each is at least the one before in its unit.
        assert!(ms / 1000 >= s && ms / 1000 - s <= 1, "{s} {ms}");
        assert!((ns / 1_000_000) as i64 >= ms, "{ms} {ns}");
        // Past 2020-01-01: the clock is read, not defaulted.
        assert!(s > 1_577_836_800);
    }
}
