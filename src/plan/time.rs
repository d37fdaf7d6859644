//! Times as instants: how wall-clock times of the profile's time zone (window bounds, marks,
//! `--since`/`--until`, zone-less vendor times) become instants and back, and how the time
//! texts vendors write are read.
//!
//! Window bounds and marks are kept as wall-clock times of the profile's zone (that is what
//! vendors take in their parameters and what `_qsync_state` stores), but every computation
//! on them (lag, overlap, lookback, splitting into windows, comparing) goes through
//! instants, so that a daylight-saving change neither produces a time that does not exist
//! nor reads an hour twice or not at all. A wall-clock time maps to an instant by one rule
//! ([`instant`]):
//! - a time that occurs twice (the repeated hour in autumn) is its first occurrence;
//! - a time that does not exist (the hour skipped in spring) is the moment the clocks jump,
//!   the first instant after the gap.
//!
//! The mapping never decreases as the wall-clock time grows, so windows that share a bound
//! stay contiguous as instants, and a mark read back never lands after the records it
//! covered.
//!
//! Vendor time texts ([`parse`]): epoch seconds or milliseconds (as numbers or digits),
//! `yyyy-MM-dd HH:mm:ss[.SSS]` and `yyyy/MM/dd ...`, unpadded fields (`2024-1-9 9:05:00`),
//! `yyyy-MM-dd HH:mm`, a bare date, and ISO 8601 with `T`, `Z` or an offset
//! (`2024-04-27T07:56Z`, `+08:00`, `-0600`). Zone-less texts are wall-clock times of the
//! profile's zone; texts with an offset and epoch values are instants.
//!
//! A span of such times, `start .. end`, is a [`Window`]: a request window, a run's range.

use chrono::offset::LocalResult;
use chrono::{
    DateTime, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde_json::Value;

/// A span of wall-clock times of the profile's zone, start included and end excluded: one
/// request window, or the whole range a run read. Printed (and serialized, for the status
/// page and `/api/runs`) as `2024-03-01 00:00:00 .. 2024-03-02 00:00:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} .. {}",
            self.start.format("%Y-%m-%d %H:%M:%S"),
            self.end.format("%Y-%m-%d %H:%M:%S")
        )
    }
}

/// Epoch numbers at or above this absolute value are milliseconds, smaller ones seconds
/// (10^11 seconds is the year 5138, 10^11 milliseconds is 1973).
pub const EPOCH_MILLIS_FROM: u64 = 100_000_000_000;

/// The instant of wall-clock time `local` in `tz`: its first occurrence when the clocks go
/// back, the moment the clocks jump when `local` falls in a spring-forward gap.
pub fn instant(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => gap_end(local, tz),
    }
}

/// The wall-clock time of `at` in `tz`.
pub fn local(at: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    at.with_timezone(&tz).naive_local()
}

/// `local` moved by `by` of elapsed time (not of wall-clock time): across a change of the
/// clocks, one hour later is one hour later.
pub fn shift(local_time: NaiveDateTime, by: TimeDelta, tz: Tz) -> NaiveDateTime {
    let at = instant(local_time, tz);
    local(at.checked_add_signed(by).unwrap_or(at), tz)
}

/// `local` itself when it exists in `tz`, else the wall-clock time right after the gap it
/// falls in (`2024-03-10 02:30` in New York → `03:00`).
pub fn existing(local_time: NaiveDateTime, tz: Tz) -> NaiveDateTime {
    local(instant(local_time, tz), tz)
}

/// The first instant whose wall-clock time is at or after `local`, for a `local` in a gap.
/// The gap's length and position come from the zone's offsets a day either side; the
/// instant is found by bisection between the two readings of `local` (a gap is at most a
/// day long: Samoa skipped 2011-12-30).
fn gap_end(local_time: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let offset_at = |naive: NaiveDateTime| {
        i64::from(tz.offset_from_utc_datetime(&naive).fix().local_minus_utc())
    };
    let day = TimeDelta::days(1);
    let readings = [
        local_time - TimeDelta::seconds(offset_at(local_time - day)),
        local_time - TimeDelta::seconds(offset_at(local_time + day)),
    ];
    let seconds = |naive: NaiveDateTime| naive.and_utc().timestamp();
    let (mut lo, mut hi) = (
        seconds(readings[0].min(readings[1])),
        seconds(readings[0].max(readings[1])),
    );
    let wall = |secs: i64| DateTime::from_timestamp(secs, 0).map(|at| self::local(at, tz));
    // Invariant: the wall-clock time at `lo` is before `local`, at `hi` not before it.
    if wall(hi).is_none_or(|w| w < local_time) {
        return Utc.from_utc_datetime(&readings[0].max(readings[1]));
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if wall(mid).is_some_and(|w| w < local_time) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or_else(|| Utc.from_utc_datetime(&local_time))
}

/// A time as a vendor wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorTime {
    /// No zone given: a wall-clock time of the profile's zone.
    Local(NaiveDateTime),
    /// An offset, `Z` or an epoch value: an instant.
    Instant(DateTime<Utc>),
}

