//! `qsync check --db`: the spec's map against the live target table (read by the caller
//! through `sink`): missing columns, type narrowing, missing unique keys, REPLACE pitfalls,
//! tables whose loads would take turns on several connections.
//! Pure: the table shape is handed in.

use super::{codes, CheckDiagnostic};
use crate::plan::{ColumnType, Plan, WriteMode};
use crate::sink::{KeyCompare, LiveColumn, LiveTable};
use crate::syntax::{self, ast::TargetStmt, Span};

/// Diagnostics for `plan` (compiled from `text`) against `live` (`None`: no such table),
/// whose loads take turns for the reason `serialized_loads` gives, if any, on a server
/// whose exact key collation is `binary_collation` (for the suggested fix).
pub fn compare_live(
    text: &str,
    plan: &Plan,
    live: Option<&LiveTable>,
    serialized_loads: Option<&str>,
    binary_collation: &str,
) -> Vec<CheckDiagnostic> {
    let Ok(spec) = syntax::parse(text) else {
        return Vec::new();
    };
    let table_span = spec
        .targets
        .first()
        .map_or(Span::new(0, 0), |t| t.table.span);
    let stmt_span = |pick: fn(&TargetStmt) -> bool| {
        spec.targets
            .first()
            .and_then(|t| t.statements.iter().find(|s| pick(&s.node)))
            .map_or(table_span, |s| s.span)
    };
    let column_span = |name: &str| {
        spec.maps
            .first()
            .and_then(|m| m.node.iter().find(|c| c.column.node == name))
            .map_or(table_span, |c| c.column.span)
    };
    let table_name = plan.target.table.join(".");
    let mut out = Vec::new();
    let Some(live) = live else {
        if !plan.target.create {
            out.push(
                CheckDiagnostic::error(
                    codes::DB_MISSING_TABLE,
                    table_span,
                    format!("table `{table_name}` does not exist in the target database"),
                )
                .label("no such table")
                .help("create it, or add `create` to the target so qsync creates it from the map's types"),
            );
        }
        return out;
    };
    for column in &plan.columns {
        let span = column_span(&column.name);
        let Some(found) = live
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&column.name))
        else {
            out.push(
                CheckDiagnostic::error(
                    codes::DB_MISSING_COLUMN,
                    span,
                    format!("table `{table_name}` has no column `{}`", column.name),
                )
                .label("not in the table")
                .help(format!(
                    "add it: {}",
                    crate::sink::add_column_sql(&table_name, &column.name, column.ty)
                )),
            );
            continue;
        };
        if let Some(reason) = narrowing(column.ty, found) {
            out.push(
                CheckDiagnostic::error(
                    codes::DB_TYPE_NARROWING,
                    span,
                    format!(
                        "column `{}` is `{}` in the spec but `{}` in the table: {reason}",
                        column.name, column.ty, found.column_type
                    ),
                )
                .label("narrower in the table")
                .help(format!(
                    "widen the table column (`{}`) or narrow the spec's type",
                    crate::sink::column_sql(column.ty)
                )),
            );
        }
    }
    if matches!(plan.target.mode, WriteMode::Replace | WriteMode::Upsert) {
        let key: Vec<String> = plan.target.key.iter().map(|k| k.to_lowercase()).collect();
        let covered = live.unique_keys.iter().any(|index| {
            let index: Vec<String> = index.iter().map(|c| c.to_lowercase()).collect();
            !index.is_empty() && index.iter().all(|c| key.contains(c))
        });
        if !covered {
            out.push(
                CheckDiagnostic::error(
                    codes::DB_NO_UNIQUE_KEY,
                    stmt_span(|s| matches!(s, TargetStmt::Key(_))),
                    format!(
                        "table `{table_name}` has no PRIMARY KEY or UNIQUE index within ({}): `mode {}` would insert duplicates",
                        plan.target.key.join(", "),
                        plan.target.mode.keyword()
                    ),
                )
                .label("no unique index")
                .help(format!(
                    "ALTER TABLE `{table_name}` ADD UNIQUE KEY ({})",
                    plan.target.key.join(", ")
                )),
            );
        }
    }
    for key in &plan.target.key {
        let Some(found) = live
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(key))
        else {
            continue;
        };
        let compare = KeyCompare::of(found.collation.as_deref());
        if compare == KeyCompare::Exact {
            continue;
        }
        let collation = found.collation.as_deref().unwrap_or_default();
        out.push(
            CheckDiagnostic::warning(
                codes::DB_KEY_COLLATION,
                column_span(key),
                format!(
                    "key column `{key}` of `{table_name}` compares with collation {collation}: \
                     vendor ids that differ only in {} are one row there, and the later \
                     record overwrites the earlier",
                    compare.merges()
                ),
            )
            .label("ids that differ can merge")
            .help(format!(
                "compare keys byte for byte: ALTER TABLE `{table_name}` MODIFY `{}` {} \
                 CHARACTER SET utf8mb4 COLLATE {binary_collation} NOT NULL",
                found.name, found.column_type
            )),
        );
    }
    if plan.target.mode == WriteMode::Replace {
        for c in &live.columns {
            let pitfall = if c.extra.contains("auto_increment") {
                Some("its auto-increment value changes on every REPLACE")
            } else if c.extra.contains("on update") {
                Some("REPLACE deletes and re-inserts, so its ON UPDATE time resets on every run")
            } else {
                None
            };
            if let Some(pitfall) = pitfall {
                out.push(
                    CheckDiagnostic::warning(
                        codes::DB_REPLACE_PITFALL,
                        stmt_span(|s| matches!(s, TargetStmt::Mode(_))),
                        format!("column `{}` of `{table_name}`: {pitfall}", c.name),
                    )
                    .label("REPLACE deletes then inserts")
                    .help("use `mode upsert` to update rows in place"),
                );
            }
        }
    }
    // Upsert loads a temporary table and a custom head writes statements: neither takes
    // the table lock for the length of a load.
    if let Some(reason) = serialized_loads
        .filter(|_| plan.target.mode != WriteMode::Upsert && plan.target.sql.is_none())
    {
        out.push(
            CheckDiagnostic::warning(
                codes::DB_ONE_CONNECTION,
                table_span,
                format!("table `{table_name}` {reason}: its windows are written on one connection"),
            )
            .label("LOAD DATA takes a table lock here")
            .help("two loads would only take turns; InnoDB tables without AUTO_INCREMENT, or with innodb_autoinc_lock_mode = 2 in the server's configuration, are written on two"),
        );
    }
    out
}

