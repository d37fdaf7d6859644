//! `@` directives: paging, rate, retry, timeout, transforms, schedule, remedy, errors, alerts.

use std::collections::BTreeMap;

use super::{codes, CheckDiagnostic, Checker, Directives};
use crate::plan::{
    AlertRule, EndRule, FilterOp, OnDuplicateKey, OnError, RemedyPlan, RetryPlan, TransformStep,
};
use crate::syntax::ast::{self, Directive, FilterTest, PaginateOpt};
use crate::syntax::{Span, Spanned};

/// `@paginate` after option checks; parameter collisions are checked with the source.
#[derive(Debug, Clone)]
pub(crate) struct PaginateAst {
    pub style: Style,
    pub param: Spanned<Vec<String>>,
    pub size: Option<u32>,
    pub per: Option<Spanned<Vec<String>>>,
    pub first: Option<i64>,
    pub from_path: Option<Vec<String>>,
    pub until: Option<EndRule>,
    pub size_span: Option<Span>,
    pub span: Span,
    pub max_pages: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Page,
    Offset,
    Cursor,
    Keyset,
}

const DIRECTIVES: &[&str] = &[
    "paginate",
    "rate",
    "retry",
    "timeout",
    "flatten",
    "rename",
    "split",
    "filter",
    "schedule",
    "remedy",
    "on_error",
    "on_duplicate_key",
    "alert",
];

fn name_of(d: &Directive) -> &'static str {
    match d {
        Directive::Paginate { .. } => "paginate",
        Directive::Rate { .. } => "rate",
        Directive::Retry { .. } => "retry",
        Directive::Timeout(_) => "timeout",
        Directive::Flatten { .. } => "flatten",
        Directive::Rename { .. } => "rename",
        Directive::Split { .. } => "split",
        Directive::Filter { .. } => "filter",
        Directive::Schedule(_) => "schedule",
        Directive::Remedy { .. } => "remedy",
        Directive::OnError(_) => "on_error",
        Directive::OnDuplicateKey(_) => "on_duplicate_key",
        Directive::Alert { .. } => "alert",
        Directive::Unknown(_) => "unknown",
    }
}

/// Directives that may appear once.
fn is_single(name: &str) -> bool {
    matches!(
        name,
        "paginate" | "retry" | "timeout" | "schedule" | "remedy" | "on_error" | "on_duplicate_key"
    )
}

