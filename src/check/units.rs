//! Durations (`7d`, `1h30m`), rates (`5/s`) and cron expressions.

use std::time::Duration;

use super::{codes, CheckDiagnostic, Checker};
use crate::plan::RateLimit;
use crate::syntax::Spanned;

/// A duration, rate or cron expression that does not parse; the message is the diagnostic's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnitError {
    #[error("`{0}` is not a duration")]
    NotDuration(String),
    /// The number of a duration part does not fit 64 bits.
    #[error("`{0}` is too large")]
    TooLarge(String),
    #[error("`{0}` is not a duration unit")]
    DurationUnit(String),
    /// The duration overflows (more than 2^32 of a unit, or the sum).
    #[error("`{0}` is too long")]
    TooLong(String),
    #[error("`{0}` is not a rate")]
    NotRate(String),
    #[error("`{0}` is not a request count")]
    NotCount(String),
    #[error("a rate of 0 requests never sends anything")]
    ZeroRate,
    #[error("`{0}` is not a rate unit")]
    RateUnit(String),
    /// croner's reason.
    #[error("{0}")]
    Cron(String),
}

/// `7d` → 7 days. Units: ms, s, m/min, h, d, w.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .count();
        if digits == 0 || unit_len == 0 {
            return Err(UnitError::NotDuration(text.to_owned()));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| UnitError::TooLarge(rest[..digits].to_owned()))?;
        let unit = &rest[digits..digits + unit_len];
        let one = match unit {
            "ms" => Duration::from_millis(1),
            "s" | "sec" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "w" => Duration::from_secs(7 * 86_400),
            other => return Err(UnitError::DurationUnit(other.to_owned())),
        };
        let part = u32::try_from(n)
            .ok()
            .and_then(|n| one.checked_mul(n))
            .ok_or_else(|| UnitError::TooLong(text.to_owned()))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| UnitError::TooLong(text.to_owned()))?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// `5/s` → 5 per second. Units: s/sec/second, m/min/minute, h/hour, d/day.
pub(crate) fn parse_rate(text: &str) -> Result<RateLimit, UnitError> {
    let (n, unit) = text
        .split_once('/')
        .ok_or_else(|| UnitError::NotRate(text.to_owned()))?;
    let requests: u32 = n.parse().map_err(|_| UnitError::NotCount(n.to_owned()))?;
    if requests == 0 {
        return Err(UnitError::ZeroRate);
    }
    let per = match unit {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => return Err(UnitError::RateUnit(other.to_owned())),
    };
    Ok(RateLimit { requests, per })
}

/// Parses a cron expression (5 fields, or 6 with seconds).
pub(crate) fn parse_cron(text: &str) -> Result<croner::Cron, UnitError> {
    croner::Cron::new(text)
        .with_seconds_optional()
        .with_dom_and_dow()
        .parse()
        .map_err(|e| UnitError::Cron(cron_problem(text).unwrap_or_else(|| e.to_string())))
}

/// The fields of a cron expression as croner reads them: five, or six with the seconds
/// field *first* (`30 2 1 * * *` is 01:02:30), with the range of each.
const CRON_FIELDS: [(&str, u32, u32); 6] = [
    ("seconds", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
];

/// Our own words for the two mistakes croner words vaguely: the wrong number of fields, and
/// a number out of its field's range (croner: "number out of bounds", naming no field).
fn cron_problem(text: &str) -> Option<String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let names = match fields.len() {
        5 => &CRON_FIELDS[1..],
        6 => &CRON_FIELDS[..],
        n => {
            return Some(format!(
                "it has {n} field(s); write 5 (minute hour day-of-month month day-of-week) or 6 \
                 with a leading seconds field"
            ))
        }
    };
    for (position, (field, (name, low, high))) in fields.iter().zip(names).enumerate() {
        let numbers = field
            .split([',', '-', '/'])
            .filter_map(|part| part.parse::<u32>().ok());
        for n in numbers {
            // After `/` a number is a step, not a value of the field.
            let step = field.split(',').any(|p| {
                p.split_once('/')
                    .is_some_and(|(_, s)| s.parse::<u32>().ok() == Some(n))
            });
            if !step && (n < *low || n > *high) {
                return Some(format!(
                    "the {name} field (field {}) is {n}, outside {low}-{high}",
                    position + 1
                ));
            }
        }
    }
    None
}

