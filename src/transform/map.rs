//! Compilation and evaluation of `map` expressions, and `@filter` tests, against one
//! flattened row.
//!
//! Owns the semantics of each [`Expr`] kind: how it compiles ([`compile_expr`]: paths
//! resolved, date formats parsed, `now()` fixed for the run), whether it reads only the
//! record ([`reads_record_only`]), and how it evaluates ([`Compiled`]): how interpolation
//! renders values, what `coalesce`, `concat` and `case` do with nulls, and how filters compare
//! numbers sent as strings. It does not own name resolution (`flatten`) nor typed conversion
//! (`convert`).
//!
//! - `Interpolate`: a missing or null field is an error, never the text "null": keys built
//!   from it would silently collide.
//! - `Coalesce`: the first value that is present and not null.
//! - `Concat`: missing and null parts contribute nothing (like `CONCAT_WS`).
//! - `Case`: the first arm whose value equals the subject (numbers compare numerically, also
//!   when sent as strings), else the default, else null.
//! - `Now` / `DaysAgo`: computed once per run from the [`super::RunClock`], as
//!   `yyyy-MM-dd HH:mm:ss` in the profile zone, then converted like any value.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, TimeDelta};
use chrono_tz::Tz;
use serde_json::Value;

use super::flatten::{Binding, Frame, Scope};
use super::{convert, RecordError, TransformError, Transformer};
use crate::plan::{ColumnType, Expr, FilterOp, Piece, ValueOrder};

/// A compiled map expression.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    Field(Binding),
    Interpolate(Vec<CompiledPiece>),
    Const(Value),
    Coalesce(Vec<Compiled>),
    Concat(Vec<Compiled>),
    DateFormat(Box<Compiled>, Vec<Item<'static>>),
    Case {
        subject: Box<Compiled>,
        arms: Vec<(Value, Compiled)>,
        default: Option<Box<Compiled>>,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum CompiledPiece {
    Text(String),
    Field(Binding),
}

/// Whether `expr` reads nothing but the record itself (no flatten element).
pub(crate) fn reads_record_only(expr: &Compiled, scope: &Scope) -> bool {
    let each = |exprs: &[Compiled]| exprs.iter().all(|e| reads_record_only(e, scope));
    match expr {
        Compiled::Field(binding) => scope.reads_record_only(binding),
        Compiled::Interpolate(pieces) => pieces.iter().all(|piece| match piece {
            CompiledPiece::Text(_) => true,
            CompiledPiece::Field(binding) => scope.reads_record_only(binding),
        }),
        Compiled::Const(_) => true,
        Compiled::Coalesce(exprs) | Compiled::Concat(exprs) => each(exprs),
        Compiled::DateFormat(inner, _) => reads_record_only(inner, scope),
        Compiled::Case {
            subject,
            arms,
            default,
        } => {
            reads_record_only(subject, scope)
                && arms.iter().all(|(_, e)| reads_record_only(e, scope))
                && default
                    .as_deref()
                    .is_none_or(|e| reads_record_only(e, scope))
        }
    }
}

pub(crate) fn compile_expr(
    expr: &Expr,
    scope: &Scope,
    now: &DateTime<Tz>,
    column: &str,
) -> Result<Compiled, TransformError> {
    let each = |exprs: &[Expr]| -> Result<Vec<Compiled>, TransformError> {
        exprs
            .iter()
            .map(|e| compile_expr(e, scope, now, column))
            .collect()
    };
    Ok(match expr {
        Expr::Field(path) => Compiled::Field(scope.resolve(path)),
        Expr::Interpolate(pieces) => Compiled::Interpolate(
            pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(text) => CompiledPiece::Text(text.clone()),
                    Piece::Field(path) => CompiledPiece::Field(scope.resolve(path)),
                })
                .collect(),
        ),
        Expr::Const(value) => Compiled::Const(value.clone()),
        // Only bound columns are compiled; a nested `sql()` has no value of its own.
        Expr::Sql(_) => Compiled::Const(Value::Null),
        Expr::Coalesce(exprs) => Compiled::Coalesce(each(exprs)?),
        Expr::Concat(exprs) => Compiled::Concat(each(exprs)?),
        Expr::DateFormat(inner, format) => {
            let items = StrftimeItems::new(format).parse_to_owned().map_err(|_| {
                TransformError::DateFormat {
                    column: column.to_owned(),
                    format: format.clone(),
                }
            })?;
            Compiled::DateFormat(Box::new(compile_expr(inner, scope, now, column)?), items)
        }
        Expr::Now => Compiled::Const(Value::String(now.format("%Y-%m-%d %H:%M:%S").to_string())),
        Expr::DaysAgo(days) => {
            let day = now
                .date_naive()
                .checked_sub_signed(TimeDelta::days(*days))
                .unwrap_or(now.date_naive());
            Compiled::Const(Value::String(day.format("%Y-%m-%d 00:00:00").to_string()))
        }
        Expr::Case {
            subject,
            arms,
            default,
        } => Compiled::Case {
            subject: Box::new(compile_expr(subject, scope, now, column)?),
            arms: arms
                .iter()
                .map(|(value, result)| {
                    Ok((value.clone(), compile_expr(result, scope, now, column)?))
                })
                .collect::<Result<_, TransformError>>()?,
            default: match default {
                Some(d) => Some(Box::new(compile_expr(d, scope, now, column)?)),
                None => None,
            },
        },
    })
}

