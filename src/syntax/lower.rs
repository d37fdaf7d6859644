//! Pest pairs → AST. The only file that sees `Rule` and `Pair`.

use pest::iterators::{Pair, Pairs};

use super::ast::*;
use super::grammar::Rule;
use super::span::{Span, Spanned};

type P<'a> = Pair<'a, Rule>;

fn span_of(pair: &P<'_>) -> Span {
    let span = pair.as_span();
    Span::new(span.start(), span.end())
}

fn spanned<T>(pair: &P<'_>, node: T) -> Spanned<T> {
    Spanned::new(node, span_of(pair))
}

fn text(pair: &P<'_>) -> Spanned<String> {
    spanned(pair, pair.as_str().to_owned())
}

fn path(pair: &P<'_>) -> Spanned<Path> {
    spanned(pair, pair.as_str().split('.').map(str::to_owned).collect())
}

/// Takes the next inner pair; the grammar guarantees it exists.
fn next<'a>(pairs: &mut Pairs<'a, Rule>, context: &str) -> P<'a> {
    pairs
        .next()
        .unwrap_or_else(|| unreachable!("missing inner pair in {context}"))
}

pub(crate) fn lower_spec(spec: P<'_>) -> Spec {
    let mut out = Spec::default();
    for item in spec.into_inner() {
        match item.as_rule() {
            Rule::sync_decl => {
                let s = next(&mut item.into_inner(), "sync_decl");
                out.syncs.push(string(&s));
            }
            Rule::source_block => out.sources.push(lower_source(item)),
            Rule::target_block => out.targets.push(lower_target(item)),
            Rule::map_block => {
                let span = span_of(&item);
                let mappings = item.into_inner().map(lower_mapping).collect();
                out.maps.push(Spanned::new(mappings, span));
            }
            Rule::EOI => {}
            _ => {
                let span = span_of(&item);
                out.directives
                    .push(Spanned::new(lower_directive(item), span));
            }
        }
    }
    out
}

/// Unescapes a `string` pair (plain or raw) into its text.
fn string(pair: &P<'_>) -> Spanned<String> {
    let (text, _) = string_parts(pair);
    spanned(pair, text)
}

fn string_parts(pair: &P<'_>) -> (String, Option<usize>) {
    let inner = pair
        .clone()
        .into_inner()
        .next()
        .unwrap_or_else(|| unreachable!("string without inner pair"));
    let raw = inner.as_str();
    let start = inner.as_span().start();
    match inner.as_rule() {
        Rule::raw_string => (raw[3..raw.len() - 3].to_owned(), Some(start + 3)),
        Rule::plain_string => {
            let body = &raw[1..raw.len() - 1];
            if body.contains('\\') {
                (unescape(body), None)
            } else {
                (body.to_owned(), Some(start + 1))
            }
        }
        rule => unreachable!("{rule:?} in string"),
    }
}

fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                // The grammar guarantees `{hex+}` follows.
                let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                let ch = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                out.push(ch);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn lower_source(pair: P<'_>) -> Spanned<Source> {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let kind = text(&next(&mut inner, "source kind"));
    let endpoint = string(&next(&mut inner, "source endpoint"));
    let statements = inner.map(lower_source_stmt).collect();
    Spanned::new(
        Source {
            kind,
            endpoint,
            statements,
        },
        span,
    )
}

