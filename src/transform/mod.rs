//! Records → rows: flatten, rename, split, filter, map and convert. Pure functions, no I/O.
//!
//! The entry point is [`Transformer`]: built once per run from the plan's steps and columns
//! (paths resolved, date formats compiled), then [`Transformer::rows`] turns one vendor
//! record into zero or more rows of [`Cell`]s. It does not fetch records, write rows or store
//! rejects; the caller stores a rejected record's raw JSON in `_qsync_rejects`.
//!
//! `map.rs` compiles and evaluates expressions and filters (a new map function lives there,
//! beside its `plan::Expr` variant and its rule in `check/map.rs`), `flatten.rs` resolves
//! names and expands `@flatten`, `convert.rs` turns values into column types.
//!
//! Row layout: one cell per *bound* column ([`ColumnPlan::is_bound`]), in column order.
//! `sql("...")` columns carry no cell: the sink writes their SQL text into the statement.

mod cell;
pub mod convert;
mod flatten;
mod map;

pub mod bench;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

pub use cell::{Cell, CellText};
pub use convert::{convert, ConvertError, ConvertReason, DEFAULT_TZ};

use self::flatten::{elements, Binding, Frame, Scope};
use self::map::{compile_expr, reads_record_only, Compiled, CompiledFilter, Row};
use crate::plan::{ColumnPlan, ColumnType, TransformStep};

/// The run's clock: `now()` and `days_ago(n)` read it, and zone-less datetimes are in `tz`.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    pub now: DateTime<Utc>,
    pub tz: Tz,
}

impl RunClock {
    /// The current time in the default zone (Asia/Shanghai).
    pub fn system() -> RunClock {
        RunClock {
            now: Utc::now(),
            tz: DEFAULT_TZ,
        }
    }
}

/// A record that cannot become rows; the whole record is rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// `as_date = as_date : datetime` with `"as_date": "abc"`.
    #[error("cannot convert `{column}` value {} to {}: {}", source.value, source.ty, source.reason)]
    Convert {
        column: String,
        source: ConvertError,
    },
    /// `id = "<as_id>-<items_asi_id>"` with no `asi_id` in an item.
    #[error("field `{field}` used by `{column}` is missing or null")]
    MissingField { column: String, field: String },
    /// `@rename d -> d2 : date` with `"d": "abc"`.
    #[error("cannot convert renamed field `{field}`: {source}")]
    Rename { field: String, source: ConvertError },
    /// A date format that chrono refuses while formatting.
    #[error("cannot format the date of `{column}`")]
    DateFormat { column: String },
    /// `"records": [1, "two", null, [3], true]`: a record must be a JSON object, or every
    /// column would be NULL.
    #[error("the record is {kind}, not a JSON object")]
    NotAnObject { kind: &'static str },
}

/// A plan the transformer cannot compile (normally caught by `check`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// `d = date_format(x, "%Q")`.
    #[error("invalid date format {format:?} in column `{column}`")]
    DateFormat { column: String, format: String },
}

/// Compiled steps and columns: turns records into rows.
#[derive(Debug)]
pub struct Transformer {
    clock: RunClock,
    scope: Scope,
    /// The array binding of each flatten, in order.
    flattens: Vec<Binding>,
    /// `filters[k]`: filters that run after `k` flattens.
    filters: Vec<Vec<CompiledFilter>>,
    /// Bound columns only, in row order.
    columns: Vec<CompiledColumn>,
}

#[derive(Debug)]
struct CompiledColumn {
    name: String,
    ty: ColumnType,
    expr: Compiled,
    /// Reads only the record, not flatten elements: computed once per record and copied
    /// into each of its rows, which more than doubles throughput for flattened records.
    record_only: bool,
}

/// Cells of the record-only columns of the record being expanded, computed on first use
/// so that a record whose rows are all filtered out is not rejected for them.
#[derive(Default)]
struct RecordCells {
    ready: bool,
    cells: Vec<Cell>,
}