/// A compiled `@filter`.
#[derive(Debug, Clone)]
pub(crate) struct CompiledFilter {
    pub(crate) field: Binding,
    pub(crate) op: FilterOp,
    pub(crate) value: Value,
}

/// The row being evaluated: the record and the current flatten elements.
#[derive(Clone, Copy)]
pub(crate) struct Row<'v> {
    pub(crate) record: &'v Value,
    pub(crate) frame: &'v Frame<'v>,
}

impl Transformer {
    /// The value a binding denotes in `row`; `None` when missing.
    pub(crate) fn lookup<'v>(
        &'v self,
        binding: &'v Binding,
        row: Row<'v>,
    ) -> Result<Option<Cow<'v, Value>>, RecordError> {
        use super::flatten::{Base, Derived};
        let base: Cow<'v, Value> = match binding.base {
            Base::Record => return Ok(binding.path.get(row.record).map(Cow::Borrowed)),
            Base::Element(index) => {
                let found = row
                    .frame
                    .element(index)
                    .and_then(|element| binding.path.get(element));
                return Ok(found.map(Cow::Borrowed));
            }
            Base::Derived(index) => match &self.scope.derived[index] {
                Derived::Rename { from, convert } => {
                    let Some(value) = self.lookup(from, row)? else {
                        return Ok(None);
                    };
                    match convert {
                        None => value,
                        Some(ty) => {
                            let cell = convert::convert(Some(&value), *ty, self.clock.tz).map_err(
                                |source| RecordError::Rename {
                                    field: binding.display.clone(),
                                    source,
                                },
                            )?;
                            Cow::Owned(convert::cell_to_json(cell))
                        }
                    }
                }
                Derived::Split { from, separator } => {
                    let Some(value) = self.lookup(from, row)? else {
                        return Ok(None);
                    };
                    match value.as_ref() {
                        Value::String(s) if s.is_empty() => Cow::Owned(Value::Array(Vec::new())),
                        Value::String(s) => Cow::Owned(Value::Array(
                            s.split(separator.as_str())
                                .map(|part| Value::String(part.to_owned()))
                                .collect(),
                        )),
                        _ => value,
                    }
                }
            },
        };
        Ok(match base {
            Cow::Borrowed(v) => binding.path.get(v).map(Cow::Borrowed),
            Cow::Owned(v) => binding.path.into_found(v).map(Cow::Owned),
        })
    }

    /// Evaluates a compiled expression for column `column`.
    pub(crate) fn eval<'v>(
        &'v self,
        expr: &'v Compiled,
        row: Row<'v>,
        column: &str,
    ) -> Result<Option<Cow<'v, Value>>, RecordError> {
        match expr {
            Compiled::Field(binding) => self.lookup(binding, row),
            Compiled::Const(value) => Ok(Some(Cow::Borrowed(value))),
            Compiled::Interpolate(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        CompiledPiece::Text(text) => out.push_str(text),
                        CompiledPiece::Field(binding) => match self.lookup(binding, row)? {
                            Some(value) if !value.is_null() => push_text(&mut out, &value),
                            _ => {
                                return Err(RecordError::MissingField {
                                    column: column.to_owned(),
                                    field: binding.display.clone(),
                                })
                            }
                        },
                    }
                }
                Ok(Some(Cow::Owned(Value::String(out))))
            }
            Compiled::Coalesce(options) => {
                for option in options {
                    if let Some(value) = self.eval(option, row, column)? {
                        if !value.is_null() {
                            return Ok(Some(value));
                        }
                    }
                }
                Ok(None)
            }
            Compiled::Concat(parts) => {
                let mut out = String::new();
                for part in parts {
                    if let Some(value) = self.eval(part, row, column)? {
                        if !value.is_null() {
                            push_text(&mut out, &value);
                        }
                    }
                }
                Ok(Some(Cow::Owned(Value::String(out))))
            }
            Compiled::DateFormat(inner, items) => {
                let Some(value) = self.eval(inner, row, column)? else {
                    return Ok(None);
                };
                if value.is_null() || value.as_str() == Some("") {
                    return Ok(None);
                }
                let Some(time) = convert::to_datetime(&value, self.clock.tz) else {
                    let error = convert::convert(Some(&value), ColumnType::Datetime, self.clock.tz)
                        .err()
                        .unwrap_or_else(|| convert::ConvertError {
                            value: value.to_string(),
                            ty: ColumnType::Datetime,
                            reason: convert::ConvertReason::NotADate,
                        });
                    return Err(RecordError::Convert {
                        column: column.to_owned(),
                        source: error,
                    });
                };
                let mut out = String::new();
                // Items were validated when compiling, so formatting cannot fail; an error is
                // still reported instead of panicking like `to_string()` would.
                write!(out, "{}", time.format_with_items(items.iter())).map_err(|_| {
                    RecordError::DateFormat {
                        column: column.to_owned(),
                    }
                })?;
                Ok(Some(Cow::Owned(Value::String(out))))
            }
            Compiled::Case {
                subject,
                arms,
                default,
            } => {
                let subject = self.eval(subject, row, column)?;
                let subject = subject.as_deref().unwrap_or(&Value::Null);
                let order = ValueOrder::new(self.clock.tz);
                for (test, result) in arms {
                    if order.equal(subject, test) {
                        return self.eval(result, row, column);
                    }
                }
                match default {
                    Some(result) => self.eval(result, row, column),
                    None => Ok(None),
                }
            }
        }
    }

    /// Whether `row` passes `filter`.
    pub(crate) fn passes(
        &self,
        filter: &CompiledFilter,
        row: Row<'_>,
    ) -> Result<bool, RecordError> {
        let value = self.lookup(&filter.field, row)?;
        let order = ValueOrder::new(self.clock.tz);
        Ok(test(order, value.as_deref(), filter.op, &filter.value))
    }
}

