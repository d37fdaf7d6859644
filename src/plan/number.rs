//! Numbers read exactly from the text a vendor wrote: a JSON number token (serde_json keeps
//! its text, feature `arbitrary_precision`) or numeric text in a string (`"12.50"`).
//!
//! The one home of exact number reading: `transform::convert` turns it into `bigint` and
//! `decimal` cells, [`super::order`] compares with it. Nothing here goes through `f64`, so
//! `123456789012345678.91` stays that number and `12345678901234567` is not
//! `12345678901234568`; a `double` column converts from the text on its own.
//!
//! Hand-written rather than through `rust_decimal`: MySQL's `DECIMAL` holds 65 digits,
//! `rust_decimal` 28, and a cell only needs the canonical text MySQL reads.

use std::cmp::Ordering;

use compact_str::CompactString;

/// Exponents are saturated here: `1e999999999999` is out of every column's range anyway,
/// and point arithmetic on a saturated exponent cannot overflow an `i64`.
const EXPONENT_LIMIT: i64 = 1 << 40;

/// A number read exactly: `-12.30e1` is negative, digits `123`, point 3 (`0.123 × 10^3`).
///
/// Forms accepted: an optional sign (`+` or `-`), digits with an optional point (`12`,
/// `12.5`, `.5`, `5.`), an optional exponent (`1.5e3`, `2E-2`); at least one digit before
/// the exponent. No spaces, `inf`, `NaN`, hex or `1_000`.
#[derive(Debug, Clone, Copy)]
pub struct ExactNumber<'t> {
    negative: bool,
    /// The significant digits, no leading or trailing zeros, as up to two slices of the
    /// text (before and after the point); both empty for zero.
    parts: [&'t [u8]; 2],
    /// How many of the digits stand before the point; negative or beyond the digits'
    /// length for small or large numbers (`0.005` has point -2, `5e3` point 4).
    point: i64,
}

/// Why a number does not fit an integer column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegerMisfit {
    /// `1.5`, `1.5e-1`.
    Fraction,
    /// Beyond the integer type.
    OutOfRange,
}

