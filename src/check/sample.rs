//! `--sample`: tries the map on a real vendor response and warns about fields no record
//! has and values that do not convert. Paths are followed as at run time
//! ([`FieldPath::get`]: object keys, and array indices such as `items.0.sku_id`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{codes, CheckDiagnostic, Checker};
use crate::plan::{ColumnPlan, Expr, FieldPath, SourcePlan, TransformStep};
use crate::syntax::ast::Mapping;
use crate::syntax::{Span, Spanned};

/// The records of a sample response at `path` (the whole sample when it is an array).
pub fn records<'v>(sample: &'v Value, path: &FieldPath) -> Vec<&'v Value> {
    // Qimen may wrap the vendor's envelope in `response`; the connector unwraps it.
    let sample = match sample.get("response") {
        Some(inner) if path.first().is_none_or(|p| p != "response") => inner,
        _ => sample,
    };
    match path.get(sample) {
        None => Vec::new(),
        Some(node) => match node {
            Value::Array(items) => items.iter().collect(),
            Value::Object(_) => vec![node],
            _ => Vec::new(),
        },
    }
}

impl Checker<'_> {
    /// The sample as a run would see it: the connector's envelope logic
    /// ([`crate::connectors::decode_sample`]) unwraps it, or finds it is the vendor's error
    /// answer, which is reported with the vendor's code and message (`None`).
    pub(crate) fn decode_sample(
        &mut self,
        sample: &Value,
        source: &super::source::CheckedSource,
        at: Span,
    ) -> Option<Value> {
        let plan = &source.plan;
        let connection = self
            .ctx
            .profile
            .and_then(|p| p.profile.connections.get(&plan.connection))
            .map(|entry| (plan.connection.as_str(), entry));
        let (code, message) = match crate::connectors::decode_sample(plan.kind, connection, sample)
        {
            Ok(value) => return Some(value),
            Err(error) => error,
        };
        self.report(
            CheckDiagnostic::warning(
                codes::SAMPLE_VENDOR_ERROR,
                at,
                format!(
                    "the sample is an error answer of {}: code {code}: {message}",
                    plan.kind.keyword()
                ),
            )
            .label("not records")
            .help(
                "save a successful answer as the sample (`qsync plan --live` fetches the \
                 first page); the error names what the request lacked",
            ),
        );
        None
    }

    pub(crate) fn check_sample(
        &mut self,
        sample: &Value,
        source: &super::source::CheckedSource,
        transforms: &[(TransformStep, Span)],
        columns: &[(ColumnPlan, Span)],
        map_ast: Option<&Spanned<Vec<Mapping>>>,
        key: Option<(&[String], Span)>,
    ) {
        let plan: &SourcePlan = &source.plan;
        let found = records(sample, &plan.records);
        if found.is_empty() {
            self.report(
                CheckDiagnostic::warning(
                    codes::SAMPLE_NO_RECORDS,
                    map_ast.map_or(Span::new(0, 0), |m| Span::new(m.span.start, m.span.start + 3)),
                    format!("the sample has no records at `{}`", plan.records),
                )
                .label("nothing to try the map on")
                .help("point `records` at the array of records in the response, e.g. records data.datas"),
            );
            return;
        }
        let missing_prefixes = self.check_sample_flatten(&found, transforms);
        let steps: Vec<TransformStep> = transforms.iter().map(|(t, _)| t.clone()).collect();
        let rows = preview_rows(&steps, &found);
        if let Some((key, span)) = key {
            self.check_sample_keys(&rows, columns, key, span);
        }
        for (column, span) in columns {
            let expr_span = map_ast
                .and_then(|m| m.node.iter().find(|mp| mp.column.node == column.name))
                .map_or(*span, |mp| mp.expr.span);
            for path in column.expr.fields() {
                let present = rows.iter().any(|row| path.get(row).is_some());
                let first = path.to_string();
                // Fields of a flatten the sample lacks were reported with the flatten.
                let of_missing = missing_prefixes
                    .iter()
                    .any(|p| first.starts_with(&format!("{p}_")));
                if !present && !of_missing {
                    let names = sibling_names(&rows, path);
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let last = first.rsplit('.').next().unwrap_or(&first);
                    let help = match super::vendor::closest(last, &names) {
                        Some(near) => format!(
                            "did you mean `{near}`? the sample's records have it; without a \
                             fix the column will be NULL"
                        ),
                        None => "check the spelling against the vendor's response; the column \
                                 will be NULL"
                            .to_owned(),
                    };
                    self.report(
                        CheckDiagnostic::warning(
                            codes::SAMPLE_MISSING_FIELD,
                            expr_span,
                            format!(
                                "no record of the sample has field `{}` (column `{}`)",
                                path, column.name
                            ),
                        )
                        .label("absent from the sample")
                        .help(help),
                    );
                }
            }
            if let Expr::Field(path) = &column.expr {
                if let Some((value, reason)) = rows.iter().find_map(|row| {
                    let value = path.get(row)?;
                    super::map::const_fits(value, column.ty)
                        .err()
                        .map(|e| (value.clone(), e))
                }) {
                    self.report(
                        CheckDiagnostic::warning(
                            codes::SAMPLE_CONVERSION,
                            expr_span,
                            format!(
                                "sample value {value} of `{}` does not convert to `{}`: {reason}",
                                path, column.ty
                            ),
                        )
                        .label("fails on the sample")
                        .help("change the column type, or such records go to `_qsync_rejects`"),
                    );
                }
            }
        }
    }
}