impl Checker<'_> {
    pub(crate) fn check_directives(&mut self, list: &[(&Directive, Span)]) -> Directives {
        let mut out = Directives::default();
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        for (directive, span) in list {
            let name = name_of(directive);
            if is_single(name) {
                if let Some(first) = seen.get(name) {
                    self.report(
                        CheckDiagnostic::error(
                            codes::DUPLICATE_DIRECTIVE,
                            Span::new(span.start, span.start + name.len() + 1),
                            format!("`@{name}` is given twice"),
                        )
                        .label("second one")
                        .help(format!(
                            "keep one `@{name}`; the first is on line {}",
                            self.line(*first)
                        )),
                    );
                    continue;
                }
                seen.insert(name, *span);
            }
            self.check_directive(directive, *span, &mut out);
        }
        out
    }

    fn check_directive(&mut self, directive: &Directive, span: Span, out: &mut Directives) {
        match directive {
            Directive::Paginate {
                style,
                param,
                options,
            } => out.paginate = self.check_paginate(style.as_ref(), param, options, span),
            Directive::Rate { rates, spacing } => {
                for rate in rates {
                    if let Some(r) = self.check_rate(rate) {
                        out.rates.push(r);
                    }
                }
                out.rate_by_send = spacing.as_ref().map(|s| s.node == "send");
            }
            Directive::Retry {
                attempts,
                backoff,
                max,
            } => {
                let mut retry = RetryPlan::default();
                if let Some(n) = self.check_count(attempts, "`@retry` attempts", 100) {
                    retry.attempts = u32::try_from(n).unwrap_or(100);
                }
                if let Some(b) = backoff.as_ref().and_then(|b| self.check_duration(b)) {
                    retry.base = b;
                }
                if let Some(m) = max.as_ref().and_then(|m| self.check_duration(m)) {
                    retry.max = m;
                }
                out.retry = Some(retry);
            }
            Directive::Timeout(t) => out.timeout = self.check_duration(t),
            Directive::Flatten { path, alias } => {
                let prefix = alias
                    .as_ref()
                    .map_or_else(|| path.node.join("_"), |a| a.node.clone());
                out.transforms.push((
                    TransformStep::Flatten {
                        path: path.node.clone().into(),
                        prefix,
                    },
                    span,
                ));
            }
            Directive::Rename { from, to, ty } => {
                let convert = ty.as_ref().and_then(|t| self.check_type(t));
                out.transforms.push((
                    TransformStep::Rename {
                        from: from.node.clone().into(),
                        to: to.node.clone(),
                        convert,
                    },
                    span,
                ));
            }
            Directive::Split { path, separator } => {
                if separator.node.is_empty() {
                    self.report(
                        CheckDiagnostic::error(
                            codes::BAD_ARGUMENTS,
                            separator.span,
                            "`@split` needs a non-empty separator",
                        )
                        .label("empty")
                        .help("for a comma list write @split so_ids \",\""),
                    );
                }
                out.transforms.push((
                    TransformStep::Split {
                        field: path.node.clone().into(),
                        separator: separator.node.clone(),
                    },
                    span,
                ));
            }
            Directive::Filter { path, test } => {
                if let Some((op, value)) = self.check_filter(test) {
                    out.transforms.push((
                        TransformStep::Filter {
                            field: path.node.clone().into(),
                            op,
                            value,
                        },
                        span,
                    ));
                }
            }
            Directive::Schedule(cron) => out.schedule = self.check_cron(cron),
            Directive::Remedy { cron, lookback } => {
                let schedule = self.check_cron(cron);
                let lookback = self.check_duration(lookback);
                if let (Some(schedule), Some(lookback)) = (schedule, lookback) {
                    out.remedy = Some(RemedyPlan { schedule, lookback });
                }
            }
            Directive::OnError(word) => match word.node.as_str() {
                "fail" => out.on_error = OnError::Fail,
                "reject" => out.on_error = OnError::Reject,
                other => self.report(
                    CheckDiagnostic::error(
                        codes::BAD_ON_ERROR,
                        word.span,
                        format!("unknown `@on_error` policy `{other}`"),
                    )
                    .label("unknown policy")
                    .help("`@on_error reject` keeps bad records in `_qsync_rejects` and goes on; `@on_error fail` stops the run"),
                ),
            },
            Directive::OnDuplicateKey(word) => match word.node.as_str() {
                "last" => out.on_duplicate_key = OnDuplicateKey::Last,
                "fail" => out.on_duplicate_key = OnDuplicateKey::Fail,
                other => {
                    let help = match super::vendor::closest(other, &["last", "fail"]) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "`@on_duplicate_key last` writes the row that comes last and \
                                 counts the others; `@on_duplicate_key fail` fails the window"
                            .to_owned(),
                    };
                    self.report(
                        CheckDiagnostic::error(
                            codes::BAD_ON_DUPLICATE_KEY,
                            word.span,
                            format!("unknown `@on_duplicate_key` policy `{other}`"),
                        )
                        .label("unknown policy")
                        .help(help),
                    );
                }
            },
            Directive::Alert { metric, threshold } => {
                if let Some(rule) = self.check_alert(metric, threshold) {
                    out.alerts.push(rule);
                }
            }
            Directive::Unknown(name) => {
                let suggestion = super::vendor::closest(&name.node, DIRECTIVES);
                let help = match suggestion {
                    Some(s) => format!("did you mean `@{s}`?"),
                    None => format!(
                        "known directives: {}",
                        DIRECTIVES
                            .iter()
                            .map(|d| format!("@{d}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.report(
                    CheckDiagnostic::error(
                        codes::UNKNOWN_DIRECTIVE,
                        Span::new(name.span.start - 1, name.span.end),
                        format!("unknown directive `@{}`", name.node),
                    )
                    .label("unknown directive")
                    .help(help),
                );
            }
        }
    }

    fn check_paginate(
        &mut self,
        style: Option<&Spanned<String>>,
        param: &Spanned<Vec<String>>,
        options: &[Spanned<PaginateOpt>],
        span: Span,
    ) -> Option<PaginateAst> {
        let style_kind = match style.map(|s| s.node.as_str()) {
            None | Some("page") => Style::Page,
            Some("offset") => Style::Offset,
            Some("cursor") => Style::Cursor,
            _ => Style::Keyset,
        };
        let mut p = PaginateAst {
            style: style_kind,
            param: param.clone(),
            size: None,
            per: None,
            first: None,
            from_path: None,
            until: None,
            size_span: None,
            span,
            max_pages: None,
        };
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut ok = true;
        for opt in options {
            let key = match &opt.node {
                PaginateOpt::Size(_) => "size",
                PaginateOpt::Per(_) => "per",
                PaginateOpt::FromNumber(_) | PaginateOpt::FromPath(_) => "from",
                PaginateOpt::Until(_) => "until",
                PaginateOpt::MaxPages(_) => "max_pages",
            };
            if seen.insert(key, opt.span).is_some() {
                self.report(
                    CheckDiagnostic::error(
                        codes::BAD_PAGINATION,
                        opt.span,
                        format!("`{key}` is given twice in `@paginate`"),
                    )
                    .label("repeated option"),
                );
                ok = false;
                continue;
            }
            match &opt.node {
                PaginateOpt::Size(n) => {
                    p.size = self
                        .check_count(n, "the page size", 100_000)
                        .and_then(|n| u32::try_from(n).ok());
                    p.size_span = Some(n.span);
                }
                PaginateOpt::Per(path) => p.per = Some(path.clone()),
                PaginateOpt::FromNumber(n) => match (style_kind, n.node.parse::<i64>()) {
                    (Style::Page | Style::Offset, Ok(v)) => p.first = Some(v),
                    _ => {
                        self.report(
                            CheckDiagnostic::error(
                                codes::BAD_PAGINATION,
                                n.span,
                                "a cursor or keyset is read from a response path, not a number",
                            )
                            .label("expected a path")
                            .help("e.g. @paginate cursor next from data.next_cursor"),
                        );
                        ok = false;
                    }
                },
                PaginateOpt::FromPath(path) => match style_kind {
                    Style::Cursor | Style::Keyset => p.from_path = Some(path.node.clone()),
                    Style::Page | Style::Offset => {
                        self.report(
                            CheckDiagnostic::error(
                                codes::BAD_PAGINATION,
                                path.span,
                                "`from` of page or offset paging is the first page number",
                            )
                            .label("expected a number")
                            .help("e.g. @paginate pageIndex size 50 from 0"),
                        );
                        ok = false;
                    }
                },
                PaginateOpt::Until(rule) => {
                    if matches!(style_kind, Style::Cursor | Style::Keyset) {
                        self.report(
                            CheckDiagnostic::error(
                                codes::BAD_PAGINATION,
                                rule.span,
                                "cursor and keyset paging end when the page is empty or the cursor is missing",
                            )
                            .label("not used by this style")
                            .help("remove `until`"),
                        );
                        ok = false;
                    }
                    p.until = Some(match &rule.node {
                        ast::EndRule::Short => EndRule::ShortPage,
                        ast::EndRule::Empty => EndRule::EmptyPage,
                        ast::EndRule::HasNext(path) => EndRule::HasNext(path.node.clone().into()),
                        ast::EndRule::PageCount(path) => {
                            EndRule::PageCount(path.node.clone().into())
                        }
                        ast::EndRule::Total(path) => EndRule::Total(path.node.clone().into()),
                    });
                }
                PaginateOpt::MaxPages(n) => {
                    p.max_pages = self.check_count(n, "`max_pages`", 10_000_000);
                }
            }
        }
        if matches!(style_kind, Style::Cursor | Style::Keyset) && p.from_path.is_none() {
            self.report(
                CheckDiagnostic::error(
                    codes::BAD_PAGINATION,
                    span,
                    format!(
                        "{} paging needs `from <path>`: where the next value comes from",
                        if style_kind == Style::Cursor {
                            "cursor"
                        } else {
                            "keyset"
                        }
                    ),
                )
                .label("no `from`")
                .help(if style_kind == Style::Cursor {
                    "e.g. @paginate cursor next_token from data.next_token"
                } else {
                    "e.g. @paginate keyset start_ts from ts size 50"
                }),
            );
            ok = false;
        }
        ok.then_some(p)
    }

    fn check_filter(
        &mut self,
        test: &Spanned<FilterTest>,
    ) -> Option<(FilterOp, serde_json::Value)> {
        Some(match &test.node {
            FilterTest::IsNull => (FilterOp::IsNull, serde_json::Value::Null),
            FilterTest::IsNotNull => (FilterOp::IsNotNull, serde_json::Value::Null),
            FilterTest::In(values) | FilterTest::NotIn(values) => {
                let mut list = Vec::new();
                for v in values {
                    list.push(self.constant_value(v)?);
                }
                let op = if matches!(test.node, FilterTest::In(_)) {
                    FilterOp::In
                } else {
                    FilterOp::NotIn
                };
                (op, serde_json::Value::Array(list))
            }
            FilterTest::Compare { op, value } => {
                let op = match op.node.as_str() {
                    "==" => FilterOp::Eq,
                    "!=" => FilterOp::Ne,
                    "<" => FilterOp::Lt,
                    "<=" => FilterOp::Le,
                    ">" => FilterOp::Gt,
                    _ => FilterOp::Ge,
                };
                (op, literal_json(&value.node))
            }
        })
    }

    /// A filter list element must be a plain constant.
    fn constant_value(&mut self, v: &Spanned<ast::Value>) -> Option<serde_json::Value> {
        match &v.node {
            ast::Value::String(s) => Some(serde_json::Value::String(s.clone())),
            ast::Value::Number(n) => number_json(n),
            ast::Value::Bool(b) => Some(serde_json::Value::Bool(*b)),
            ast::Value::Null => Some(serde_json::Value::Null),
            _ => {
                self.report(
                    CheckDiagnostic::error(
                        codes::BAD_FILTER,
                        v.span,
                        "a filter list holds constants only",
                    )
                    .label("not a constant")
                    .help("write strings, numbers, true/false or null"),
                );
                None
            }
        }
    }

    fn check_alert(
        &mut self,
        metric: &Spanned<String>,
        threshold: &Spanned<String>,
    ) -> Option<AlertRule> {
        match metric.node.as_str() {
            "lag" => self
                .check_duration(threshold)
                .map(|over| AlertRule::Lag { over }),
            "rejects" => match threshold.node.parse::<u64>() {
                Ok(over) => Some(AlertRule::Rejects { over }),
                Err(_) => {
                    self.report(
                        CheckDiagnostic::error(
                            codes::BAD_ALERT,
                            threshold.span,
                            "`@alert rejects` takes a number of records",
                        )
                        .label("not a count")
                        .help("e.g. @alert rejects > 100"),
                    );
                    None
                }
            },
            other => {
                self.report(
                    CheckDiagnostic::error(
                        codes::BAD_ALERT,
                        metric.span,
                        format!("unknown alert metric `{other}`"),
                    )
                    .label("unknown metric")
                    .help("alert on `lag` (e.g. @alert lag > 2h) or `rejects` (e.g. @alert rejects > 100)"),
                );
                None
            }
        }
    }
}

pub(crate) fn literal_json(lit: &ast::Literal) -> serde_json::Value {
    match lit {
        ast::Literal::String { text, .. } => serde_json::Value::String(text.clone()),
        ast::Literal::Number(n) => number_json(n).unwrap_or(serde_json::Value::Null),
        ast::Literal::Bool(b) => serde_json::Value::Bool(*b),
        ast::Literal::Null => serde_json::Value::Null,
    }
}

pub(crate) fn number_json(n: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Number>(n)
        .ok()
        .map(serde_json::Value::Number)
}
