//! JSON value → [`Cell`] of a [`ColumnType`]: the one place that decides what vendor values
//! are accepted for each column type.
//!
//! Owns which values each type accepts: numbers sent as strings, range and precision
//! checks, and the date forms these APIs really send (read by [`crate::plan::time`]: epoch
//! seconds and milliseconds, `yyyy-MM-dd HH:mm:ss[.SSS]` also unpadded, `yyyy-MM-dd`, ISO
//! 8601 with `Z` or an offset, DingTalk's `2024-04-27T07:56Z`). It does not own where
//! values come from (`map`) nor how cells are written (`sink`).
//!
//! Choices worth knowing:
//! - `null` and a missing value become [`Cell::Null`] for every type.
//! - An empty string becomes [`Cell::Null`] for number, date, time and bool types, because
//!   vendors send `""` for "no value" (Jushuitan's `"qty": ""`); for string types it stays `""`.
//! - Epoch numbers with an absolute value of at least 10^11 are milliseconds, smaller ones are
//!   seconds (10^11 seconds is the year 5138, 10^11 milliseconds is 1973).
//! - Datetimes without an offset are already in the profile time zone; datetimes with an
//!   offset (or `Z`) and epoch values are converted to it. `DATETIME` columns keep whole
//!   seconds: the fraction is truncated so that every write path stores the same value.
//! - `json` serializes the value as it is (a JSON string stays a JSON string literal); JSON
//!   `null` is SQL `NULL`.

use std::fmt;

use chrono::{NaiveDateTime, Timelike};
use chrono_tz::Tz;
use serde_json::Value;

use super::{Cell, CellText};
use crate::plan::number::{ExactNumber, IntegerMisfit};
use crate::plan::time;
use crate::plan::ColumnType;

/// The default profile time zone of Chinese vendor APIs.
pub const DEFAULT_TZ: Tz = chrono_tz::Asia::Shanghai;

/// Longest `string` column when the spec gives no length (`VARCHAR(255)`).
pub const DEFAULT_STRING_LENGTH: u32 = 255;

/// Longest value of a MySQL `TEXT` column, in bytes.
const TEXT_MAX_BYTES: usize = 65_535;

/// A value that does not fit its column type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot convert value {value} to {ty}: {reason}")]
pub struct ConvertError {
    /// The offending value as JSON text, shortened to 80 characters.
    pub value: String,
    pub ty: ColumnType,
    pub reason: ConvertReason,
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvertReason {
    /// `"abc"` for `int`.
    NotANumber,
    /// `1.5` for `int`.
    Fraction,
    /// `3000000000` for `int`, `1000` for `decimal(4,2)`.
    OutOfRange,
    /// `"2024-13-01"` for `date`.
    NotADate,
    /// `"yes"` for `bool`.
    NotABool,
    /// A 300-character string for `string(255)`.
    TooLong { length: usize, max: usize },
    /// A 70,000-byte string for `text`: MySQL's `TEXT` holds 65,535 bytes, whatever the
    /// characters (a Chinese character takes 3 bytes in utf8mb4).
    TooManyBytes { bytes: usize, max: usize },
    /// An object or array for a number, date or bool type.
    WrongKind,
}

impl fmt::Display for ConvertReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertReason::NotANumber => f.write_str("not a number"),
            ConvertReason::Fraction => f.write_str("has a fractional part"),
            ConvertReason::OutOfRange => f.write_str("out of range"),
            ConvertReason::NotADate => f.write_str("not a recognised date or datetime"),
            ConvertReason::NotABool => f.write_str("not a boolean"),
            ConvertReason::TooLong { length, max } => {
                write!(f, "{length} characters, at most {max} allowed")
            }
            ConvertReason::TooManyBytes { bytes, max } => {
                write!(f, "{bytes} bytes in UTF-8, at most {max} bytes allowed")
            }
            ConvertReason::WrongKind => f.write_str("objects and arrays are not allowed"),
        }
    }
}

