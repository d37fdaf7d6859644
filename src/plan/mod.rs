//! The compiled, validated plan: plain data that `exec`, the dry run and `serve` consume.
//! Nothing downstream re-parses text.
//!
//! The base layer: every module above may use it, and it imports nothing above it. `check`
//! builds a `Plan` (`check::check`); `plan` never imports `check`. Besides the plan's types
//! (`types.rs`) it owns their vocabulary: dotted paths and the one JSON walker
//! ([`FieldPath`], `path.rs`), map expressions with their spelling and the fields they read
//! (`expr.rs`), exact numbers (`number.rs`), paging with its printed form (`paging.rs`), how
//! durations are written ([`human`], `duration.rs`), spans of wall-clock time ([`Window`],
//! `time.rs`), and what raw SQL from a spec may hold ([`sql_fault`], `sql.rs`).

mod duration;
mod expr;
mod names;
pub mod number;
pub mod order;
mod paging;
mod path;
mod sql;
pub mod time;
mod types;

pub use duration::human;
pub use expr::{ColumnPlan, ColumnType, Expr, Piece};
pub use names::closest;
pub use order::ValueOrder;
pub use paging::{EndRule, PaginationPlan};
pub use path::{walk, FieldPath};
pub use sql::{sql_fault, SqlFault};
pub use time::Window;
pub use types::*;

use std::path::Path;

/// A spec's name: its file stem (`specs/jst-refunds.qsync` → `jst-refunds`), the key of its
/// state rows; `spec` when the path has no stem.
pub fn spec_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "spec".to_owned(), |s| s.to_string_lossy().into_owned())
}
