//! The `map` block: columns, expressions, functions, types, constants and field references.

use super::{codes, vendor, CheckDiagnostic, Checker, FieldScope};
use crate::plan::{sql_fault, ColumnPlan, ColumnType, Expr, Piece, SqlFault};
use crate::syntax::ast::{self, Literal, Mapping, TypeName};
use crate::syntax::{Span, Spanned};

const FUNCTIONS: &[&str] = &[
    "coalesce",
    "concat",
    "date_format",
    "now",
    "days_ago",
    "sql",
];
const TYPES: &[&str] = &[
    "int", "bigint", "decimal", "string", "text", "datetime", "date", "bool", "json", "double",
];

impl Checker<'_> {
    /// Reports raw SQL that is more than one piece of one statement ([`sql_fault`]): a `;`,
    /// an open quote or comment, a line comment. `span` is the string literal; the label
    /// points into it when the literal has no escapes. Returns whether the SQL is fine.
    pub(crate) fn expect_one_sql_piece(&mut self, sql: &str, span: Span, what: &str) -> bool {
        let Some(fault) = sql_fault(sql) else {
            return true;
        };
        let literal = self.text.get(span.start..span.end).unwrap_or("");
        let at = match literal.find(sql) {
            Some(start) if !sql.is_empty() => {
                let at = span.start + start + fault.offset();
                let len = sql[fault.offset()..]
                    .chars()
                    .next()
                    .map_or(1, char::len_utf8);
                Span::new(at, at + len)
            }
            _ => span,
        };
        let (label, help) = match fault {
            SqlFault::Semicolon(_) => (
                "ends the statement",
                "qsync never runs several statements: remove the `;` (inside quotes it is text)",
            ),
            SqlFault::Unclosed(..) => (
                "never closed",
                "close it inside the SQL: an open quote or comment would swallow the values qsync writes after it",
            ),
            SqlFault::LineComment(_) => (
                "hides the rest of the statement",
                "use /* ... */ for a comment, or remove it",
            ),
        };
        self.report(
            CheckDiagnostic::error(codes::BAD_SQL, at, format!("{what}: {fault}"))
                .label(label)
                .help(help),
        );
        false
    }

    pub(crate) fn check_map(
        &mut self,
        map: &Spanned<Vec<Mapping>>,
        fields: &FieldScope,
    ) -> Vec<(ColumnPlan, Span)> {
        let mut columns: Vec<(ColumnPlan, Span)> = Vec::new();
        // Where each column was first mapped: a lookup per mapping, not a scan (a generated
        // spec with 300k columns took minutes with the scan).
        let mut seen: std::collections::HashMap<&str, Span> = std::collections::HashMap::new();
        if map.node.is_empty() {
            self.report(
                CheckDiagnostic::error(
                    codes::MISSING_MAP,
                    Span::new(map.span.start, map.span.start + 3),
                    "the map has no columns",
                )
                .label("empty map")
                .help("map at least one column: map { id = as_id }"),
            );
        }
        for mapping in &map.node {
            let name = &mapping.column;
            if let Some(&first) = seen.get(name.node.as_str()) {
                self.report(
                    CheckDiagnostic::error(
                        codes::DUPLICATE_COLUMN,
                        name.span,
                        format!("column `{}` is mapped twice", name.node),
                    )
                    .label("mapped again here")
                    .help(format!(
                        "a target column takes one value; the first mapping is on line {}",
                        self.line(first)
                    )),
                );
                continue;
            }
            seen.insert(&name.node, name.span);
            self.check_identifier(name, "column");
            let ty = match &mapping.ty {
                Some(t) => self.check_type(t),
                None => Some(default_type(&mapping.expr.node)),
            };
            let expr = self.check_expr(&mapping.expr, fields);
            if let (Some(ty), Some(Expr::Const(value)), Some(t)) = (ty, &expr, &mapping.ty) {
                if let Err(reason) = const_fits(value, ty) {
                    self.report(
                        CheckDiagnostic::error(
                            codes::CONSTANT_TYPE,
                            mapping.expr.span,
                            format!(
                                "column `{}` is `{ty}`, which cannot hold {reason}",
                                name.node
                            ),
                        )
                        .label("does not fit")
                        .help(format!(
                            "change the constant or the type on line {}",
                            self.line(t.span)
                        )),
                    );
                    continue;
                }
            }
            if let (Some(ty), Some(expr)) = (ty, expr) {
                columns.push((
                    ColumnPlan {
                        name: name.node.clone(),
                        ty,
                        expr,
                    },
                    name.span,
                ));
            } else {
                // Keep the name so later rules (key, duplicates) do not cascade.
                columns.push((
                    ColumnPlan {
                        name: name.node.clone(),
                        ty: ColumnType::Text,
                        expr: Expr::Const(serde_json::Value::Null),
                    },
                    name.span,
                ));
            }
        }
        columns
    }

    /// A table or column name that MySQL accepts.
    pub(crate) fn check_identifier(&mut self, name: &Spanned<String>, what: &str) -> bool {
        let problem = if name.node.is_empty() {
            Some("is empty")
        } else if name.node.chars().count() > 64 {
            Some("is longer than 64 characters")
        } else if name.node.contains(['`', '\0', '\n']) || name.node.ends_with(' ') {
            Some("contains a character MySQL names cannot hold")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.report(
                CheckDiagnostic::error(
                    codes::BAD_IDENTIFIER,
                    name.span,
                    format!("{what} name `{}` {problem}", name.node),
                )
                .label("not a MySQL name")
                .help("MySQL names are 1 to 64 characters, without backticks or NUL"),
            );
            return false;
        }
        true
    }

    pub(crate) fn check_type(&mut self, t: &Spanned<TypeName>) -> Option<ColumnType> {
        let name = t.name.node.as_str();
        let args: Vec<Option<u32>> = t.args.iter().map(|a| a.node.parse().ok()).collect();
        let bad_args = |checker: &mut Self, message: String, help: &str| {
            checker.report(
                CheckDiagnostic::error(codes::BAD_TYPE_ARGUMENTS, t.span, message)
                    .label("bad type arguments")
                    .help(help.to_owned()),
            );
            None
        };
        match (name, args.as_slice()) {
            ("int", []) => Some(ColumnType::Int),
            ("bigint", []) => Some(ColumnType::Bigint),
            ("text", []) => Some(ColumnType::Text),
            ("datetime", []) => Some(ColumnType::Datetime),
            ("date", []) => Some(ColumnType::Date),
            ("bool", []) => Some(ColumnType::Bool),
            ("json", []) => Some(ColumnType::Json),
            ("double", []) => Some(ColumnType::Double),
            ("string", []) => Some(ColumnType::String { length: None }),
            ("string", [Some(n)]) if (1..=16_383).contains(n) => {
                Some(ColumnType::String { length: Some(*n) })
            }
            ("string", _) => bad_args(
                self,
                "`string` takes one length between 1 and 16383".to_owned(),
                "e.g. string(64); use `text` for longer values",
            ),
            ("decimal", [Some(p), Some(s)]) if (1..=65).contains(p) && s <= p && *s <= 30 => {
                Some(ColumnType::Decimal {
                    precision: u8::try_from(*p).unwrap_or(65),
                    scale: u8::try_from(*s).unwrap_or(30),
                })
            }
            ("decimal", _) => bad_args(
                self,
                "`decimal` takes a precision (1 to 65) and a scale (0 to 30, at most the precision)"
                    .to_owned(),
                "e.g. decimal(12,2)",
            ),
            (known, _) if TYPES.contains(&known) => bad_args(
                self,
                format!("`{known}` takes no arguments"),
                "only `string(n)` and `decimal(p,s)` take arguments",
            ),
            (other, _) => {
                let arg_text: Vec<&str> = t.args.iter().map(|a| a.node.as_str()).collect();
                let help = match (mysql_spelling(other, &arg_text), vendor::closest(other, TYPES)) {
                    (Some(ours), _) => format!("qsync's types are not MySQL's: write `{ours}`"),
                    (None, Some(s)) => format!("did you mean `{s}`?"),
                    (None, None) => format!("types: {}", TYPES.join(", ")),
                };
                self.report(
                    CheckDiagnostic::error(
                        codes::UNKNOWN_TYPE,
                        t.name.span,
                        format!("unknown type `{other}`"),
                    )
                    .label("unknown type")
                    .help(help),
                );
                None
            }
        }
    }

    fn check_expr(&mut self, expr: &Spanned<ast::Expr>, fields: &FieldScope) -> Option<Expr> {
        match &expr.node {
            ast::Expr::Path(path) => {
                self.check_field(path, expr.span, fields)?;
                Some(Expr::Field(path.clone().into()))
            }
            ast::Expr::Literal(Literal::String {
                text,
                content_start,
            }) => {
                let pieces = self.interpolation(text, *content_start, expr.span, fields)?;
                if pieces.iter().any(|p| matches!(p, Piece::Field(_))) {
                    Some(Expr::Interpolate(pieces))
                } else {
                    Some(Expr::Const(serde_json::Value::String(text.clone())))
                }
            }
            ast::Expr::Literal(lit) => Some(Expr::Const(super::directives::literal_json(lit))),
            ast::Expr::Call { name, args } => self.check_call(name, args, expr.span, fields),
            ast::Expr::Case { subject, arms } => {
                let subject = self.check_expr(subject, fields);
                let mut out = Vec::new();
                let mut default = None;
                let mut ok = true;
                for arm in arms {
                    let value = self.check_expr(&arm.value, fields);
                    match (&arm.pattern.node, value) {
                        (Some(lit), Some(v)) => out.push((super::directives::literal_json(lit), v)),
                        (None, Some(v)) => default = Some(Box::new(v)),
                        (_, None) => ok = false,
                    }
                }
                if ok {
                    Some(Expr::Case {
                        subject: Box::new(subject?),
                        arms: out,
                        default,
                    })
                } else {
                    None
                }
            }
        }
    }

    fn check_call(
        &mut self,
        name: &Spanned<String>,
        args: &[Spanned<ast::Expr>],
        span: Span,
        fields: &FieldScope,
    ) -> Option<Expr> {
        let bad = |checker: &mut Self, message: &str, help: &str| {
            checker.report(
                CheckDiagnostic::error(codes::BAD_ARGUMENTS, span, message.to_owned())
                    .label("bad arguments")
                    .help(help.to_owned()),
            );
            None
        };
        let string_arg = |a: &Spanned<ast::Expr>| match &a.node {
            ast::Expr::Literal(Literal::String { text, .. }) => Some(text.clone()),
            _ => None,
        };
        match name.node.as_str() {
            "sql" => match args {
                [a] => match string_arg(a) {
                    Some(text) if !text.trim().is_empty() => {
                        if self.expect_one_sql_piece(
                            &text,
                            a.span,
                            "`sql(...)` holds one SQL expression",
                        ) {
                            Some(Expr::Sql(text))
                        } else {
                            None
                        }
                    }
                    _ => bad(
                        self,
                        "`sql` takes one non-empty string of SQL",
                        "e.g. create_time = sql(\"NOW()\")",
                    ),
                },
                _ => bad(
                    self,
                    "`sql` takes one string",
                    "e.g. create_time = sql(\"NOW()\")",
                ),
            },
            "now" => {
                if args.is_empty() {
                    Some(Expr::Now)
                } else {
                    bad(self, "`now` takes no arguments", "write now()")
                }
            }
            "days_ago" => match args {
                [Spanned {
                    node: ast::Expr::Literal(Literal::Number(n)),
                    ..
                }] if n.parse::<i64>().is_ok_and(|n| (0..=36_500).contains(&n)) => {
                    Some(Expr::DaysAgo(n.parse().unwrap_or(0)))
                }
                _ => bad(
                    self,
                    "`days_ago` takes a whole number of days",
                    "e.g. days_ago(1)",
                ),
            },
            "coalesce" | "concat" => {
                if args.is_empty() {
                    return bad(
                        self,
                        &format!("`{}` needs at least one argument", name.node),
                        "e.g. coalesce(shop_name, \"unknown\")",
                    );
                }
                let mut out = Vec::new();
                for a in args {
                    out.push(self.check_expr(a, fields));
                }
                let out: Option<Vec<Expr>> = out.into_iter().collect();
                let out = out?;
                Some(if name.node == "coalesce" {
                    Expr::Coalesce(out)
                } else {
                    Expr::Concat(out)
                })
            }
            "date_format" => match args {
                [value, fmt] => match string_arg(fmt) {
                    Some(f) => {
                        if chrono::format::StrftimeItems::new(&f)
                            .any(|i| matches!(i, chrono::format::Item::Error))
                        {
                            return bad(
                                self,
                                &format!("`{f}` is not a date format"),
                                "use strftime codes, e.g. \"%Y-%m-%d\"",
                            );
                        }
                        let value = self.check_expr(value, fields)?;
                        Some(Expr::DateFormat(Box::new(value), f))
                    }
                    None => bad(
                        self,
                        "`date_format` takes a value and a format string",
                        "e.g. date_format(as_date, \"%Y%m%d\")",
                    ),
                },
                _ => bad(
                    self,
                    "`date_format` takes a value and a format string",
                    "e.g. date_format(as_date, \"%Y%m%d\")",
                ),
            },
            other => {
                let help = match vendor::closest(other, FUNCTIONS) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("functions: {}", FUNCTIONS.join(", ")),
                };
                self.report(
                    CheckDiagnostic::error(
                        codes::UNKNOWN_FUNCTION,
                        name.span,
                        format!("unknown function `{other}`"),
                    )
                    .label("unknown function")
                    .help(help),
                );
                None
            }
        }
    }

    /// Splits `"<as_id>-<items_asi_id>"` into text and field pieces, checking each field.
    fn interpolation(
        &mut self,
        text: &str,
        content_start: Option<usize>,
        span: Span,
        fields: &FieldScope,
    ) -> Option<Vec<Piece>> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        let mut ok = true;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>');
            let name = close.map(|c| &after[..c]);
            match name {
                Some(name)
                    if !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '.') =>
                {
                    if open > 0 {
                        pieces.push(Piece::Text(rest[..open].to_owned()));
                    }
                    let field_span = content_start.map_or(span, |start| {
                        let s = start + offset + open;
                        Span::new(s, s + name.len() + 2)
                    });
                    let path: Vec<String> = name.split('.').map(str::to_owned).collect();
                    if self.check_field(&path, field_span, fields).is_none() {
                        ok = false;
                    }
                    pieces.push(Piece::Field(path.into()));
                    let consumed = open + 1 + name.len() + 1;
                    offset += consumed;
                    rest = &rest[consumed..];
                }
                Some("") => {
                    let s = content_start.map_or(span, |start| {
                        Span::new(start + offset + open, start + offset + open + 2)
                    });
                    self.report(
                        CheckDiagnostic::error(codes::BAD_INTERPOLATION, s, "`<>` names no field")
                            .label("empty field reference")
                            .help("write the field between the angle brackets: \"<as_id>-<items_asi_id>\""),
                    );
                    return None;
                }
                _ => {
                    // A lone `<` is text.
                    pieces.push(Piece::Text(rest[..=open].to_owned()));
                    offset += open + 1;
                    rest = &rest[open + 1..];
                }
            }
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        // Merge adjacent text pieces.
        let mut merged: Vec<Piece> = Vec::new();
        for piece in pieces {
            match (merged.last_mut(), piece) {
                (Some(Piece::Text(a)), Piece::Text(b)) => a.push_str(&b),
                (_, piece) => merged.push(piece),
            }
        }
        ok.then_some(merged)
    }

    /// Reports a field reference that cannot exist after the transforms.
    fn check_field(&mut self, path: &[String], span: Span, fields: &FieldScope) -> Option<()> {
        let first = path.first()?;
        if let Some((_, to)) = fields
            .renamed
            .iter()
            .find(|(from, _)| from == &path.join(".") || from == first)
        {
            self.report(
                CheckDiagnostic::error(
                    codes::RENAMED_FIELD,
                    span,
                    format!(
                        "field `{}` was renamed to `{to}` by `@rename`",
                        path.join(".")
                    ),
                )
                .label("no longer has this name")
                .help(format!("use `{to}`")),
            );
            return None;
        }
        for array in &fields.known_arrays {
            if fields.flattened.contains(array) {
                continue;
            }
            let flat_prefix = format!("{array}_");
            if first.starts_with(&flat_prefix) && first.len() > flat_prefix.len() {
                self.report(
                    CheckDiagnostic::error(
                        codes::FLATTEN_NOT_DECLARED,
                        span,
                        format!("`{first}` is a field of the flattened `{array}` array, but the spec does not flatten `{array}`"),
                    )
                    .label(format!("needs @flatten {array}"))
                    .help(format!("add `@flatten {array}`: each element of `{array}` becomes a row and its fields are named `{array}_<field>`")),
                );
                return None;
            }
        }
        Some(())
    }
}

