//! Spec params → one `ApiCall`: templates rendered, nested params assembled, paging
//! params set. No I/O.

use serde_json::{Map, Value};

use crate::connectors::ApiCall;
use crate::plan::{FieldPath, PaginationPlan, ParamPlace, ParamValue, SourcePlan};
use crate::template::{Renderer, RequestContext, TemplateError};

/// Where paging stands for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageState {
    /// Page number (page style).
    pub page: Option<i64>,
    /// Record offset (offset style).
    pub offset: Option<i64>,
    /// Cursor or keyset value from the previous page; `None` on the first page.
    pub cursor: Option<Value>,
}

impl PageState {
    /// The first page of a plan's pagination.
    pub fn first(pagination: &PaginationPlan) -> PageState {
        match pagination {
            PaginationPlan::Page { first, .. } => PageState {
                page: Some(*first),
                ..PageState::default()
            },
            PaginationPlan::Offset { .. } => PageState {
                offset: Some(0),
                ..PageState::default()
            },
            PaginationPlan::None
            | PaginationPlan::Cursor { .. }
            | PaginationPlan::Keyset { .. } => PageState::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot render parameter `{param}`: {source}")]
pub struct RenderError {
    pub param: String,
    pub source: TemplateError,
}

/// Builds the call for one page of one window.
pub fn build_call(
    source: &SourcePlan,
    renderer: &Renderer,
    ctx: &RequestContext,
    page: &PageState,
) -> Result<ApiCall, RenderError> {
    let mut body = Map::new();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for param in &source.params {
        let name = param.path.to_string();
        let value = render_value(&param.value, renderer, ctx).map_err(|source| RenderError {
            param: name.clone(),
            source,
        })?;
        match param.place {
            ParamPlace::Body => set_path(&mut body, &param.path, value),
            ParamPlace::Query => query.push((name, scalar_text(&value))),
            ParamPlace::Header => headers.push((name, scalar_text(&value))),
        }
    }
    for (path, value) in paging_params(&source.pagination, page) {
        set_path(&mut body, &path, value);
    }
    Ok(ApiCall {
        endpoint: source.endpoint.clone(),
        http_method: source.http_method,
        params: body,
        query,
        headers,
    })
}

/// The params paging sets on a request.
fn paging_params(pagination: &PaginationPlan, page: &PageState) -> Vec<(FieldPath, Value)> {
    match pagination {
        PaginationPlan::None => Vec::new(),
        PaginationPlan::Page {
            param,
            size_param,
            size,
            first,
            ..
        } => vec![
            (param.clone(), Value::from(page.page.unwrap_or(*first))),
            (size_param.clone(), Value::from(*size)),
        ],
        PaginationPlan::Offset {
            param,
            size_param,
            size,
            ..
        } => vec![
            (param.clone(), Value::from(page.offset.unwrap_or(0))),
            (size_param.clone(), Value::from(*size)),
        ],
        PaginationPlan::Cursor {
            param,
            size_param,
            size,
            ..
        } => {
            let mut out = Vec::new();
            if let Some(cursor) = &page.cursor {
                out.push((param.clone(), cursor.clone()));
            }
            if let (Some(p), Some(s)) = (size_param, size) {
                out.push((p.clone(), Value::from(*s)));
            }
            out
        }
        PaginationPlan::Keyset {
            param,
            size_param,
            size,
            ..
        } => {
            let mut out = vec![(size_param.clone(), Value::from(*size))];
            if let Some(cursor) = &page.cursor {
                out.push((param.clone(), cursor.clone()));
            }
            out
        }
    }
}

fn render_value(
    value: &ParamValue,
    renderer: &Renderer,
    ctx: &RequestContext,
) -> Result<Value, TemplateError> {
    Ok(match value {
        ParamValue::Template(t) => {
            if t.contains("{{") || t.contains("{%") {
                Value::String(renderer.render(t, ctx)?)
            } else {
                Value::String(t.clone())
            }
        }
        ParamValue::Number(n) => Value::Number(n.clone()),
        ParamValue::Bool(b) => Value::Bool(*b),
        ParamValue::Null => Value::Null,
        ParamValue::Object(pairs) => {
            let mut map = Map::new();
            for (k, v) in pairs {
                map.insert(k.clone(), render_value(v, renderer, ctx)?);
            }
            Value::Object(map)
        }
        ParamValue::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_value(i, renderer, ctx))
                .collect::<Result<_, _>>()?,
        ),
        ParamValue::JsonString(inner) => {
            Value::String(render_value(inner, renderer, ctx)?.to_string())
        }
        ParamValue::Split {
            template,
            separator,
        } => {
            let text = renderer.render(template, ctx)?;
            Value::Array(
                text.split(separator.as_str())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            )
        }
    })
}

/// Sets `a.b.c` in a nested object, creating objects on the way.
pub fn set_path(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = map;
    for key in parents {
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            return;
        };
        node = next;
    }
    node.insert(last.clone(), value);
}

/// A value as query/header text (strings unquoted, others as JSON).
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{EndRule, HttpMethod, ParamPlan, RetryPlan};

    #[test]
    fn nested_params_and_paging() {
        let source = SourcePlan {
            kind: crate::plan::ConnectorKind::Qimen,
            endpoint: "wdt.aftersales.refund.refund.search".into(),
            http_method: HttpMethod::Post,
            connection: "wdt".into(),
            params: vec![
                ParamPlan {
                    path: FieldPath::parse("params.modified_from"),
                    place: ParamPlace::Body,
                    value: ParamValue::Template("{{ window.start | datetime }}".into()),
                },
                ParamPlan {
                    path: FieldPath::parse("so_ids"),
                    place: ParamPlace::Body,
                    value: ParamValue::Split {
                        template: "A1, A2,".into(),
                        separator: ",".into(),
                    },
                },
            ],
            window: None,
            pagination: PaginationPlan::Page {
                param: FieldPath::parse("pager.page_no"),
                size_param: FieldPath::parse("pager.page_size"),
                size: 50,
                first: 1,
                until: EndRule::ShortPage,
            },
            rates: vec![],
            rate_by_send: false,
            retry: RetryPlan::default(),
            records: FieldPath::default(),
            id: None,
            modified: None,
            total: None,
            timeout: std::time::Duration::from_secs(30),
            max_pages: 0,
        };
        let t = |s| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let ctx = RequestContext {
            now: t("2024-03-10 00:00:00"),
            window_start: Some(t("2024-03-01 00:00:00")),
            window_end: Some(t("2024-03-02 00:00:00")),
            page: Some(3),
            page_size: Some(50),
            offset: None,
            cursor: None,
            env: Default::default(),
            secrets: Default::default(),
        };
        let page = PageState {
            page: Some(3),
            ..PageState::default()
        };
        let call = build_call(
            &source,
            &Renderer::new(chrono_tz::Asia::Shanghai),
            &ctx,
            &page,
        )
        .unwrap();
        assert_eq!(
            Value::Object(call.params),
            serde_json::json!({
                "params": {"modified_from": "2024-03-01 00:00:00"},
                "so_ids": ["A1", "A2"],
                "pager": {"page_no": 3, "page_size": 50}
            })
        );
    }
}