impl Checker<'_> {
    pub(crate) fn check_duration(&mut self, text: &Spanned<String>) -> Option<Duration> {
        match parse_duration(&text.node) {
            Ok(d) => Some(d),
            Err(message) => {
                self.report(
                    CheckDiagnostic::error(codes::BAD_DURATION, text.span, message.to_string())
                        .label("not a duration")
                        .help("write a number and a unit: 500ms, 30s, 5m, 2h, 7d, 1w (or 1h30m)"),
                );
                None
            }
        }
    }

    pub(crate) fn check_rate(&mut self, text: &Spanned<String>) -> Option<RateLimit> {
        match parse_rate(&text.node) {
            Ok(r) => Some(r),
            Err(message) => {
                self.report(
                    CheckDiagnostic::error(codes::BAD_RATE, text.span, message.to_string())
                        .label("not a rate")
                        .help("write requests per unit: 5/s, 100/min, 1000/h"),
                );
                None
            }
        }
    }

    pub(crate) fn check_cron(&mut self, text: &Spanned<String>) -> Option<String> {
        match parse_cron(&text.node) {
            Ok(_) => Some(text.node.clone()),
            Err(message) => {
                self.report(
                    CheckDiagnostic::error(
                        codes::BAD_CRON,
                        text.span,
                        format!("`{}` is not a cron expression: {message}", text.node),
                    )
                    .label("bad cron")
                    .help("five fields: minute hour day-of-month month day-of-week, e.g. \"2 1 * * *\"; with six, the first is seconds: \"30 2 1 * * *\" is 01:02:30"),
                );
                None
            }
        }
    }

    /// A positive whole number with an upper bound.
    pub(crate) fn check_count(
        &mut self,
        text: &Spanned<String>,
        what: &str,
        max: u64,
    ) -> Option<u64> {
        match text.node.parse::<u64>() {
            Ok(n) if n >= 1 && n <= max => Some(n),
            _ => {
                self.report(
                    CheckDiagnostic::error(
                        codes::BAD_NUMBER,
                        text.span,
                        format!("{what} must be between 1 and {max}, not {}", text.node),
                    )
                    .label("out of range")
                    .help(format!("write a whole number from 1 to {max}")),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_fields_are_named_and_seconds_come_first() {
        // What croner accepts: six fields put seconds first.
        let cron = parse_cron("30 2 1 * * *").unwrap();
        let from = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let next = cron.find_next_occurrence(&from, false).unwrap();
        assert_eq!(next.format("%H:%M:%S").to_string(), "01:02:30");
        let message = |text| parse_cron(text).unwrap_err().to_string();
        assert_eq!(
            message("0 25 * * *"),
            "the hour field (field 2) is 25, outside 0-23"
        );
        assert_eq!(
            message("0 0 * 13 *"),
            "the month field (field 4) is 13, outside 1-12"
        );
        assert_eq!(
            message("0 0 0 32 * *"),
            "the day-of-month field (field 4) is 32, outside 1-31"
        );
        assert!(message("0 0 * *").starts_with("it has 4 field(s)"));
        assert!(parse_cron("*/15 0-23/2 * * 1-5").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("7x")
            .unwrap_err()
            .to_string()
            .contains("`x` is not a duration unit"));
        assert!(parse_duration("99999999999d").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(
            parse_rate("100/min"),
            Ok(RateLimit {
                requests: 100,
                per: Duration::from_secs(60)
            })
        );
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("5/fortnight").is_err());
    }

    #[test]
    fn crons() {
        assert!(parse_cron("2 1 * * *").is_ok());
        assert!(parse_cron("0 2 1 * * *").is_ok());
        assert!(parse_cron("61 1 * * *").is_err());
        assert!(parse_cron("every day").is_err());
    }
}
