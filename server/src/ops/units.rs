//! Units operators type and read: ages such as `30m`, `24h`, `7d`, and byte counts in binary
//! units (`1.5 GiB`).

use std::time::Duration;

/// An age [`parse_age`] refused; the message names the value and shows the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgeError {
    #[error("{0:?} is not an age; use a whole number with s, m, h or d, like 30m, 24h or 7d")]
    NotAnAge(String),
    #[error("{0:?} is too long an age")]
    TooLong(String),
}

/// Parses an age: a whole number followed by `s`, `m`, `h` or `d` (`90s`, `30m`, `24h`, `7d`).
pub fn parse_age(s: &str) -> Result<Duration, AgeError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let secs_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => 0,
    };
    let n: u64 = match number.parse() {
        Ok(n) if secs_per_unit > 0 => n,
        _ => {
            return Err(AgeError::NotAnAge(s.to_owned()));
        }
    };
    n.checked_mul(secs_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| AgeError::TooLong(s.to_owned()))
}

/// A compact age for tables: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn format_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// Bytes in binary units with one decimal: `0 B`, `512 B`, `1.0 KiB`, `60.0 MiB`, `2.5 TiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // f64 is exact enough for one decimal of display.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_in_seconds_minutes_hours_and_days() {
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_age("0h"), Ok(Duration::ZERO));
        for bad in ["", "24", "h", "1.5h", "-1d", "3w", "24 h", "1d2h"] {
            let err = parse_age(bad).unwrap_err().to_string();
            assert!(err.contains("like 30m, 24h or 7d"), "{bad:?}: {err}");
        }
        assert!(parse_age("99999999999999999999d").is_err());
        assert!(
            parse_age("999999999999999999d")
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }

    #[test]
    fn ages_print_compactly() {
        assert_eq!(format_age(Duration::from_secs(45)), "45s");
        assert_eq!(format_age(Duration::from_secs(12 * 60 + 5)), "12m");
        assert_eq!(format_age(Duration::from_secs(3 * 3600 + 5 * 60)), "3h 5m");
        assert_eq!(
            format_age(Duration::from_secs(2 * 86400 + 4 * 3600)),
            "2d 4h"
        );
    }

    #[test]
    fn bytes_print_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(60 * 1024 * 1024), "60.0 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024 * 1024 / 2), "2.5 TiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }
}