/// Appends a value as text: strings raw, everything else as JSON.
fn push_text(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        other => out.push_str(&other.to_string()),
    }
}

/// The filter test, comparing values like [`ValueOrder`] does: numbers exactly (also when
/// sent as strings), times as instants, otherwise as text. A missing field counts as null;
/// null is only equal to null and never ordered, so `lt`/`gt` on a missing field drop the
/// row.
pub(crate) fn test(
    order: ValueOrder,
    value: Option<&Value>,
    op: FilterOp,
    operand: &Value,
) -> bool {
    let value = value.unwrap_or(&Value::Null);
    let in_list = || match operand {
        Value::Array(items) => items.iter().any(|item| order.equal(value, item)),
        single => order.equal(value, single),
    };
    let ordered = |accept: &[Ordering]| {
        order
            .compare_known(value, operand)
            .is_some_and(|o| accept.contains(&o))
    };
    match op {
        FilterOp::IsNull => value.is_null(),
        FilterOp::IsNotNull => !value.is_null(),
        FilterOp::Eq => order.equal(value, operand),
        FilterOp::Ne => !order.equal(value, operand),
        FilterOp::In => in_list(),
        FilterOp::NotIn => !in_list(),
        FilterOp::Lt => ordered(&[Ordering::Less]),
        FilterOp::Le => ordered(&[Ordering::Less, Ordering::Equal]),
        FilterOp::Gt => ordered(&[Ordering::Greater]),
        FilterOp::Ge => ordered(&[Ordering::Greater, Ordering::Equal]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filter_examples() {
        use FilterOp::{Eq, Ge, Gt, In, IsNotNull, IsNull, Le, Lt, Ne, NotIn};
        // (field value, op, operand, expected)
        let examples: Vec<(Option<Value>, FilterOp, Value, bool)> = vec![
            (Some(json!("10")), Gt, json!(9), true),
            (Some(json!("10")), Gt, json!("9"), true),
            (Some(json!("10")), Lt, json!(9), false),
            (Some(json!(10)), Eq, json!("10"), true),
            (Some(json!(10)), Eq, json!("10.0"), true),
            (Some(json!("a")), Eq, json!("a"), true),
            (Some(json!("a")), Ne, json!("b"), true),
            (Some(json!("b")), Ge, json!("a"), true),
            (Some(json!(2)), Le, json!(2), true),
            (Some(json!("x")), Lt, json!(5), false),
            (Some(json!("退款")), In, json!(["退款", "退货"]), true),
            (Some(json!(3)), In, json!(["1", "3"]), true),
            (Some(json!(3)), NotIn, json!([1, 2]), true),
            (None, IsNull, Value::Null, true),
            (Some(Value::Null), IsNull, Value::Null, true),
            (Some(json!(0)), IsNotNull, Value::Null, true),
            (None, Gt, json!(1), false),
            (None, Ne, json!(1), true),
            (Some(json!(true)), Eq, json!(true), true),
        ];
        for (value, op, operand, expected) in examples {
            assert_eq!(
                test(order(), value.as_ref(), op, &operand),
                expected,
                "{value:?} {op:?} {operand}"
            );
        }
    }

    fn order() -> ValueOrder {
        ValueOrder::new(chrono_tz::Asia::Shanghai)
    }

    #[test]
    fn filters_compare_big_numbers_exactly_and_times_as_instants() {
        use FilterOp::{Eq, Gt, Lt};
        let examples: Vec<(Value, FilterOp, Value, bool)> = vec![
            // As floats these two are the same number.
            (
                json!(12_345_678_901_234_567_i64),
                Gt,
                json!(12_345_678_901_234_566_i64),
                true,
            ),
            (
                json!("12345678901234567"),
                Eq,
                json!(12_345_678_901_234_568_i64),
                false,
            ),
            // Unpadded and offset times against a padded bound.
            (json!("2024-1-9 10:00:00"), Lt, json!("2024-01-10"), true),
            (
                json!("2024-01-10T01:00:00Z"),
                Lt,
                json!("2024-01-10 08:30:00"),
                false,
            ),
        ];
        for (value, op, operand, expected) in examples {
            assert_eq!(
                test(order(), Some(&value), op, &operand),
                expected,
                "{value} {op:?} {operand}"
            );
        }
    }
}