fn lower_source_stmt(pair: P<'_>) -> Spanned<SourceStmt> {
    let span = span_of(&pair);
    let rule = pair.as_rule();
    let mut inner = pair.clone().into_inner();
    let stmt = match rule {
        Rule::connection_stmt => SourceStmt::Connection(text(&next(&mut inner, "connection"))),
        Rule::method_stmt => SourceStmt::Method(text(&next(&mut inner, "method"))),
        Rule::param_stmt => {
            let place = text(&next(&mut inner, "param place"));
            let name = text(&next(&mut inner, "param name"));
            let value = lower_value(next(&mut inner, "param value"));
            SourceStmt::Param { place, name, value }
        }
        Rule::window_stmt => SourceStmt::Window(
            inner
                .map(|opt| {
                    let mut parts = opt.into_inner();
                    let key = text(&next(&mut parts, "window key"));
                    let value = next(&mut parts, "window value");
                    let value = match value.as_rule() {
                        Rule::string => string(&value),
                        _ => text(&value),
                    };
                    WindowOpt { key, value }
                })
                .collect(),
        ),
        Rule::records_stmt => SourceStmt::Records(path(&next(&mut inner, "records"))),
        Rule::id_stmt => SourceStmt::Id(path(&next(&mut inner, "id"))),
        Rule::modified_stmt => SourceStmt::Modified(path(&next(&mut inner, "modified"))),
        Rule::total_stmt => SourceStmt::Total(path(&next(&mut inner, "total"))),
        _ => SourceStmt::Directive(lower_directive(pair)),
    };
    Spanned::new(stmt, span)
}

fn lower_value(pair: P<'_>) -> Spanned<Value> {
    let span = span_of(&pair);
    let inner = next(&mut pair.into_inner(), "value");
    let value = match inner.as_rule() {
        Rule::object => Value::Object(
            inner
                .into_inner()
                .map(|pair| {
                    let mut parts = pair.into_inner();
                    let key = next(&mut parts, "pair key");
                    let key = match key.as_rule() {
                        Rule::string => string(&key),
                        _ => text(&key),
                    };
                    (key, lower_value(next(&mut parts, "pair value")))
                })
                .collect(),
        ),
        Rule::array => Value::Array(inner.into_inner().map(lower_value).collect()),
        Rule::call_value => {
            let mut parts = inner.into_inner();
            let name = text(&next(&mut parts, "call name"));
            Value::Call {
                name,
                args: parts.map(lower_value).collect(),
            }
        }
        Rule::string => Value::String(string(&inner).node),
        Rule::number => Value::Number(inner.as_str().to_owned()),
        Rule::boolean => Value::Bool(inner.as_str() == "true"),
        Rule::null => Value::Null,
        rule => unreachable!("{rule:?} in lower_value"),
    };
    Spanned::new(value, span)
}

fn lower_directive(pair: P<'_>) -> Directive {
    let rule = pair.as_rule();
    let mut inner = pair.into_inner();
    match rule {
        Rule::paginate_directive => {
            let first = next(&mut inner, "paginate");
            let (style, param) = if first.as_rule() == Rule::paginate_style {
                (
                    Some(text(&first)),
                    path(&next(&mut inner, "paginate param")),
                )
            } else {
                (None, path(&first))
            };
            let options = inner.map(lower_paginate_opt).collect();
            Directive::Paginate {
                style,
                param,
                options,
            }
        }
        Rule::rate_directive => {
            let mut rates = Vec::new();
            let mut spacing = None;
            for part in inner {
                match part.as_rule() {
                    Rule::rate_spacing => {
                        spacing = part.into_inner().next().map(|p| text(&p));
                    }
                    _ => rates.push(text(&part)),
                }
            }
            Directive::Rate { rates, spacing }
        }
        Rule::retry_directive => {
            let attempts = text(&next(&mut inner, "retry"));
            let backoff = inner.next().map(|p| text(&p));
            let max = inner.next().map(|p| text(&p));
            Directive::Retry {
                attempts,
                backoff,
                max,
            }
        }
        Rule::timeout_directive => Directive::Timeout(text(&next(&mut inner, "timeout"))),
        Rule::flatten_directive => {
            let p = path(&next(&mut inner, "flatten"));
            Directive::Flatten {
                path: p,
                alias: inner.next().map(|p| text(&p)),
            }
        }
        Rule::rename_directive => {
            let from = path(&next(&mut inner, "rename from"));
            let to = text(&next(&mut inner, "rename to"));
            let ty = inner.next().map(lower_type_annotation);
            Directive::Rename { from, to, ty }
        }
        Rule::split_directive => {
            let p = path(&next(&mut inner, "split"));
            Directive::Split {
                path: p,
                separator: string(&next(&mut inner, "split separator")),
            }
        }
        Rule::filter_directive => {
            let p = path(&next(&mut inner, "filter"));
            let test_pair = next(&mut inner, "filter test");
            let span = span_of(&test_pair);
            let test = lower_filter_test(next(&mut test_pair.into_inner(), "filter test"));
            Directive::Filter {
                path: p,
                test: Spanned::new(test, span),
            }
        }
        Rule::schedule_directive => Directive::Schedule(string(&next(&mut inner, "schedule"))),
        Rule::remedy_directive => Directive::Remedy {
            cron: string(&next(&mut inner, "remedy cron")),
            lookback: text(&next(&mut inner, "remedy lookback")),
        },
        Rule::on_error_directive => Directive::OnError(text(&next(&mut inner, "on_error"))),
        Rule::on_duplicate_key_directive => {
            Directive::OnDuplicateKey(text(&next(&mut inner, "on_duplicate_key")))
        }
        Rule::alert_directive => Directive::Alert {
            metric: text(&next(&mut inner, "alert metric")),
            threshold: text(&next(&mut inner, "alert threshold")),
        },
        Rule::unknown_directive => Directive::Unknown(text(&next(&mut inner, "unknown directive"))),
        rule => unreachable!("{rule:?} in lower_directive"),
    }
}

