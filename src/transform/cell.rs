//! `Cell`: one converted column value, ready to be bound into a MySQL statement.

use chrono::{NaiveDate, NaiveDateTime};

/// A text cell's value: up to 24 bytes inline, no allocation. Most text columns (codes,
/// statuses, short names) fit, and every allocation a row makes is freed again by the
/// writer on another thread (~17 of them per row of the after-sales sample).
pub type CellText = compact_str::CompactString;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Double(f64),
    /// A `decimal(p,s)` value as MySQL reads it: exactly `s` digits after the point, no
    /// exponent, no sign on zero (`-12.30`, `0.00`, up to 65 digits). Text rather than a
    /// number type: it is made exactly from the vendor's text (`plan::number`) and only ever
    /// written out.
    Decimal(CellText),
    Text(CellText),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Bool(bool),
    /// Serialized JSON text.
    Json(CellText),
}

impl Cell {
    /// How the cell reads in plan tables, TSV for `LOAD DATA` and error messages.
    pub fn render(&self) -> String {
        match self {
            Cell::Null => "NULL".to_owned(),
            Cell::Int(n) => n.to_string(),
            Cell::Double(x) => x.to_string(),
            Cell::Text(s) | Cell::Json(s) | Cell::Decimal(s) => s.to_string(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::DateTime(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            Cell::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        }
    }
}
