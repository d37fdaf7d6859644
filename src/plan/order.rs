//! How record values are ordered and compared, wherever qsync compares them: keyset cursors,
//! the `modified` rule that picks the latest version of a record, and `@filter`.
//!
//! - Numbers, and numbers sent as text, compare by their exact value: integers of any
//!   length and decimals exactly (`12345678901234567` is not `12345678901234568`, however
//!   close they are as floats; [`super::number`]), never as floats.
//! - Times compare as instants ([`super::time`]): `2024-1-9 10:00:00` is before
//!   `2024-01-10 09:00:00`, and `2024-01-01T10:00:00+08:00` equals `2024-01-01T02:00:00Z`,
//!   whatever the text order says. Zone-less times are read in the profile's zone.
//! - Anything else compares as text.

use std::cmp::Ordering;

use chrono_tz::Tz;
use serde_json::Value;

use super::number::ExactNumber;
use super::time;

/// Compares record values; zone-less times are read in `tz` (the profile's zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueOrder {
    pub tz: Tz,
}

/// The exact value of a number token or numeric text (`12`, `"12.50"`, `1e3`): no float,
/// whatever its length.
fn numeric(value: &Value) -> Option<ExactNumber<'_>> {
    match value {
        Value::Number(n) => ExactNumber::parse(n.as_str()),
        Value::String(s) => ExactNumber::parse(s.trim()),
        _ => None,
    }
}

/// Text of a scalar: strings as they are, other values as JSON.
fn text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        Value::Null => std::borrow::Cow::Borrowed(""),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

impl ValueOrder {
    pub fn new(tz: Tz) -> ValueOrder {
        ValueOrder { tz }
    }

    /// Orders two values: as numbers when both read as numbers, else as instants when both
    /// read as times, else as text. Total, for sorting and maxima.
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        self.compare_known(a, b)
            .unwrap_or_else(|| text(a).cmp(&text(b)))
    }

    /// Like [`ValueOrder::compare`], but `None` when the two are not both numbers, both
    /// times or both strings (a filter's `lt` on `"x"` and `5` holds neither way).
    pub fn compare_known(&self, a: &Value, b: &Value) -> Option<Ordering> {
        if let (Some(x), Some(y)) = (numeric(a), numeric(b)) {
            return Some(x.cmp(&y));
        }
        if let (Some(x), Some(y)) = (self.instant(a), self.instant(b)) {
            return Some(x.cmp(&y));
        }
        match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        }
    }

    /// Orders two values that name times (`modified`): as instants when both read as
    /// times, epoch seconds and milliseconds included, else like [`ValueOrder::compare`].
    pub fn compare_times(&self, a: &Value, b: &Value) -> Ordering {
        match (
            time::read_instant(a, self.tz),
            time::read_instant(b, self.tz),
        ) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => self.compare(a, b),
        }
    }

    /// Whether two values are equal: numerically when either is a number token (`"12"`
    /// equals `12` and `12.0`; two strings `"01"` and `"1"` stay different codes), else as
    /// JSON.
    pub fn equal(&self, a: &Value, b: &Value) -> bool {
        if a == b {
            return true;
        }
        if !(a.is_number() || b.is_number()) {
            return false;
        }
        match (numeric(a), numeric(b)) {
            (Some(x), Some(y)) => x.cmp(&y) == Ordering::Equal,
            _ => false,
        }
    }

    fn instant(&self, value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
        match value {
            // A bare number is a time only where the field is known to be one
            // (`compare_times`); here numbers were compared as numbers already.
            Value::String(s) if !time::is_integer_text(s.trim()) => {
                time::read_instant(value, self.tz)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order() -> ValueOrder {
        ValueOrder::new(chrono_tz::Asia::Shanghai)
    }

    #[test]
    fn numbers_compare_exactly() {
        let o = order();
        assert_eq!(o.compare(&json!("100"), &json!(99)), Ordering::Greater);
        assert_eq!(
            o.compare(
                &json!(12_345_678_901_234_567_i64),
                &json!(12_345_678_901_234_568_i64)
            ),
            Ordering::Less
        );
        assert_eq!(
            o.compare(
                &json!("123456789012345678901234567890"),
                &json!("123456789012345678901234567891")
            ),
            Ordering::Less
        );
        // Beyond rust_decimal's 28 digits and beyond floats, as tokens and as text.
        let token = |text: &str| serde_json::from_str::<Value>(text).expect("a number");
        assert_eq!(
            o.compare(
                &token("1234567890123456789012345678901234567891"),
                &json!("1234567890123456789012345678901234567890")
            ),
            Ordering::Greater
        );
        assert!(o.equal(&token("-0"), &json!(0)));
        assert!(o.equal(&token("1.5e3"), &json!("1500.00")));
        assert_eq!(
            o.compare(&token("1e400"), &token("9e399")),
            Ordering::Greater
        );
        assert_eq!(o.compare(&json!("12.50"), &json!(12.5)), Ordering::Equal);
        assert_eq!(o.compare(&json!("1e3"), &json!(999)), Ordering::Greater);
        assert!(o.equal(&json!(10), &json!("10.0")));
        assert!(!o.equal(&json!("01"), &json!("1")));
        assert!(o.equal(&json!("01"), &json!(1)));
    }

    #[test]
    fn times_compare_as_instants() {
        let o = order();
        assert_eq!(
            o.compare(&json!("2024-1-9 10:00:00"), &json!("2024-01-10 09:00:00")),
            Ordering::Less
        );
        assert_eq!(
            o.compare(
                &json!("2024-01-01T10:00:00+08:00"),
                &json!("2024-01-01T02:00:00Z")
            ),
            Ordering::Equal
        );
        assert_eq!(
            o.compare(
                &json!("2024-01-01 10:00:00"),
                &json!("2024-01-01T02:30:00Z")
            ),
            Ordering::Less
        );
        // `modified` in epoch seconds in one version and milliseconds in another.
        assert_eq!(
            o.compare_times(&json!(1_704_074_400), &json!(1_704_074_399_000_i64)),
            Ordering::Greater
        );
        assert_eq!(
            o.compare_times(&json!(1_704_074_400_000_i64), &json!("2024-01-01 10:00:00")),
            Ordering::Equal
        );
        // Text otherwise.
        assert_eq!(o.compare(&json!("b"), &json!("a")), Ordering::Greater);
        assert_eq!(o.compare_known(&json!("x"), &json!(5)), None);
    }
}