fn lower_paginate_opt(pair: P<'_>) -> Spanned<PaginateOpt> {
    let span = span_of(&pair);
    let rule = pair.as_rule();
    let value = next(&mut pair.into_inner(), "paginate option");
    let opt = match rule {
        Rule::size_opt => PaginateOpt::Size(text(&value)),
        Rule::per_opt => PaginateOpt::Per(path(&value)),
        Rule::from_opt => match value.as_rule() {
            Rule::integer => PaginateOpt::FromNumber(text(&value)),
            _ => PaginateOpt::FromPath(path(&value)),
        },
        Rule::until_opt => {
            let rule_pair = next(&mut value.into_inner(), "end rule");
            let end_span = span_of(&rule_pair);
            let end = match rule_pair.as_rule() {
                Rule::short_end => EndRule::Short,
                Rule::empty_end => EndRule::Empty,
                Rule::has_next_end => {
                    EndRule::HasNext(path(&next(&mut rule_pair.into_inner(), "has_next")))
                }
                Rule::page_count_end => {
                    EndRule::PageCount(path(&next(&mut rule_pair.into_inner(), "page_count")))
                }
                Rule::total_end => {
                    EndRule::Total(path(&next(&mut rule_pair.into_inner(), "total")))
                }
                rule => unreachable!("{rule:?} in end_rule"),
            };
            PaginateOpt::Until(Spanned::new(end, end_span))
        }
        Rule::max_pages_opt => PaginateOpt::MaxPages(text(&value)),
        rule => unreachable!("{rule:?} in lower_paginate_opt"),
    };
    Spanned::new(opt, span)
}

fn lower_filter_test(pair: P<'_>) -> FilterTest {
    match pair.as_rule() {
        Rule::is_null_test => FilterTest::IsNull,
        Rule::is_not_null_test => FilterTest::IsNotNull,
        Rule::in_test | Rule::not_in_test => {
            let array = next(&mut pair.clone().into_inner(), "in array");
            let values = array.into_inner().map(lower_value).collect();
            if pair.as_rule() == Rule::in_test {
                FilterTest::In(values)
            } else {
                FilterTest::NotIn(values)
            }
        }
        Rule::compare_test => {
            let mut inner = pair.into_inner();
            let op = text(&next(&mut inner, "compare op"));
            let lit = next(&mut inner, "compare literal");
            let span = span_of(&lit);
            FilterTest::Compare {
                op,
                value: Spanned::new(lower_literal(lit), span),
            }
        }
        rule => unreachable!("{rule:?} in lower_filter_test"),
    }
}