impl Transformer {
    /// Compiles `steps` and `columns` against `clock`.
    pub fn new(
        steps: &[TransformStep],
        columns: &[ColumnPlan],
        clock: RunClock,
    ) -> Result<Transformer, TransformError> {
        let mut scope = Scope::default();
        let mut flattens = Vec::new();
        let mut filters = vec![Vec::new()];
        for step in steps {
            if let TransformStep::Filter { field, op, value } = step {
                let level = scope.flatten_count();
                filters[level].push(CompiledFilter {
                    field: scope.resolve(field),
                    op: *op,
                    value: value.clone(),
                });
            } else if let Some(binding) = scope.define(step) {
                flattens.push(binding);
                filters.push(Vec::new());
            }
        }
        let now = clock.now.with_timezone(&clock.tz);
        let mut compiled = Vec::new();
        for column in columns.iter().filter(|c| c.is_bound()) {
            let expr = compile_expr(&column.expr, &scope, &now, &column.name)?;
            compiled.push(CompiledColumn {
                name: column.name.clone(),
                ty: column.ty,
                record_only: reads_record_only(&expr, &scope),
                expr,
            });
        }
        Ok(Transformer {
            clock,
            scope,
            flattens,
            filters,
            columns: compiled,
        })
    }

    /// Names of the bound columns, in row order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|column| column.name.as_str())
    }

    /// Appends the rows of `record` to `out` and returns how many were added. All or
    /// nothing: on error nothing is appended.
    pub fn rows(&self, record: &Value, out: &mut Vec<Vec<Cell>>) -> Result<usize, RecordError> {
        let kind = match record {
            Value::Object(_) => None,
            Value::Null => Some("null"),
            Value::Bool(_) => Some("a boolean"),
            Value::Number(_) => Some("a number"),
            Value::String(_) => Some("a string"),
            Value::Array(_) => Some("an array"),
        };
        if let Some(kind) = kind {
            return Err(RecordError::NotAnObject { kind });
        }
        let start = out.len();
        let row = Row {
            record,
            frame: &Frame::ROOT,
        };
        let mut cache = RecordCells::default();
        match self.expand(0, row, &mut cache, out) {
            Ok(()) => Ok(out.len() - start),
            Err(error) => {
                out.truncate(start);
                Err(error)
            }
        }
    }

    fn expand(
        &self,
        level: usize,
        row: Row<'_>,
        cache: &mut RecordCells,
        out: &mut Vec<Vec<Cell>>,
    ) -> Result<(), RecordError> {
        for filter in &self.filters[level] {
            if !self.passes(filter, row)? {
                return Ok(());
            }
        }
        let Some(binding) = self.flattens.get(level) else {
            return self.emit(row, cache, out);
        };
        let array = self.lookup(binding, row)?;
        let items = elements(array.as_ref());
        if items.is_empty() {
            let frame = Frame {
                depth: level + 1,
                element: None,
                parent: Some(row.frame),
            };
            return self.expand(
                level + 1,
                Row {
                    frame: &frame,
                    ..row
                },
                cache,
                out,
            );
        }
        for item in items {
            let frame = Frame {
                depth: level + 1,
                element: Some(item),
                parent: Some(row.frame),
            };
            self.expand(
                level + 1,
                Row {
                    frame: &frame,
                    ..row
                },
                cache,
                out,
            )?;
        }
        Ok(())
    }

    fn emit(
        &self,
        row: Row<'_>,
        cache: &mut RecordCells,
        out: &mut Vec<Vec<Cell>>,
    ) -> Result<(), RecordError> {
        if !cache.ready {
            for column in self.columns.iter().filter(|c| c.record_only) {
                cache.cells.push(self.cell(column, row)?);
            }
            cache.ready = true;
        }
        let mut cached = cache.cells.iter();
        let mut cells = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let cell = match column.record_only.then(|| cached.next()).flatten() {
                Some(cell) => cell.clone(),
                None => self.cell(column, row)?,
            };
            cells.push(cell);
        }
        out.push(cells);
        Ok(())
    }

    fn cell(&self, column: &CompiledColumn, row: Row<'_>) -> Result<Cell, RecordError> {
        let value = self.eval(&column.expr, row, &column.name)?;
        convert::convert(value.as_deref(), column.ty, self.clock.tz).map_err(|source| {
            RecordError::Convert {
                column: column.name.clone(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests;
