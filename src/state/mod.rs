//! qsync's own bookkeeping, as data and rules: cursors (high-water marks), the window
//! ledger, run history, rejected records and per-spec leases.
//!
//! Owns the domain types ([`Cursor`], [`WindowRecord`], [`Reject`], [`Lease`]), the one
//! run-result type ([`RunSummary`]) and the history row derived from it ([`RunRecord`]),
//! what commits with a window's last rows ([`WindowClose`]), the lease rules (owners, when
//! a holder is known dead) and the one lease holder that `run`, `replay` and `serve` use
//! ([`hold_lease`]). It owns no SQL and no driver: the sink stores these
//! (`sink::StateStore` keeps `_qsync_state`, `_qsync_windows`, `_qsync_runs`,
//! `_qsync_rejects` and `_qsync_leases` in the target database and implements [`Leases`]),
//! so a second sink kind brings its own store and leaves this module alone. It does not
//! decide *when* a cursor advances; that is `exec`'s job.
//!
//! Times: window bounds and high-water marks are local datetimes in the profile zone, as the
//! vendor APIs take them; bookkeeping times (`updated_at`, lease expiry) are the store's
//! clock (the MySQL server's `NOW(6)`), so instances with skewed clocks still agree on who
//! holds a lease.

mod hold;
mod lease;
mod ledger;
mod run;

use chrono::NaiveDateTime;

pub use self::hold::{hold_lease, HeldLease, HoldOptions, Holding};
pub use self::lease::{host_name, run_owner, Lease, Leases};
pub use self::ledger::{Reject, WindowRecord, WindowStatus, REJECT_RAW_LIMIT, REJECT_REASON_LIMIT};
pub use self::run::{RunOutcome, RunRecord, RunSummary};

/// A spec's cursor: how far its data is known to be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub spec: String,
    /// The end of the last committed window.
    pub high_water: NaiveDateTime,
    /// Hash of the spec that wrote it, to notice a changed spec.
    pub spec_hash: String,
    pub updated_at: NaiveDateTime,
}

/// What commits in the same transaction as a window's last rows (design guarantee 3): the
/// window's rejects, its ledger row, and the cursor's move when the window moves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowClose {
    /// The window's ledger row (`spec` names the cursor too).
    pub ledger: WindowRecord,
    /// Records of the window that failed conversion.
    pub rejects: Vec<Reject>,
    /// The cursor's new high-water mark; `None` leaves the cursor where it is (a replay, or
    /// a window that ends before the mark).
    pub high_water: Option<NaiveDateTime>,
    /// Hash of the spec, stored with the cursor.
    pub spec_hash: String,
}
