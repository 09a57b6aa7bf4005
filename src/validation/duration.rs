//! Prometheus durations (`1h30m`, `90s`, `2m`, `500ms`).

use std::time::Duration;

/// Why a string is not a Prometheus duration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    /// Empty string.
    #[error("must not be empty")]
    Empty,
    /// Not of the form `[0-9]+(ms|s|m|h|d|w|y)` repeated, largest unit first.
    #[error("must be a Prometheus duration such as 30s, 2m or 1h30m (units ms, s, m, h, d, w, y, largest first)")]
    Malformed,
}

/// Parses a Prometheus duration. Units must appear at most once each, largest first.
pub fn parse_prometheus_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Malformed);
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Malformed)?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let position = UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or(DurationError::Malformed)?;
        let (_, factor) = UNITS[next_unit + position];
        next_unit += position + 1;
        total_ms = number
            .checked_mul(factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or(DurationError::Malformed)?;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_prometheus_durations() {
        assert_eq!(
            parse_prometheus_duration("2m"),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            parse_prometheus_duration("1h30m"),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_prometheus_duration("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            parse_prometheus_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_prometheus_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_prometheus_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "", "2", "m", "2 m", "1.5m", "30s1m", "1m1m", "5x", "-1s", "1h-",
        ] {
            assert!(
                parse_prometheus_duration(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