/// The type of an untyped mapping.
fn default_type(expr: &ast::Expr) -> ColumnType {
    match expr {
        ast::Expr::Literal(Literal::Number(n)) if !n.contains('.') => ColumnType::Bigint,
        ast::Expr::Literal(Literal::Number(_)) => ColumnType::Double,
        ast::Expr::Literal(Literal::Bool(_)) => ColumnType::Bool,
        ast::Expr::Call { name, .. } if name.node == "now" || name.node == "days_ago" => {
            ColumnType::Datetime
        }
        _ => ColumnType::String { length: None },
    }
}

/// A value that does not fit a column type, shown for diagnostics as the value and the
/// reason: `"abc" (not a number)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Misfit(crate::transform::ConvertError);

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0.value, self.0.reason)
    }
}

/// Whether a constant fits a column type (converted as at run time, in the default zone).
pub(crate) fn const_fits(value: &serde_json::Value, ty: ColumnType) -> Result<(), Misfit> {
    crate::transform::convert(Some(value), ty, crate::transform::DEFAULT_TZ)
        .map(|_| ())
        .map_err(Misfit)
}

/// qsync's spelling of a MySQL column type written in a map (`varchar(32)` → `string(32)`),
/// so the hint says what to write instead of only that the type is unknown.
fn mysql_spelling(name: &str, args: &[&str]) -> Option<String> {
    let ours = match (name.to_ascii_lowercase().as_str(), args) {
        ("varchar" | "char" | "nvarchar" | "nchar", [n]) => format!("string({n})"),
        ("varchar" | "char" | "nvarchar" | "nchar", []) => "string".to_owned(),
        ("tinytext" | "mediumtext" | "longtext", _) => "text".to_owned(),
        ("integer" | "smallint" | "mediumint", _) => "int".to_owned(),
        ("tinyint", ["1"]) | ("boolean", _) => "bool".to_owned(),
        ("tinyint", _) => "int".to_owned(),
        ("timestamp", _) => "datetime".to_owned(),
        ("numeric", [p, s]) => format!("decimal({p},{s})"),
        ("float" | "real", _) => "double".to_owned(),
        _ => return None,
    };
    Some(ours)
}