fn fail(value: &Value, ty: ColumnType, reason: ConvertReason) -> ConvertError {
    let mut text = value.to_string();
    if let Some((cut, _)) = text.char_indices().nth(80) {
        text.truncate(cut);
        text.push('…');
    }
    ConvertError {
        value: text,
        ty,
        reason,
    }
}

/// Converts one JSON value (`None` = field missing) to a cell of `ty`, reading zone-less
/// datetimes and epoch values in `tz`.
pub fn convert(value: Option<&Value>, ty: ColumnType, tz: Tz) -> Result<Cell, ConvertError> {
    let Some(value) = value else {
        return Ok(Cell::Null);
    };
    if value.is_null() {
        return Ok(Cell::Null);
    }
    if let Value::String(s) = value {
        if s.is_empty() && !matches!(ty, ColumnType::String { .. } | ColumnType::Text) {
            return Ok(Cell::Null);
        }
    }
    match ty {
        ColumnType::Int => to_int(value, ty, i64::from(i32::MIN), i64::from(i32::MAX)),
        ColumnType::Bigint => to_int(value, ty, i64::MIN, i64::MAX),
        ColumnType::Decimal { precision, scale } => to_decimal(value, ty, precision, scale),
        ColumnType::Double => to_double(value, ty),
        ColumnType::String { length } => {
            let max = length.unwrap_or(DEFAULT_STRING_LENGTH) as usize;
            let text = to_text(value);
            // Counting characters, not bytes: VARCHAR(n) under utf8mb4 holds n characters.
            // The byte length bounds the character count, so short strings skip the count.
            if text.len() > max {
                let length = text.chars().count();
                if length > max {
                    return Err(fail(value, ty, ConvertReason::TooLong { length, max }));
                }
            }
            Ok(Cell::Text(text))
        }
        ColumnType::Text => {
            let text = to_text(value);
            if text.len() > TEXT_MAX_BYTES {
                let reason = ConvertReason::TooManyBytes {
                    bytes: text.len(),
                    max: TEXT_MAX_BYTES,
                };
                return Err(fail(value, ty, reason));
            }
            Ok(Cell::Text(text))
        }
        ColumnType::Datetime => to_datetime(value, tz)
            .map(|t| Cell::DateTime(t.with_nanosecond(0).unwrap_or(t)))
            .ok_or_else(|| fail(value, ty, date_reason(value))),
        ColumnType::Date => to_datetime(value, tz)
            .map(|t| Cell::Date(t.date()))
            .ok_or_else(|| fail(value, ty, date_reason(value))),
        ColumnType::Bool => to_bool(value).ok_or_else(|| fail(value, ty, ConvertReason::NotABool)),
        ColumnType::Json => Ok(Cell::Json(value.to_string().into())),
    }
}

fn date_reason(value: &Value) -> ConvertReason {
    if value.is_object() || value.is_array() {
        ConvertReason::WrongKind
    } else {
        ConvertReason::NotADate
    }
}

/// String form of any value: strings as they are, everything else as JSON text; a number
/// as the vendor wrote it (`1.50`, `-0`, 30 digits; an exponent as `1e+3`).
fn to_text(value: &Value) -> CellText {
    use compact_str::ToCompactString as _;
    match value {
        Value::String(s) => CellText::from(s.as_str()),
        other => other.to_compact_string(),
    }
}

fn to_int(value: &Value, ty: ColumnType, min: i64, max: i64) -> Result<Cell, ConvertError> {
    let text = match value {
        Value::Number(n) => n.as_str(),
        Value::String(s) => s.trim(),
        Value::Bool(b) => return Ok(Cell::Int(i64::from(*b))),
        _ => return Err(fail(value, ty, ConvertReason::WrongKind)),
    };
    // Plain integers first; `12.0`, `1.5e3` and big numbers read exactly, never as floats.
    let n = match text.parse::<i64>() {
        Ok(n) => n,
        Err(_) => match ExactNumber::parse(text).map(|n| n.to_i64()) {
            Some(Ok(n)) => n,
            Some(Err(IntegerMisfit::Fraction)) => {
                return Err(fail(value, ty, ConvertReason::Fraction))
            }
            Some(Err(IntegerMisfit::OutOfRange)) => {
                return Err(fail(value, ty, ConvertReason::OutOfRange))
            }
            None => return Err(fail(value, ty, ConvertReason::NotANumber)),
        },
    };
    if n < min || n > max {
        return Err(fail(value, ty, ConvertReason::OutOfRange));
    }
    Ok(Cell::Int(n))
}