impl Checker<'_> {
    /// Warns when rows of the sample share the target key: they would collapse onto one
    /// row of the table. Rows are told apart by the values of every field the key columns
    /// read (the same fields give the same key); a key column that reads no field (a
    /// constant, `now()`) leaves nothing to compare.
    fn check_sample_keys(
        &mut self,
        rows: &[Value],
        columns: &[(ColumnPlan, Span)],
        key: &[String],
        span: Span,
    ) {
        let fields: Vec<&FieldPath> = key
            .iter()
            .filter_map(|name| columns.iter().find(|(c, _)| &c.name == name))
            .flat_map(|(c, _)| c.expr.fields())
            .collect();
        if fields.is_empty() {
            return;
        }
        let mut seen: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        let mut shared = 0;
        let mut first = None;
        for row in rows {
            let values: Vec<String> = fields
                .iter()
                .map(|path| {
                    path.get(row)
                        .map_or_else(|| "null".to_owned(), Value::to_string)
                })
                .collect();
            let count = seen.entry(values.clone()).or_insert(0);
            *count += 1;
            if *count == 2 {
                shared += 1;
                let named: Vec<String> = fields
                    .iter()
                    .zip(&values)
                    .map(|(path, value)| format!("{path}={value}"))
                    .collect();
                first.get_or_insert(named.join(", "));
            }
        }
        let Some(first) = first else {
            return;
        };
        self.report(
            CheckDiagnostic::warning(
                codes::SAMPLE_DUPLICATE_KEY,
                span,
                format!(
                    "rows of the sample are not unique on the key: {shared} key(s) are shared, \
                     the first by the rows with {first}"
                ),
            )
            .label("rows would collapse onto one")
            .help(
                "add the column that tells those rows apart to the `key`; otherwise one row of \
                 each key is kept and the others are counted as key collisions \
                 (`@on_duplicate_key fail` stops the window instead)",
            ),
        );
    }

    /// Warns about each `@flatten` whose array no record of the sample has, suggesting the
    /// near array name; returns those flattens' prefixes.
    fn check_sample_flatten(
        &mut self,
        records: &[&Value],
        transforms: &[(TransformStep, Span)],
    ) -> Vec<String> {
        let mut missing = Vec::new();
        for (step, span) in transforms {
            let TransformStep::Flatten { path, prefix } = step else {
                continue;
            };
            if records.iter().any(|r| path.get(r).is_some()) {
                continue;
            }
            missing.push(prefix.clone());
            let arrays: BTreeSet<&str> = records
                .iter()
                .filter_map(|r| r.as_object())
                .flat_map(|o| o.iter())
                .filter(|(_, v)| v.is_array())
                .map(|(k, _)| k.as_str())
                .collect();
            let arrays: Vec<&str> = arrays.into_iter().collect();
            let text = path.to_string();
            let help = match super::vendor::closest(&text, &arrays) {
                Some(near) => format!("did you mean `@flatten {near}`?"),
                None if arrays.is_empty() => {
                    "the sample's records hold no array; flatten what the vendor nests".to_owned()
                }
                None => format!("the sample's records hold arrays {}", arrays.join(", ")),
            };
            self.report(
                CheckDiagnostic::warning(
                    codes::SAMPLE_MISSING_FIELD,
                    *span,
                    format!("`{text}` is not in the sample"),
                )
                .label("no record has this array")
                .help(help),
            );
        }
        missing
    }
}

/// The field names beside `path`'s last step in the rows (the keys of its parent object),
/// for a did-you-mean.
fn sibling_names(rows: &[Value], path: &FieldPath) -> BTreeSet<String> {
    let text = path.to_string();
    let parent = text.rsplit_once('.').map(|(p, _)| FieldPath::parse(p));
    rows.iter()
        .filter_map(|row| match &parent {
            Some(parent) => parent.get(row),
            None => Some(row),
        })
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect()
}

/// The sample's records after `@flatten` and `@rename`, as JSON objects.
fn preview_rows(steps: &[TransformStep], records: &[&Value]) -> Vec<Value> {
    let mut rows: Vec<Value> = records.iter().map(|r| (*r).clone()).collect();
    for step in steps {
        match step {
            TransformStep::Flatten { path, prefix } => {
                rows = rows
                    .into_iter()
                    .flat_map(|row| {
                        let elements = path
                            .get(&row)
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        let mut out = Vec::new();
                        for element in elements {
                            let mut flat = row.clone();
                            if let (Some(obj), Some(el)) =
                                (flat.as_object_mut(), element.as_object())
                            {
                                for (k, v) in el {
                                    obj.insert(format!("{prefix}_{k}"), v.clone());
                                }
                            }
                            out.push(flat);
                        }
                        if out.is_empty() {
                            out.push(row);
                        }
                        out
                    })
                    .collect();
            }
            TransformStep::Rename { from, to, .. } => {
                for row in &mut rows {
                    if let Some(value) = from.get(row).cloned() {
                        if let Some(obj) = row.as_object_mut() {
                            obj.insert(to.clone(), value);
                        }
                    }
                }
            }
            TransformStep::Split { .. } | TransformStep::Filter { .. } => {}
        }
    }
    rows
}
