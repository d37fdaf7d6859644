//! Cron schedules in the profile's time zone, and the rule for missed slots.
//!
//! Owns turning `@schedule` / `@remedy` text into "when is the next slot after t". It does
//! not own what happens at a slot (the scheduler in `serve`). Missed slots collapse: the next
//! due time is always computed from *now*, never from the slot that was due, so a daemon
//! that was down (or a clock that jumped) runs a spec once, not once per missed slot.

use chrono::{DateTime, DurationRound, TimeZone, Utc};
use chrono_tz::Tz;

/// A parsed cron expression bound to a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses a 5-field (or 6-field, with seconds) cron expression.
    pub fn parse(text: &str, zone: Tz) -> Result<Schedule, String> {
        // Same options as `check` uses, so what checks is what runs.
        let cron = croner::Cron::new(text)
            .with_seconds_optional()
            .with_dom_and_dow()
            .parse()
            .map_err(|e| format!("`{text}` is not a cron expression: {e}"))?;
        Ok(Schedule {
            text: text.to_owned(),
            cron,
            zone,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let whole = after
            .duration_trunc(chrono::Duration::seconds(1))
            .unwrap_or(after);
        let local = self.zone.from_utc_datetime(&whole.naive_utc());
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// When a job last seen at `last_run` is next due, given the time is `now`: a slot
    /// missed since `last_run` is due at once (one run, however many slots were missed);
    /// otherwise the next slot after `now`.
    pub fn due_after_downtime(
        &self,
        last_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if let Some(last) = last_run {
            if let Some(missed) = self.next_after(last) {
                if missed <= now {
                    return Some(now);
                }
            }
        }
        self.next_after(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn next_slot_is_in_the_profile_zone() {
        let schedule = Schedule::parse("2 1 * * *", chrono_tz::Asia::Shanghai).unwrap();
        // 01:02 in Shanghai is 17:02 UTC the day before.
        let next = schedule.next_after(utc("2024-03-01T12:00:00Z")).unwrap();
        assert_eq!(next, utc("2024-03-01T17:02:00Z"));
    }

    #[test]
    fn seconds_field_is_optional() {
        let schedule = Schedule::parse("*/10 * * * * *", chrono_tz::UTC).unwrap();
        let next = schedule.next_after(utc("2024-03-01T12:00:03.5Z")).unwrap();
        assert_eq!(next, utc("2024-03-01T12:00:10Z"));
        let next = schedule.next_after(next).unwrap();
        assert_eq!(next, utc("2024-03-01T12:00:20Z"));
    }

    #[test]
    fn missed_slots_run_once() {
        let schedule = Schedule::parse("* * * * *", chrono_tz::UTC).unwrap();
        let now = utc("2024-03-01T12:00:30Z");
        // Down for an hour: due now, once.
        let due = schedule.due_after_downtime(Some(utc("2024-03-01T11:00:30Z")), now);
        assert_eq!(due, Some(now));
        // Ran within the current minute: the next slot.
        let due = schedule.due_after_downtime(Some(utc("2024-03-01T12:00:10Z")), now);
        assert_eq!(due, Some(utc("2024-03-01T12:01:00Z")));
        // Never ran: wait for the schedule.
        assert_eq!(
            schedule.due_after_downtime(None, now),
            Some(utc("2024-03-01T12:01:00Z"))
        );
    }

    #[test]
    fn bad_cron_is_an_error() {
        assert!(Schedule::parse("every day", chrono_tz::UTC).is_err());
    }
}
