//! How durations are written for people: the dry run, diagnostics and alerts all print
//! them with [`human`], in the units a spec uses (`7d`, `2h`, `30m`, `45s`, `500ms`).

use std::time::Duration;

/// A duration in the spec's units, largest first, zero parts left out: `7d` (whole days
/// only), `2h`, `1h 30m`, `2m 5s`, `40s`, `0s`; a duration with a fraction of a second in
/// milliseconds, `1500ms`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    if secs > 0 && secs.is_multiple_of(86_400) {
        return format!("{}d", secs / 86_400);
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let parts: Vec<String> = [(h, "h"), (m, "m"), (s, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// Serializes a duration as whole seconds (the plan's JSON form).
pub(super) mod secs {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_the_spec_units() {
        let cases = [
            (Duration::from_secs(7 * 86_400), "7d"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_secs(2 * 3600), "2h"),
            (Duration::from_secs(26 * 3600 + 5 * 60), "26h 5m"),
            (Duration::from_secs(5400), "1h 30m"),
            (Duration::from_secs(3600 + 1), "1h 1s"),
            (Duration::from_secs(30 * 60), "30m"),
            (Duration::from_secs(125), "2m 5s"),
            (Duration::from_secs(40), "40s"),
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1500ms"),
        ];
        for (d, text) in cases {
            assert_eq!(human(d), text, "{d:?}");
        }
    }
}
