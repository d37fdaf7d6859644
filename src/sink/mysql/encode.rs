//! Cells as the server takes them: `LOAD DATA` text (tab-separated, backslash-escaped) and
//! bound statement values.
//!
//! Hand-written rather than through `fmt`: encoding is most of the writer's client CPU
//! (BENCHMARKS.md), and a third of a row's cells are money or times.

use std::fmt::Write as _;

use mysql_async::Value as SqlValue;

use crate::transform::Cell;

/// Appends one row as `LOAD DATA` text: tab-separated, `\N` for NULL, backslash escapes.
pub(in crate::sink) fn encode_row(row: &[Cell], out: &mut Vec<u8>) {
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match cell {
            Cell::Null => out.extend_from_slice(b"\\N"),
            Cell::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Cell::Double(x) => {
                let _ = write!(ByteWriter(out), "{x}");
            }
            // Digits, a point and a sign: nothing to escape.
            Cell::Decimal(d) => out.extend_from_slice(d.as_bytes()),
            Cell::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
            Cell::Text(s) | Cell::Json(s) => escape_into(s.as_bytes(), out),
            Cell::Date(d) => {
                use chrono::Datelike;
                push_digits(out, d.year(), 4);
                out.push(b'-');
                push_digits(out, d.month(), 2);
                out.push(b'-');
                push_digits(out, d.day(), 2);
            }
            Cell::DateTime(t) => {
                use chrono::{Datelike, Timelike};
                push_digits(out, t.year(), 4);
                out.push(b'-');
                push_digits(out, t.month(), 2);
                out.push(b'-');
                push_digits(out, t.day(), 2);
                out.push(b' ');
                push_digits(out, t.hour(), 2);
                out.push(b':');
                push_digits(out, t.minute(), 2);
                out.push(b':');
                push_digits(out, t.second(), 2);
            }
        }
    }
    out.push(b'\n');
}

/// Zero-padded decimal digits; years outside 0..=9999 fall back to `Display`.
fn push_digits<N: Into<i64>>(out: &mut Vec<u8>, n: N, width: u32) {
    let n: i64 = n.into();
    if !(0..10_i64.pow(width)).contains(&n) {
        let _ = write!(ByteWriter(out), "{n}");
        return;
    }
    // Right to left, dividing by the constant 10 (a multiplication once compiled), not by
    // a power of ten computed for every digit.
    let mut digits = [b'0'; 8];
    let width = (width as usize).min(digits.len());
    let mut rest = n;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    // Fast path: most values need no escaping.
    if !bytes
        .iter()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\0'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\0' => out.extend_from_slice(b"\\0"),
            other => out.push(other),
        }
    }
}

/// `fmt::Write` over a byte buffer, so numbers format without a temporary `String`.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

pub(in crate::sink) fn to_sql_value(cell: &Cell) -> SqlValue {
    use chrono::{Datelike, Timelike};
    let narrow = |n: u32| u8::try_from(n).unwrap_or(0);
    match cell {
        Cell::Null => SqlValue::NULL,
        Cell::Int(n) => SqlValue::Int(*n),
        Cell::Double(x) => SqlValue::Double(*x),
        Cell::Decimal(d) => SqlValue::Bytes(d.as_bytes().to_vec()),
        Cell::Text(s) | Cell::Json(s) => SqlValue::Bytes(s.as_bytes().to_vec()),
        Cell::Bool(b) => SqlValue::Int(i64::from(*b)),
        Cell::Date(d) => SqlValue::Date(
            u16::try_from(d.year()).unwrap_or(0),
            narrow(d.month()),
            narrow(d.day()),
            0,
            0,
            0,
            0,
        ),
        Cell::DateTime(t) => SqlValue::Date(
            u16::try_from(t.year()).unwrap_or(0),
            narrow(t.month()),
            narrow(t.day()),
            narrow(t.hour()),
            narrow(t.minute()),
            narrow(t.second()),
            t.nanosecond() / 1000,
        ),
    }
}