impl VendorTime {
    /// The instant, reading a zone-less time in `tz` (see [`instant`]).
    pub fn instant(self, tz: Tz) -> DateTime<Utc> {
        match self {
            VendorTime::Local(naive) => instant(naive, tz),
            VendorTime::Instant(at) => at,
        }
    }

    /// The wall-clock time in `tz`: a zone-less time as written, an instant converted.
    pub fn local(self, tz: Tz) -> NaiveDateTime {
        match self {
            VendorTime::Local(naive) => naive,
            VendorTime::Instant(at) => local(at, tz),
        }
    }
}

/// Reads a JSON value as a time: epoch numbers, or a text [`parse`] reads.
pub fn read(value: &Value) -> Option<VendorTime> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                epoch(i)
            } else {
                epoch_float(n.as_f64()?)
            }
        }
        Value::String(s) => parse(s.trim()),
        _ => None,
    }
}

/// The instant of a JSON time value, zone-less times read in `tz`.
pub fn read_instant(value: &Value, tz: Tz) -> Option<DateTime<Utc>> {
    read(value).map(|t| t.instant(tz))
}

fn epoch(n: i64) -> Option<VendorTime> {
    let at = if n.unsigned_abs() >= EPOCH_MILLIS_FROM {
        DateTime::from_timestamp_millis(n)?
    } else {
        DateTime::from_timestamp(n, 0)?
    };
    Some(VendorTime::Instant(at))
}

fn epoch_float(x: f64) -> Option<VendorTime> {
    if !x.is_finite() || x.abs() > 1e16 {
        return None;
    }
    #[allow(
        clippy::cast_precision_loss,
        reason = "a constant well inside f64's exact range"
    )]
    let millis = if x.abs() >= EPOCH_MILLIS_FROM as f64 {
        x
    } else {
        x * 1000.0
    };
    #[allow(
        clippy::cast_possible_truncation,
        reason = "bounded by the check above"
    )]
    let at = DateTime::from_timestamp_millis(millis.round() as i64)?;
    Some(VendorTime::Instant(at))
}