impl<'t> ExactNumber<'t> {
    /// Reads `text` (see the type for the forms); `None` when it is not a number.
    pub fn parse(text: &'t str) -> Option<ExactNumber<'t>> {
        let bytes = text.as_bytes();
        let (negative, rest) = match bytes.first() {
            Some(b'-') => (true, &bytes[1..]),
            Some(b'+') => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int, rest) = rest.split_at(int_len);
        let (frac, rest) = match rest.strip_prefix(b".") {
            Some(after) => {
                let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
                after.split_at(n)
            }
            None => (&rest[..0], rest),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let exponent = match rest {
            [] => 0,
            [b'e' | b'E', exp @ ..] => parse_exponent(exp)?,
            _ => return None,
        };
        // Leading zeros of the integer part and trailing zeros of the fraction carry nothing.
        let int = &int[int.iter().take_while(|b| **b == b'0').count()..];
        let frac = &frac[..frac.len() - frac.iter().rev().take_while(|b| **b == b'0').count()];
        let int_len = i64::try_from(int.len()).unwrap_or(i64::MAX);
        let mut point = int_len.saturating_add(exponent);
        let parts = if int.is_empty() {
            // `0.005`: the fraction's leading zeros only move the point.
            let zeros = frac.iter().take_while(|b| **b == b'0').count();
            point = point.saturating_sub(i64::try_from(zeros).unwrap_or(i64::MAX));
            [&frac[zeros..], &frac[..0]]
        } else if frac.is_empty() {
            // `1200`: trailing zeros of the integer part only move nothing.
            let zeros = int.iter().rev().take_while(|b| **b == b'0').count();
            [&int[..int.len() - zeros], frac]
        } else {
            [int, frac]
        };
        Some(ExactNumber {
            negative: negative && !parts[0].is_empty(),
            parts,
            point,
        })
    }

    fn len(&self) -> usize {
        self.parts[0].len() + self.parts[1].len()
    }

    /// The `i`-th significant digit (0-9), 0 outside the digits.
    fn digit(&self, i: i64) -> u8 {
        let Ok(i) = usize::try_from(i) else {
            return 0;
        };
        let [a, b] = self.parts;
        match a.get(i) {
            Some(d) => d - b'0',
            None => b.get(i - a.len()).map_or(0, |d| d - b'0'),
        }
    }

    fn digit_count(&self) -> i64 {
        i64::try_from(self.len()).unwrap_or(i64::MAX)
    }

    pub fn is_zero(&self) -> bool {
        self.len() == 0
    }

    /// The value as an `i64`: exact, or why not (a fraction, or out of range).
    pub fn to_i64(&self) -> Result<i64, IntegerMisfit> {
        if self.is_zero() {
            return Ok(0);
        }
        if self.digit_count() > self.point {
            return Err(IntegerMisfit::Fraction);
        }
        // i64 has 19 digits; i128 holds 20 without overflow.
        if self.point > 19 {
            return Err(IntegerMisfit::OutOfRange);
        }
        let magnitude = (0..self.point).fold(0_i128, |n, i| n * 10 + i128::from(self.digit(i)));
        let value = if self.negative { -magnitude } else { magnitude };
        i64::try_from(value).map_err(|_| IntegerMisfit::OutOfRange)
    }

    /// The value as MySQL's `DECIMAL(precision, scale)` text: exactly `scale` digits after
    /// the point, more digits rounded half away from zero (as MySQL rounds them), no sign on
    /// zero (`-0.001` → `0.00`). `None` when the integer part needs more than
    /// `precision - scale` digits.
    pub fn to_decimal_text(&self, precision: u8, scale: u8) -> Option<CompactString> {
        let int_room = i64::from(precision.saturating_sub(scale));
        let scale = i64::from(scale);
        if self.point > int_room {
            return None;
        }
        let int_digits = self.point.max(0);
        // Digit `k` of the output (integer digits, then `scale` fraction digits) is the
        // number's digit `k + shift`. Slot 0 of the buffer takes a carry out of the top.
        let shift = self.point - int_digits;
        let width = int_digits + scale;
        let mut buffer = [0_u8; 1 + 2 * (u8::MAX as usize)];
        let digits = &mut buffer[..=usize::try_from(width).unwrap_or(0)];
        for (k, slot) in (0..width).zip(digits[1..].iter_mut()) {
            *slot = self.digit(k + shift);
        }
        if self.digit(width + shift) >= 5 {
            for d in digits.iter_mut().rev() {
                if *d == 9 {
                    *d = 0;
                } else {
                    *d += 1;
                    break;
                }
            }
        }
        let (int, frac) = digits.split_at(digits.len() - usize::try_from(scale).unwrap_or(0));
        let int = &int[int.iter().take_while(|d| **d == 0).count()..];
        if i64::try_from(int.len()).unwrap_or(i64::MAX) > int_room {
            return None;
        }
        let zero = int.is_empty() && frac.iter().all(|d| *d == 0);
        let mut text = CompactString::default();
        if self.negative && !zero {
            text.push('-');
        }
        if int.is_empty() {
            text.push('0');
        }
        text.extend(int.iter().map(|d| char::from(b'0' + d)));
        if !frac.is_empty() {
            text.push('.');
            text.extend(frac.iter().map(|d| char::from(b'0' + d)));
        }
        Some(text)
    }
}

/// Numbers order by value: `1.50` equals `1.5e0`, `-0` equals `0`.
impl Ord for ExactNumber<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |n: &ExactNumber<'_>| {
            if n.is_zero() {
                0
            } else if n.negative {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal if sign(self) == 0 => Ordering::Equal,
            Ordering::Equal => {
                let magnitude = self.point.cmp(&other.point).then_with(|| {
                    let n = self.digit_count().max(other.digit_count());
                    (0..n)
                        .map(|i| self.digit(i).cmp(&other.digit(i)))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                });
                if self.negative {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
            unequal => unequal,
        }
    }
}

impl PartialOrd for ExactNumber<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ExactNumber<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for ExactNumber<'_> {}

/// `+3`, `-2`, `10`: the digits after `e`, saturated at [`EXPONENT_LIMIT`].
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0_i64, |n, d| {
        (n * 10 + i64::from(d - b'0')).min(EXPONENT_LIMIT)
    });
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(text: &str, precision: u8, scale: u8) -> Option<String> {
        ExactNumber::parse(text)
            .unwrap_or_else(|| panic!("{text} parses"))
            .to_decimal_text(precision, scale)
            .map(String::from)
    }

