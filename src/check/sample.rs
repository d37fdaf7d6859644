//! `--sample`: tries the map on a real vendor response and warns about fields no record
//! has and values that do not convert. Paths are followed as at run time
//! ([`FieldPath::get`]: object keys, and array indices such as `items.0.sku_id`).

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
    pub(crate) fn check_sample(
        &mut self,
        sample: &Value,
        source: &super::source::CheckedSource,
        transforms: &[(TransformStep, Span)],
        columns: &[(ColumnPlan, Span)],
        map_ast: Option<&Spanned<Vec<Mapping>>>,
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
        let steps: Vec<TransformStep> = transforms.iter().map(|(t, _)| t.clone()).collect();
        let rows = preview_rows(&steps, &found);
        for (column, span) in columns {
            let expr_span = map_ast
                .and_then(|m| m.node.iter().find(|mp| mp.column.node == column.name))
                .map_or(*span, |mp| mp.expr.span);
            for path in column.expr.fields() {
                let present = rows.iter().any(|row| path.get(row).is_some());
                if !present {
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
                        .help("check the spelling against the vendor's response; the column will be NULL"),
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