/// The one conversion that may round: a `double` column holds a float.
fn to_double(value: &Value, ty: ColumnType) -> Result<Cell, ConvertError> {
    let x = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => return Err(fail(value, ty, ConvertReason::WrongKind)),
    };
    match x {
        // MySQL cannot store NaN or infinities.
        Some(x) if x.is_finite() => Ok(Cell::Double(x)),
        Some(_) => Err(fail(value, ty, ConvertReason::OutOfRange)),
        None => Err(fail(value, ty, ConvertReason::NotANumber)),
    }
}

/// A decimal from the number's own text (a token or a string), rounded to the column's
/// scale half away from zero as MySQL rounds; out of range when the integer part does not
/// fit. Never through a float: `123456789012345678.91` stays exact in `decimal(20,2)`.
fn to_decimal(
    value: &Value,
    ty: ColumnType,
    precision: u8,
    scale: u8,
) -> Result<Cell, ConvertError> {
    let text = match value {
        Value::Number(n) => n.as_str(),
        Value::String(s) => s.trim(),
        Value::Bool(true) => "1",
        Value::Bool(false) => "0",
        _ => return Err(fail(value, ty, ConvertReason::WrongKind)),
    };
    let Some(number) = ExactNumber::parse(text) else {
        return Err(fail(value, ty, ConvertReason::NotANumber));
    };
    number
        .to_decimal_text(precision, scale)
        .map(Cell::Decimal)
        .ok_or_else(|| fail(value, ty, ConvertReason::OutOfRange))
}

fn to_bool(value: &Value) -> Option<Cell> {
    let b = match value {
        Value::Bool(b) => *b,
        Value::Number(n) => match n.as_i64() {
            Some(0) => false,
            Some(1) => true,
            _ => return None,
        },
        Value::String(s) => match s.trim() {
            "1" => true,
            "0" => false,
            t if t.eq_ignore_ascii_case("true") => true,
            t if t.eq_ignore_ascii_case("false") => false,
            _ => return None,
        },
        _ => return None,
    };
    Some(Cell::Bool(b))
}

/// Reads a date or datetime as a wall-clock time in `tz`: zone-less texts as written,
/// offsets and epoch values converted (the forms are [`time::parse`]'s).
pub fn to_datetime(value: &Value, tz: Tz) -> Option<NaiveDateTime> {
    time::read(value).map(|t| t.local(tz))
}

/// Parses the datetime strings vendors send, as a wall-clock time in `tz`.
pub fn parse_datetime_str(s: &str, tz: Tz) -> Option<NaiveDateTime> {
    time::parse(s).map(|t| t.local(tz))
}

