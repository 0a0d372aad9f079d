//! Timestamps in Go's `time.RFC3339Nano` shape (trailing zeros of the fraction trimmed), which
//! is what Docker writes into json-file logs and container state.

use chrono::{DateTime, Utc};

/// The current time, UTC, as Go's RFC3339Nano.
pub fn now_rfc3339_nano() -> String {
    rfc3339_nano(Utc::now())
}

fn rfc3339_nano(t: DateTime<Utc>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
    s.truncate(trimmed);
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_like_go() {
        let t = |ns| DateTime::from_timestamp(1_700_000_000, ns).expect("valid time");
        assert_eq!(
            rfc3339_nano(t(123_456_789)),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(rfc3339_nano(t(120_000_000)), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_nano(t(0)), "2023-11-14T22:13:20Z");
    }
}