/// A tiny cursor over ASCII digits: hand-rolled because `NaiveDateTime::parse_from_str`
/// costs several times more and this runs once per date cell.
struct Digits<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Digits<'_> {
    /// Exactly `width` digits.
    fn fixed(&mut self, width: usize) -> Option<u32> {
        let end = self.pos.checked_add(width)?;
        let slice = self.bytes.get(self.pos..end)?;
        let mut n = 0u32;
        for &b in slice {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(b - b'0');
        }
        self.pos = end;
        Some(n)
    }

    /// One or two digits (`9` or `09`), as vendors write months, days and hours.
    fn short(&mut self) -> Option<u32> {
        let first = self.peek().filter(u8::is_ascii_digit)?;
        self.pos += 1;
        let mut n = u32::from(first - b'0');
        if let Some(second) = self.peek().filter(u8::is_ascii_digit) {
            self.pos += 1;
            n = n * 10 + u32::from(second - b'0');
        }
        Some(n)
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// Whether `s` is an optionally signed run of ASCII digits.
pub fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Parses the time texts vendors write; see the module doc for the forms. `None` for
/// anything else, a date that does not exist (`2024-02-30`) included.
pub fn parse(s: &str) -> Option<VendorTime> {
    let bytes = s.as_bytes();
    if !bytes.is_empty() && is_integer_text(s) {
        return epoch(s.parse().ok()?);
    }
    let mut c = Digits { bytes, pos: 0 };
    let year = c.fixed(4)?;
    let sep = c.peek()?;
    if sep != b'-' && sep != b'/' {
        return None;
    }
    c.pos += 1;
    let month = c.short()?;
    if !c.eat(sep) {
        return None;
    }
    let day = c.short()?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if c.done() {
        return Some(VendorTime::Local(date.and_time(NaiveTime::MIN)));
    }
    if !(c.eat(b' ') || c.eat(b'T')) {
        return None;
    }
    let hour = c.short()?;
    if !c.eat(b':') {
        return None;
    }
    let minute = c.fixed(2)?;
    let (mut second, mut nanos) = (0, 0);
    if c.eat(b':') {
        second = c.fixed(2)?;
        if c.eat(b'.') {
            let start = c.pos;
            let mut scale = 100_000_000u32;
            while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
                nanos += u32::from(b - b'0') * scale;
                scale /= 10;
                c.pos += 1;
            }
            if c.pos == start {
                return None;
            }
        }
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let wall = date.and_time(time);
    if c.done() {
        return Some(VendorTime::Local(wall));
    }
    let offset_secs: i32 = match c.peek()? {
        b'Z' | b'z' => {
            c.pos += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            c.pos += 1;
            let h = c.fixed(2)?;
            c.eat(b':');
            let m = c.fixed(2)?;
            let secs = i32::try_from(h * 3600 + m * 60).ok()?;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if !c.done() {
        return None;
    }
    let utc = wall.checked_sub_signed(TimeDelta::seconds(i64::from(offset_secs)))?;
    Some(VendorTime::Instant(Utc.from_utc_datetime(&utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW_YORK: Tz = chrono_tz::America::New_York;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("test time")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(&t(s))
    }

    #[test]
    fn wall_clock_times_map_to_instants_across_daylight_saving() {
        // Plain: New York is UTC-5 in winter.
        assert_eq!(
            instant(t("2024-01-10 12:00:00"), NEW_YORK),
            utc("2024-01-10 17:00:00")
        );
        // Spring forward, 2024-03-10: 02:00-03:00 does not exist; it is the jump, 07:00Z.
        assert_eq!(
            instant(t("2024-03-10 02:00:00"), NEW_YORK),
            utc("2024-03-10 07:00:00")
        );
        assert_eq!(
            instant(t("2024-03-10 02:59:59"), NEW_YORK),
            utc("2024-03-10 07:00:00")
        );
        assert_eq!(
            instant(t("2024-03-10 01:59:59"), NEW_YORK),
            utc("2024-03-10 06:59:59")
        );
        assert_eq!(
            instant(t("2024-03-10 03:00:00"), NEW_YORK),
            utc("2024-03-10 07:00:00")
        );
        assert_eq!(
            existing(t("2024-03-10 02:30:00"), NEW_YORK),
            t("2024-03-10 03:00:00")
        );
        // Fall back, 2024-11-03: 01:00-02:00 occurs twice; the first (EDT, UTC-4) counts.
        assert_eq!(
            instant(t("2024-11-03 01:30:00"), NEW_YORK),
            utc("2024-11-03 05:30:00")
        );
        assert_eq!(
            instant(t("2024-11-03 02:00:00"), NEW_YORK),
            utc("2024-11-03 07:00:00")
        );
        // Elapsed time, not wall-clock time.
        assert_eq!(
            shift(t("2024-03-10 01:30:00"), TimeDelta::hours(1), NEW_YORK),
            t("2024-03-10 03:30:00")
        );
        assert_eq!(
            shift(t("2024-03-10 03:02:00"), TimeDelta::minutes(-5), NEW_YORK),
            t("2024-03-10 01:57:00")
        );
        // Samoa skipped a whole day (2011-12-30).
        let apia = chrono_tz::Pacific::Apia;
        assert_eq!(
            existing(t("2011-12-30 12:00:00"), apia),
            t("2011-12-31 00:00:00")
        );
        // Zones without daylight saving are untouched.
        let shanghai = chrono_tz::Asia::Shanghai;
        assert_eq!(
            instant(t("2024-03-10 02:30:00"), shanghai),
            utc("2024-03-09 18:30:00")
        );
    }

    #[test]
    fn the_mapping_never_goes_back() {
        for tz in [
            NEW_YORK,
            chrono_tz::Europe::Berlin,
            chrono_tz::Australia::Lord_Howe,
        ] {
            for day in [
                "2024-03-10",
                "2024-03-31",
                "2024-04-07",
                "2024-10-06",
                "2024-10-27",
                "2024-11-03",
            ] {
                let mut wall = t(&format!("{day} 00:00:00"));
                let mut last = instant(wall, tz);
                for _ in 0..(4 * 60) {
                    wall += TimeDelta::minutes(1);
                    let now = instant(wall, tz);
                    assert!(now >= last, "{tz} {wall}: {now} before {last}");
                    assert!(
                        local(now, tz) >= wall,
                        "{tz} {wall}: maps back before itself"
                    );
                    last = now;
                }
            }
        }
    }

    #[test]
    fn vendor_texts_are_read() {
        let local = |s: &str| Some(VendorTime::Local(t(s)));
        let at = |s: &str| Some(VendorTime::Instant(utc(s)));
        assert_eq!(parse("2024-01-09 10:00:00"), local("2024-01-09 10:00:00"));
        assert_eq!(parse("2024-1-9 10:00:00"), local("2024-01-09 10:00:00"));
        assert_eq!(parse("2024/1/9 9:05:00"), local("2024-01-09 09:05:00"));
        assert_eq!(parse("2024-01-09"), local("2024-01-09 00:00:00"));
        assert_eq!(parse("2024-01-09 10:00"), local("2024-01-09 10:00:00"));
        assert_eq!(parse("2024-04-27T07:56Z"), at("2024-04-27 07:56:00"));
        assert_eq!(
            parse("2024-04-27T15:56:30+08:00"),
            at("2024-04-27 07:56:30")
        );
        assert_eq!(parse("2024-04-27T01:56:30-0600"), at("2024-04-27 07:56:30"));
        assert_eq!(parse("1714204561"), at("2024-04-27 07:56:01"));
        assert_eq!(parse("1714204561000"), at("2024-04-27 07:56:01"));
        assert_eq!(
            read(&serde_json::json!(1_714_204_561_000_i64)),
            at("2024-04-27 07:56:01")
        );
        for bad in [
            "2024-13-01",
            "2024-02-30",
            "2024-1-9 10:0:00",
            "abc",
            "2024-01-09 10:00:00 x",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
