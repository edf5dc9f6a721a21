//! Parsing of the time and duration parameters the APIs accept.

/// Parses a Prometheus-style time: RFC 3339 or Unix seconds with an optional fraction.
/// Returns ns since the epoch.
pub fn parse_time_ns(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.2e9 {
            return Err(format!("time {s:?} is out of range"));
        }
        return Ok((secs * 1e9).round() as i64);
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("cannot parse {s:?} as RFC 3339 or Unix seconds: {e}"))
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .map_err(|_| format!("time {s:?} is before 1970"))
        })
}

/// Parses a Go duration as Jaeger takes it (`1.5s`, `100ms`, `2m30s`, `10us`, `1µs`, `1h`).
/// Returns ns.
pub fn parse_go_duration_ns(s: &str) -> Result<i64, String> {
    let err = || format!("cannot parse duration {s:?}: use e.g. 100ms, 1.5s, 2m30s");
    let text = s.trim();
    if text.is_empty() {
        return Err(err());
    }
    if text == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 {
        return Err(err());
    }
    Ok(total.round() as i64)
}

/// Formats ns since the epoch as RFC 3339 with nanoseconds.
pub fn format_rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(
            parse_time_ns("1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_time_ns("1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_time_ns("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_time_ns("yesterday").is_err());
        assert!(parse_time_ns("1e300").is_err());
        assert_eq!(
            format_rfc3339(1_700_000_000_000_000_001),
            "2023-11-14T22:13:20.000000001Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration_ns("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_go_duration_ns("2m30s").unwrap(), 150_000_000_000);
        assert_eq!(parse_go_duration_ns("100ms").unwrap(), 100_000_000);
        assert_eq!(parse_go_duration_ns("10us").unwrap(), 10_000);
        assert_eq!(parse_go_duration_ns("1µs").unwrap(), 1_000);
        assert!(parse_go_duration_ns("5").is_err());
        assert!(parse_go_duration_ns("5 parsecs").is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_times_and_durations_never_panic(s in "\\PC{0,40}", n in any::<f64>(), unit in "(ns|us|µs|ms|s|m|h|x)") {
            let _ = super::parse_time_ns(&s);
            let _ = super::parse_time_ns(&n.to_string());
            let _ = super::parse_go_duration_ns(&s);
            let _ = super::parse_go_duration_ns(&format!("{n}{unit}"));
            let _ = super::format_rfc3339(n as i64);
        }
    }
}