/// Why a live column cannot hold every value of the spec's type, if it cannot.
fn narrowing(ty: ColumnType, live: &LiveColumn) -> Option<String> {
    let int_rank = |t: &str| match t {
        "tinyint" | "bool" | "boolean" => Some(1),
        "smallint" => Some(2),
        "mediumint" => Some(3),
        "int" | "integer" => Some(4),
        "bigint" => Some(5),
        _ => None,
    };
    let t = live.data_type.as_str();
    let is_text = matches!(
        t,
        "varchar" | "char" | "text" | "tinytext" | "mediumtext" | "longtext"
    );
    match ty {
        ColumnType::Int | ColumnType::Bigint => {
            let need = if ty == ColumnType::Int { 4 } else { 5 };
            match int_rank(t) {
                Some(rank) if rank < need => {
                    Some(format!("`{t}` holds a smaller range than `{ty}`"))
                }
                Some(_) => None,
                None if matches!(t, "decimal" | "double" | "float") || is_text => None,
                None => Some(format!("`{t}` is not a number column")),
            }
        }
        ColumnType::Decimal { precision, scale } => {
            if int_rank(t).is_some() {
                return (scale > 0)
                    .then(|| format!("an integer column drops the {scale} decimal places"));
            }
            if t == "decimal" {
                let (p, s) = (live.precision.unwrap_or(10), live.scale.unwrap_or(0));
                if s < u64::from(scale) {
                    return Some(format!("{s} decimal places where the spec has {scale}"));
                }
                if p - s < u64::from(precision - scale) {
                    return Some(format!(
                        "{} digits before the point where the spec has {}",
                        p - s,
                        precision - scale
                    ));
                }
            }
            None
        }
        ColumnType::String { length } => {
            let need = u64::from(length.unwrap_or(255));
            match (t, live.char_max) {
                ("varchar" | "char", Some(max)) if max < need => {
                    Some(format!("{max} characters where the spec allows {need}"))
                }
                _ if is_text || t == "json" || t == "enum" => None,
                _ => Some(format!("`{t}` is not a text column")),
            }
        }
        ColumnType::Text | ColumnType::Json => match (t, live.char_max) {
            ("varchar" | "char" | "tinytext", Some(max)) => Some(format!(
                "{max} characters where the spec's `{ty}` may be longer"
            )),
            _ => None,
        },
        ColumnType::Datetime => match t {
            "date" => Some("a DATE column drops the time of day".to_owned()),
            "time" | "year" => Some(format!("`{t}` cannot hold a date and time")),
            _ => None,
        },
        ColumnType::Date | ColumnType::Bool | ColumnType::Double => None,
    }
}