fn lower_target(pair: P<'_>) -> Spanned<Target> {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let kind = text(&next(&mut inner, "target kind"));
    let table = string(&next(&mut inner, "target table"));
    let statements = inner
        .map(|stmt| {
            let span = span_of(&stmt);
            let rule = stmt.as_rule();
            let mut parts = stmt.into_inner();
            let node = match rule {
                Rule::connection_stmt => {
                    TargetStmt::Connection(text(&next(&mut parts, "connection")))
                }
                Rule::mode_stmt => TargetStmt::Mode(text(&next(&mut parts, "mode"))),
                Rule::key_stmt => TargetStmt::Key(parts.map(|p| text(&p)).collect()),
                Rule::batch_stmt => TargetStmt::Batch(text(&next(&mut parts, "batch"))),
                Rule::create_stmt => TargetStmt::Create,
                Rule::sql_stmt => TargetStmt::Sql(string(&next(&mut parts, "sql"))),
                rule => unreachable!("{rule:?} in lower_target"),
            };
            Spanned::new(node, span)
        })
        .collect();
    Spanned::new(
        Target {
            kind,
            table,
            statements,
        },
        span,
    )
}

fn lower_mapping(pair: P<'_>) -> Mapping {
    let mut inner = pair.into_inner();
    let column = text(&next(&mut inner, "mapping column"));
    let expr = lower_expr(next(&mut inner, "mapping expr"));
    let ty = inner.next().map(lower_type_annotation);
    Mapping { column, expr, ty }
}

fn lower_type_annotation(pair: P<'_>) -> Spanned<TypeName> {
    let type_name = next(&mut pair.into_inner(), "type annotation");
    let span = span_of(&type_name);
    let mut inner = type_name.into_inner();
    let name = text(&next(&mut inner, "type name"));
    let args = inner.map(|p| text(&p)).collect();
    Spanned::new(TypeName { name, args }, span)
}

fn lower_expr(pair: P<'_>) -> Spanned<Expr> {
    let span = span_of(&pair);
    let inner = next(&mut pair.into_inner(), "expr");
    let expr = match inner.as_rule() {
        Rule::case_expr => {
            let mut parts = inner.into_inner();
            let subject = Box::new(lower_expr(next(&mut parts, "case subject")));
            let arms = parts
                .map(|arm| {
                    let mut parts = arm.into_inner();
                    let pattern = next(&mut parts, "case pattern");
                    let pattern_span = span_of(&pattern);
                    let pattern = match pattern.as_rule() {
                        Rule::wildcard => None,
                        _ => Some(lower_literal(pattern)),
                    };
                    CaseArm {
                        pattern: Spanned::new(pattern, pattern_span),
                        value: lower_expr(next(&mut parts, "case value")),
                    }
                })
                .collect();
            Expr::Case { subject, arms }
        }
        Rule::call_expr => {
            let mut parts = inner.into_inner();
            let name = text(&next(&mut parts, "call name"));
            Expr::Call {
                name,
                args: parts.map(lower_expr).collect(),
            }
        }
        Rule::literal => Expr::Literal(lower_literal(inner)),
        Rule::path => Expr::Path(path(&inner).node),
        rule => unreachable!("{rule:?} in lower_expr"),
    };
    Spanned::new(expr, span)
}

fn lower_literal(pair: P<'_>) -> Literal {
    let inner = next(&mut pair.into_inner(), "literal");
    match inner.as_rule() {
        Rule::string => {
            let (text, content_start) = string_parts(&inner);
            Literal::String {
                text,
                content_start,
            }
        }
        Rule::number => Literal::Number(inner.as_str().to_owned()),
        Rule::boolean => Literal::Bool(inner.as_str() == "true"),
        Rule::null => Literal::Null,
        rule => unreachable!("{rule:?} in lower_literal"),
    }
}
