//! The RFC 3339 times of the contract's records (`updated_at`, `requested_at`, ...).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time as RFC 3339, in UTC.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// An RFC 3339 time in milliseconds since the Unix epoch; `None` if it is not one.
pub fn epoch_ms(value: &str) -> Option<i64> {
    let time = OffsetDateTime::parse(value, &Rfc3339).ok()?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_reads_back() {
        let now = now_rfc3339();
        assert!(epoch_ms(&now).is_some_and(|ms| ms > 1_700_000_000_000), "{now}");
        assert_eq!(epoch_ms("2026-11-01T00:00:00Z"), Some(1_793_491_200_000));
        assert_eq!(epoch_ms("yesterday"), None);
    }
}