    #[test]
    fn decimals_are_exact_and_rounded_half_away_from_zero() {
        let examples: &[(&str, u8, u8, Option<&str>)] = &[
            // The values: through f64 they were 123456789012345660.00 and …123455.
            (
                "123456789012345678.91",
                20,
                2,
                Some("123456789012345678.91"),
            ),
            ("12345678901.1234567", 18, 6, Some("12345678901.123457")),
            ("12.1", 12, 2, Some("12.10")),
            ("12.345", 12, 2, Some("12.35")),
            ("-12.345", 12, 2, Some("-12.35")),
            ("12.344999", 12, 2, Some("12.34")),
            ("7", 12, 2, Some("7.00")),
            ("0", 12, 2, Some("0.00")),
            ("-0", 12, 2, Some("0.00")),
            ("-0.0", 12, 0, Some("0")),
            ("-0.001", 12, 2, Some("0.00")),
            ("-0.005", 12, 2, Some("-0.01")),
            ("0.005", 12, 2, Some("0.01")),
            (".5", 4, 0, Some("1")),
            ("5.", 4, 1, Some("5.0")),
            ("+3.25", 4, 2, Some("3.25")),
            ("000123.4500", 6, 2, Some("123.45")),
            ("1e2", 12, 2, Some("100.00")),
            ("1.5e3", 12, 0, Some("1500")),
            ("1.5E-3", 12, 4, Some("0.0015")),
            ("1.5e-3", 12, 2, Some("0.00")),
            ("2.5e-3", 12, 2, Some("0.00")),
            ("5e-3", 12, 2, Some("0.01")),
            ("99.994", 4, 2, Some("99.99")),
            ("99.995", 4, 2, None),
            ("9.995", 4, 2, Some("10.00")),
            ("100", 4, 2, None),
            ("1e400", 65, 0, None),
            ("1e-400", 12, 2, Some("0.00")),
            ("1e999999999999999999999", 65, 30, None),
            // Beyond u64 and beyond rust_decimal's 28 digits.
            (
                "12345678901234567890123456789012345678",
                38,
                0,
                Some("12345678901234567890123456789012345678"),
            ),
            ("123456789012345678901234567890123456789", 38, 0, None),
            (
                "-18446744073709551617",
                38,
                0,
                Some("-18446744073709551617"),
            ),
        ];
        let mut failures = Vec::new();
        for (text, p, s, want) in examples {
            let got = decimal(text, *p, *s);
            if got.as_deref() != *want {
                failures.push(format!(
                    "{text} as decimal({p},{s}): got {got:?}, want {want:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn integers_are_exact_or_refused_with_a_reason() {
        use IntegerMisfit::{Fraction, OutOfRange};
        let examples: &[(&str, Result<i64, IntegerMisfit>)] = &[
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("42", Ok(42)),
            ("12.0", Ok(12)),
            ("1.5e3", Ok(1500)),
            ("1E2", Ok(100)),
            ("15e-1", Err(Fraction)),
            ("1.5", Err(Fraction)),
            ("1e-400", Err(Fraction)),
            ("9007199254740993", Ok(9_007_199_254_740_993)),
            ("9223372036854775807", Ok(i64::MAX)),
            ("-9223372036854775808", Ok(i64::MIN)),
            ("9223372036854775808", Err(OutOfRange)),
            ("18446744073709551616", Err(OutOfRange)),
            ("1e400", Err(OutOfRange)),
            ("123456789012345678901234567890", Err(OutOfRange)),
        ];
        for (text, want) in examples {
            let got = ExactNumber::parse(text).expect("parses").to_i64();
            assert_eq!(got, *want, "{text}");
        }
    }

    #[test]
    fn only_number_text_parses() {
        for text in [
            "", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,5", " 1", "1 ", "inf", "NaN", "0x10",
            "1_000", "--1", "1e5.5",
        ] {
            assert!(ExactNumber::parse(text).is_none(), "{text:?} parsed");
        }
    }

    #[test]
    fn numbers_order_by_value() {
        let ordered = [
            "-1e3",
            "-100",
            "-99.5",
            "-0.5",
            "-0",
            "0.000",
            "1e-5",
            "0.5",
            "5E-1",
            "1",
            "1.00",
            "9007199254740993",
            "12345678901234567890123",
            "1e400",
        ];
        for pair in ordered.windows(2) {
            let (a, b) = (
                ExactNumber::parse(pair[0]).expect("parses"),
                ExactNumber::parse(pair[1]).expect("parses"),
            );
            let equal = matches!(
                (pair[0], pair[1]),
                ("-0", "0.000") | ("0.5", "5E-1") | ("1", "1.00")
            );
            let want = if equal {
                Ordering::Equal
            } else {
                Ordering::Less
            };
            assert_eq!(a.cmp(&b), want, "{} vs {}", pair[0], pair[1]);
            assert_eq!(b.cmp(&a), want.reverse(), "{} vs {}", pair[1], pair[0]);
        }
    }
}