/// The JSON form of a converted cell, for `@rename ... : type` whose result is read again
/// by the map. Datetimes use the `yyyy-MM-dd HH:mm:ss` form [`parse_datetime_str`] reads.
pub(crate) fn cell_to_json(cell: Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(n) => Value::from(n),
        Cell::Double(x) => Value::from(x),
        Cell::Bool(b) => Value::Bool(b),
        Cell::Text(s) => Value::String(s.into()),
        Cell::Json(s) => serde_json::from_str(&s).unwrap_or_else(|_| Value::String(s.into())),
        other @ (Cell::Decimal(_) | Cell::Date(_) | Cell::DateTime(_)) => {
            Value::String(other.render())
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::{json, Value};

    use super::*;

    fn dt(s: &str) -> Cell {
        Cell::DateTime(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("test date"))
    }

    fn date(s: &str) -> Cell {
        Cell::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date"))
    }

    fn dec(s: &str) -> Cell {
        Cell::Decimal(s.into())
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    const DEC_12_2: ColumnType = ColumnType::Decimal {
        precision: 12,
        scale: 2,
    };
    const DEC_4_2: ColumnType = ColumnType::Decimal {
        precision: 4,
        scale: 2,
    };
    const STR_5: ColumnType = ColumnType::String { length: Some(5) };

    /// Examples: (input, type, expected cell or `None` for a rejection).
    fn examples() -> Vec<(Value, ColumnType, Option<Cell>)> {
        use ColumnType::{Bigint, Bool, Date, Datetime, Double, Int, Json, Text};
        vec![
            // nulls and empties
            (Value::Null, Int, Some(Cell::Null)),
            (json!(""), Int, Some(Cell::Null)),
            (json!(""), Datetime, Some(Cell::Null)),
            (json!(""), DEC_12_2, Some(Cell::Null)),
            (json!(""), Bool, Some(Cell::Null)),
            (json!(""), STR_5, Some(text(""))),
            (Value::Null, Json, Some(Cell::Null)),
            // int / bigint
            (json!(42), Int, Some(Cell::Int(42))),
            (json!("42"), Int, Some(Cell::Int(42))),
            (json!(" -7 "), Int, Some(Cell::Int(-7))),
            (json!(12.0), Int, Some(Cell::Int(12))),
            (json!("12.0"), Int, Some(Cell::Int(12))),
            (json!(1.5), Int, None),
            (json!("1.5"), Int, None),
            (json!("abc"), Int, None),
            (json!(3_000_000_000_i64), Int, None),
            (
                json!(3_000_000_000_i64),
                Bigint,
                Some(Cell::Int(3_000_000_000)),
            ),
            (
                json!("9223372036854775807"),
                Bigint,
                Some(Cell::Int(i64::MAX)),
            ),
            (json!("9223372036854775808"), Bigint, None),
            (json!(u64::MAX), Bigint, None),
            (json!(true), Int, Some(Cell::Int(1))),
            (json!([1]), Int, None),
            // decimal
            (json!(12.1), DEC_12_2, Some(dec("12.10"))),
            (json!("12.345"), DEC_12_2, Some(dec("12.35"))),
            (json!("-12.345"), DEC_12_2, Some(dec("-12.35"))),
            (json!(7), DEC_12_2, Some(dec("7.00"))),
            (json!("1e2"), DEC_12_2, Some(dec("100.00"))),
            (json!(99.994), DEC_4_2, Some(dec("99.99"))),
            (json!(99.995), DEC_4_2, None),
            (json!("100"), DEC_4_2, None),
            (json!("x"), DEC_4_2, None),
            // double
            (json!(1.25), Double, Some(Cell::Double(1.25))),
            (json!("1.25"), Double, Some(Cell::Double(1.25))),
            (json!("NaN"), Double, None),
            (json!("one"), Double, None),
            // strings
            (json!("abcde"), STR_5, Some(text("abcde"))),
            (json!("售后单退货了"), STR_5, None),
            (json!("售后单退货"), STR_5, Some(text("售后单退货"))),
            (json!("abcdef"), STR_5, None),
            (json!(123), STR_5, Some(text("123"))),
            (json!({"a": 1}), Text, Some(text(r#"{"a":1}"#))),
            // bool
            (json!(true), Bool, Some(Cell::Bool(true))),
            (json!(0), Bool, Some(Cell::Bool(false))),
            (json!("1"), Bool, Some(Cell::Bool(true))),
            (json!("False"), Bool, Some(Cell::Bool(false))),
            (json!(2), Bool, None),
            (json!("yes"), Bool, None),
            // json
            (
                json!({"k": [1, "x"]}),
                Json,
                Some(Cell::Json(r#"{"k":[1,"x"]}"#.into())),
            ),
            (json!("s"), Json, Some(Cell::Json(r#""s""#.into()))),
            // datetimes (profile zone Asia/Shanghai, UTC+8)
            (
                json!("2024-04-27 15:56:01"),
                Datetime,
                Some(dt("2024-04-27 15:56:01")),
            ),
            (
                json!("2024-04-27 15:56:01.789"),
                Datetime,
                Some(dt("2024-04-27 15:56:01")),
            ),
            (
                json!("2024-04-27"),
                Datetime,
                Some(dt("2024-04-27 00:00:00")),
            ),
            (
                json!("2024-04-27T07:56Z"),
                Datetime,
                Some(dt("2024-04-27 15:56:00")),
            ),
            (
                json!("2024-04-27T07:56:30Z"),
                Datetime,
                Some(dt("2024-04-27 15:56:30")),
            ),
            (
                json!("2024-04-27T15:56:30+08:00"),
                Datetime,
                Some(dt("2024-04-27 15:56:30")),
            ),
            (
                json!("2024-04-27T01:56:30-0600"),
                Datetime,
                Some(dt("2024-04-27 15:56:30")),
            ),
            (
                json!("2024-04-27T15:56:30"),
                Datetime,
                Some(dt("2024-04-27 15:56:30")),
            ),
            (
                json!(1_714_204_561_000_i64),
                Datetime,
                Some(dt("2024-04-27 15:56:01")),
            ),
            (
                json!("1714204561000"),
                Datetime,
                Some(dt("2024-04-27 15:56:01")),
            ),
            (
                json!(1_714_204_561),
                Datetime,
                Some(dt("2024-04-27 15:56:01")),
            ),
            (
                json!("1714204561"),
                Datetime,
                Some(dt("2024-04-27 15:56:01")),
            ),
            (
                json!(1_714_204_561.5),
                Datetime,
                Some(dt("2024-04-27 15:56:01")),
            ),
            (json!("2024-13-01"), Datetime, None),
            (json!("2024-02-30 10:00:00"), Datetime, None),
            (json!("abc"), Datetime, None),
            (
                json!("2024-04-27 15:56"),
                Datetime,
                Some(dt("2024-04-27 15:56:00")),
            ),
            (json!("2024-04-27 15:56:01 junk"), Datetime, None),
            (json!({}), Datetime, None),
            // dates
            (json!("2024-04-27 23:59:59"), Date, Some(date("2024-04-27"))),
            (
                json!("2024-04-27T20:00:00Z"),
                Date,
                Some(date("2024-04-28")),
            ),
            (json!(1_714_204_561_000_i64), Date, Some(date("2024-04-27"))),
            (json!("2024/04/27"), Date, Some(date("2024-04-27"))),
        ]
    }

    #[test]
    fn examples_convert_as_declared() {
        let mut failures = Vec::new();
        for (input, ty, expected) in examples() {
            let got = convert(Some(&input), ty, DEFAULT_TZ);
            let ok = match (&got, &expected) {
                (Ok(cell), Some(want)) => cell == want,
                (Err(_), None) => true,
                _ => false,
            };
            if !ok {
                failures.push(format!("{input} as {ty}: got {got:?}, want {expected:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Number tokens as a vendor writes them (parsed, not built from floats), against the
    /// same values sent as strings: both convert from the exact text.
    #[test]
    fn number_tokens_convert_from_their_exact_text() {
        use ColumnType::{Bigint, Double, Int};
        let dec = |precision, scale| ColumnType::Decimal { precision, scale };
        let examples: Vec<(&str, ColumnType, Result<Cell, ConvertReason>)> = vec![
            (
                "123456789012345678.91",
                dec(20, 2),
                Ok(Cell::Decimal("123456789012345678.91".into())),
            ),
            (
                "12345678901.1234567",
                dec(18, 6),
                Ok(Cell::Decimal("12345678901.123457".into())),
            ),
            ("1.5e3", dec(10, 2), Ok(Cell::Decimal("1500.00".into()))),
            ("-0", dec(10, 2), Ok(Cell::Decimal("0.00".into()))),
            ("99.995", dec(4, 2), Err(ConvertReason::OutOfRange)),
            (
                "12345678901234567890123456789012345678",
                dec(38, 0),
                Ok(Cell::Decimal(
                    "12345678901234567890123456789012345678".into(),
                )),
            ),
            (
                "9007199254740993",
                Bigint,
                Ok(Cell::Int(9_007_199_254_740_993)),
            ),
            ("1.5e3", Bigint, Ok(Cell::Int(1500))),
            ("12.0", Int, Ok(Cell::Int(12))),
            ("-0", Int, Ok(Cell::Int(0))),
            ("1.5e-1", Bigint, Err(ConvertReason::Fraction)),
            (
                "9223372036854775808",
                Bigint,
                Err(ConvertReason::OutOfRange),
            ),
            (
                "18446744073709551616",
                Bigint,
                Err(ConvertReason::OutOfRange),
            ),
            ("1e400", Bigint, Err(ConvertReason::OutOfRange)),
            ("2147483648", Int, Err(ConvertReason::OutOfRange)),
            (
                "123456789012345678901234567890",
                STR_5,
                Err(ConvertReason::TooLong { length: 30, max: 5 }),
            ),
            ("1.50", STR_5, Ok(text("1.50"))),
            // serde_json spells every exponent with its sign; the value is the same.
            ("1e3", STR_5, Ok(text("1e+3"))),
            ("-0", STR_5, Ok(text("-0"))),
            ("0.1", Double, Ok(Cell::Double(0.1))),
        ];
        let mut failures = Vec::new();
        for (token, ty, want) in examples {
            let number: Value = serde_json::from_str(token).expect("a JSON number");
            let string = Value::String(token.to_owned());
            for value in [number, string] {
                let got = convert(Some(&value), ty, DEFAULT_TZ).map_err(|e| e.reason);
                // A string keeps its own text: `"1e3"` stays `1e3`.
                if value == Value::String("1e3".to_owned()) {
                    continue;
                }
                if got != want {
                    failures.push(format!("{value} as {ty}: got {got:?}, want {want:?}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn missing_is_null() {
        assert_eq!(convert(None, ColumnType::Int, DEFAULT_TZ), Ok(Cell::Null));
    }

    #[test]
    fn error_names_value_and_type() {
        let err = convert(Some(&json!("abc")), ColumnType::Datetime, DEFAULT_TZ)
            .expect_err("abc is no datetime");
        assert_eq!(
            err.to_string(),
            r#"cannot convert value "abc" to datetime: not a recognised date or datetime"#
        );
        let err = convert(Some(&json!("abcdef")), STR_5, DEFAULT_TZ).expect_err("too long");
        assert_eq!(
            err.to_string(),
            r#"cannot convert value "abcdef" to string(5): 6 characters, at most 5 allowed"#
        );
        // `text` is bounded in bytes: 21,846 Chinese characters are 65,538 bytes.
        let long = Value::String("退".repeat(21_846));
        let err = convert(Some(&long), ColumnType::Text, DEFAULT_TZ).expect_err("too long");
        assert_eq!(
            err.reason,
            ConvertReason::TooManyBytes {
                bytes: 65_538,
                max: 65_535
            }
        );
        assert!(
            err.to_string()
                .ends_with("to text: 65538 bytes in UTF-8, at most 65535 bytes allowed"),
            "{err}"
        );
        assert!(convert(
            Some(&Value::String("退".repeat(21_845))),
            ColumnType::Text,
            DEFAULT_TZ
        )
        .is_ok());
    }

    #[test]
    fn other_time_zone_is_honoured() {
        let cell = convert(Some(&json!(0)), ColumnType::Datetime, chrono_tz::UTC);
        assert_eq!(cell, Ok(dt("1970-01-01 00:00:00")));
    }

    #[test]
    fn rename_round_trip_reads_back() {
        let cell = convert(
            Some(&json!(1_714_204_561_000_i64)),
            ColumnType::Datetime,
            DEFAULT_TZ,
        )
        .expect("epoch converts");
        let back = cell_to_json(cell.clone());
        assert_eq!(
            convert(Some(&back), ColumnType::Datetime, DEFAULT_TZ),
            Ok(cell)
        );
    }
}
