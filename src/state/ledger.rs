//! The window ledger and rejects: what each window did, and the raw records that could not
//! become rows.
//!
//! Owns the row types of `_qsync_windows` and `_qsync_rejects` and the words the status
//! column holds. How they are stored is the sink's (`sink::StateStore`); runs are `run.rs`.

use chrono::NaiveDateTime;

/// Where a window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStatus {
    /// Being fetched and written.
    Running,
    /// Rows and cursor committed.
    Done,
    /// Gave up after retries; the cursor did not move past it.
    Failed,
}

impl WindowStatus {
    /// The stored word: `running`, `done` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowStatus::Running => "running",
            WindowStatus::Done => "done",
            WindowStatus::Failed => "failed",
        }
    }

    /// Reads a stored word back; anything unknown reads as `Running` (not finished).
    pub fn parse(text: &str) -> WindowStatus {
        match text {
            "done" => WindowStatus::Done,
            "failed" => WindowStatus::Failed,
            _ => WindowStatus::Running,
        }
    }
}

/// One row of the window ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRecord {
    pub spec: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub pages: u64,
    /// The vendor's total for the window, when it reports one.
    pub reported_total: Option<u64>,
    pub fetched: u64,
    pub written: u64,
    pub rejects: u64,
    pub status: WindowStatus,
    pub attempts: u32,
}

/// The most of a rejected record's raw JSON that `_qsync_rejects` keeps, in bytes. A
/// vendor can send a record of any size (a 20 MB field); the whole of it would exceed the
/// server's `max_allowed_packet`, fail the window's commit and so every rerun of it.
pub const REJECT_RAW_LIMIT: usize = 64 * 1024;

/// The most of a reject's reason kept, in bytes (a reason quotes the value it refused).
pub const REJECT_REASON_LIMIT: usize = 8 * 1024;

/// A record that failed conversion, kept with its raw JSON (the first
/// [`REJECT_RAW_LIMIT`] bytes), its full length and a SHA-256 of the whole, so a cut
/// record can still be matched with the vendor's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub spec: String,
    pub window_start: Option<NaiveDateTime>,
    pub window_end: Option<NaiveDateTime>,
    /// The record as received, cut to [`REJECT_RAW_LIMIT`] bytes at a character boundary.
    pub raw: String,
    /// Bytes of the whole record.
    pub raw_length: u64,
    /// SHA-256 of the whole record, lowercase hex.
    pub raw_sha256: String,
    pub reason: String,
}

impl Reject {
    /// A reject of `raw` (the record's whole text) for `reason`, each bounded.
    pub fn new(
        spec: &str,
        window: Option<(NaiveDateTime, NaiveDateTime)>,
        raw: &str,
        reason: &str,
    ) -> Reject {
        use sha2::Digest as _;
        Reject {
            spec: spec.to_owned(),
            window_start: window.map(|w| w.0),
            window_end: window.map(|w| w.1),
            raw: cut(raw, REJECT_RAW_LIMIT).to_owned(),
            raw_length: raw.len() as u64,
            raw_sha256: hex::encode(sha2::Sha256::digest(raw.as_bytes())),
            reason: cut(reason, REJECT_REASON_LIMIT).to_owned(),
        }
    }

    /// Whether `raw` holds the whole record.
    pub fn is_whole(&self) -> bool {
        self.raw.len() as u64 == self.raw_length
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod reject_tests {
    use super::*;

    #[test]
    fn a_reject_keeps_the_first_64_kib_the_length_and_a_hash_of_the_whole() {
        let whole = format!("{{\"name\":\"{}\"}}", "界".repeat(30_000));
        let reject = Reject::new("s", None, &whole, &"r".repeat(20_000));
        assert_eq!(reject.raw_length, whole.len() as u64);
        assert!(reject.raw.len() <= REJECT_RAW_LIMIT && reject.raw.len() > REJECT_RAW_LIMIT - 4);
        assert!(whole.starts_with(&reject.raw));
        assert!(!reject.is_whole());
        assert_eq!(reject.reason.len(), REJECT_REASON_LIMIT);
        let small = Reject::new("s", None, "{}", "r");
        assert!(small.is_whole());
        assert_eq!(
            small.raw_sha256,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
