//! The `map` block as plan data: [`ColumnPlan`], its [`ColumnType`] and its value
//! [`Expr`], with the spec's own spelling of each (`Display`) and the record fields an
//! expression reads ([`Expr::fields`]).
//!
//! A new map function is a variant here, its rule in `check/map.rs` and its evaluation in
//! `transform/map.rs`.

use std::fmt;

use serde::Serialize;

use super::FieldPath;

/// SQL column type of a mapped column, as the spec names it (`decimal(12,2)`). Its MySQL
/// spelling is the sink's (`sink::mysql::column_sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnType {
    Int,
    Bigint,
    Decimal { precision: u8, scale: u8 },
    String { length: Option<u32> },
    Text,
    Datetime,
    Date,
    Bool,
    Json,
    Double,
}

/// The spec's spelling: `int`, `decimal(12,2)`, `string(64)`, `string`.
impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Int => f.write_str("int"),
            ColumnType::Bigint => f.write_str("bigint"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::String { length: Some(n) } => write!(f, "string({n})"),
            ColumnType::String { length: None } => f.write_str("string"),
            ColumnType::Text => f.write_str("text"),
            ColumnType::Datetime => f.write_str("datetime"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Bool => f.write_str("bool"),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Double => f.write_str("double"),
        }
    }
}

/// One target column and how its value is computed from a (flattened) record.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnPlan {
    pub name: String,
    pub ty: ColumnType,
    pub expr: Expr,
}

impl ColumnPlan {
    /// Raw SQL columns are written into the statement text, not bound.
    pub fn is_bound(&self) -> bool {
        !matches!(self.expr, Expr::Sql(_))
    }
}

/// A value expression of the `map` block.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "args", rename_all = "snake_case")]
pub enum Expr {
    /// A record field path (`extend.processInstanceId`).
    Field(FieldPath),
    /// `"<as_id>-<items_asi_id>"`.
    Interpolate(Vec<Piece>),
    Const(serde_json::Value),
    /// `sql("NOW()")`: raw SQL written into the statement.
    Sql(String),
    Coalesce(Vec<Expr>),
    Concat(Vec<Expr>),
    /// `date_format(field, "%Y-%m-%d")` (chrono strftime).
    DateFormat(Box<Expr>, String),
    /// `now()`: the run's clock, in the profile's time zone.
    Now,
    /// `days_ago(n)`: midnight n days before the run's clock.
    DaysAgo(i64),
    /// `case status { "A" => "x", _ => "y" }`.
    Case {
        subject: Box<Expr>,
        arms: Vec<(serde_json::Value, Expr)>,
        default: Option<Box<Expr>>,
    },
}

/// A part of an interpolated string: text, or a `<field>`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Piece {
    Text(String),
    Field(FieldPath),
}

impl Expr {
    /// Every record field the expression reads, in the order written (repeats kept).
    pub fn fields(&self) -> Vec<&FieldPath> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'e>(&'e self, out: &mut Vec<&'e FieldPath>) {
        match self {
            Expr::Field(path) => out.push(path),
            Expr::Interpolate(pieces) => out.extend(pieces.iter().filter_map(|p| match p {
                Piece::Field(path) => Some(path),
                Piece::Text(_) => None,
            })),
            Expr::Coalesce(items) | Expr::Concat(items) => {
                for item in items {
                    item.collect_fields(out);
                }
            }
            Expr::DateFormat(inner, _) => inner.collect_fields(out),
            Expr::Case {
                subject,
                arms,
                default,
            } => {
                subject.collect_fields(out);
                for (_, e) in arms {
                    e.collect_fields(out);
                }
                if let Some(d) = default {
                    d.collect_fields(out);
                }
            }
            Expr::Const(_) | Expr::Sql(_) | Expr::Now | Expr::DaysAgo(_) => {}
        }
    }
}

/// The expression as the spec would write it: `coalesce(shop_name, "unknown")`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field(path) => write!(f, "{path}"),
            Expr::Interpolate(pieces) => {
                let inner: String = pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => t.clone(),
                        Piece::Field(path) => format!("<{path}>"),
                    })
                    .collect();
                write!(f, "{inner:?}")
            }
            Expr::Const(v) => write!(f, "{v}"),
            Expr::Sql(s) => write!(f, "sql({s:?})"),
            Expr::Coalesce(items) => write!(f, "coalesce({})", List(items)),
            Expr::Concat(items) => write!(f, "concat({})", List(items)),
            Expr::DateFormat(e, format) => write!(f, "date_format({e}, {format:?})"),
            Expr::Now => f.write_str("now()"),
            Expr::DaysAgo(n) => write!(f, "days_ago({n})"),
            Expr::Case {
                subject,
                arms,
                default,
            } => {
                write!(f, "case {subject} {{ ")?;
                for (i, (k, v)) in arms.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} => {v}")?;
                }
                if let Some(d) = default {
                    if !arms.is_empty() {
                        f.write_str(", ")?;
                    }
                    write!(f, "_ => {d}")?;
                }
                f.write_str(" }")
            }
        }
    }
}

/// Expressions separated by `, `.
struct List<'e>(&'e [Expr]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(dotted: &str) -> Expr {
        Expr::Field(FieldPath::parse(dotted))
    }

    #[test]
    fn expressions_print_as_the_spec_writes_them() {
        let id = Expr::Interpolate(vec![
            Piece::Field(FieldPath::parse("as_id")),
            Piece::Text("-".into()),
            Piece::Field(FieldPath::parse("items_asi_id")),
        ]);
        assert_eq!(id.to_string(), r#""<as_id>-<items_asi_id>""#);
        let shop = Expr::Coalesce(vec![field("shop.name"), Expr::Const(json!("unknown"))]);
        assert_eq!(shop.to_string(), r#"coalesce(shop.name, "unknown")"#);
        let day = Expr::DateFormat(Box::new(field("as_date")), "%Y%m%d".into());
        assert_eq!(day.to_string(), r#"date_format(as_date, "%Y%m%d")"#);
        let status = Expr::Case {
            subject: Box::new(field("status")),
            arms: vec![(json!("A"), Expr::Const(json!("x")))],
            default: Some(Box::new(Expr::Now)),
        };
        assert_eq!(
            status.to_string(),
            r#"case status { "A" => "x", _ => now() }"#
        );
        let only_default = Expr::Case {
            subject: Box::new(field("s")),
            arms: vec![],
            default: Some(Box::new(Expr::DaysAgo(1))),
        };
        assert_eq!(only_default.to_string(), "case s { _ => days_ago(1) }");
        assert_eq!(Expr::Sql("NOW()".into()).to_string(), r#"sql("NOW()")"#);
    }

    #[test]
    fn fields_lists_every_field_read_in_order() {
        let expr = Expr::Case {
            subject: Box::new(field("a")),
            arms: vec![(json!(1), Expr::Concat(vec![field("b"), Expr::Now]))],
            default: Some(Box::new(Expr::Interpolate(vec![
                Piece::Text("x".into()),
                Piece::Field(FieldPath::parse("c.d")),
            ]))),
        };
        let names: Vec<String> = expr.fields().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["a", "b", "c.d"]);
        assert!(Expr::Sql("NOW()".into()).fields().is_empty());
    }
}
