//! Request params and templates of the `source` block: literal values, calls such as
//! `json(...)`, and `{{ ... }}` templates compiled here with the variables they may name.

use super::{codes, vendor, CheckDiagnostic, Checker};
use crate::plan::ParamValue;
use crate::syntax::ast::Value;
use crate::syntax::{Span, Spanned};
use crate::template;

/// Template variables that make a request depend on the window.
const WINDOW_VARIABLES: &[&str] = &["window", "LAST_SYNC_TIME", "CURRENT_TIME"];

impl Checker<'_> {
    pub(super) fn check_param_value(
        &mut self,
        value: &Spanned<Value>,
        uses_window: &mut bool,
    ) -> Option<ParamValue> {
        match &value.node {
            Value::String(s) => {
                self.check_request_template(s, value.span, uses_window)?;
                Some(ParamValue::Template(s.clone()))
            }
            Value::Number(n) => match serde_json::from_str::<serde_json::Number>(n) {
                Ok(n) => Some(ParamValue::Number(n)),
                Err(_) => {
                    self.report(
                        CheckDiagnostic::error(
                            codes::BAD_NUMBER,
                            value.span,
                            format!("`{n}` is not a number"),
                        )
                        .label("bad number"),
                    );
                    None
                }
            },
            Value::Bool(b) => Some(ParamValue::Bool(*b)),
            Value::Null => Some(ParamValue::Null),
            Value::Object(pairs) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (key, v) in pairs {
                    if out
                        .iter()
                        .any(|(k, _): &(String, ParamValue)| *k == key.node)
                    {
                        self.report(
                            CheckDiagnostic::error(
                                codes::DUPLICATE_PARAM,
                                key.span,
                                format!("key `{}` is set twice in this object", key.node),
                            )
                            .label("set again here"),
                        );
                        ok = false;
                        continue;
                    }
                    match self.check_param_value(v, uses_window) {
                        Some(v) => out.push((key.node.clone(), v)),
                        None => ok = false,
                    }
                }
                ok.then_some(ParamValue::Object(out))
            }
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.push(self.check_param_value(item, uses_window)?);
                }
                Some(ParamValue::Array(out))
            }
            Value::Call { name, args } => {
                self.check_param_call(name, args, value.span, uses_window)
            }
        }
    }

    fn check_param_call(
        &mut self,
        name: &Spanned<String>,
        args: &[Spanned<Value>],
        span: Span,
        uses_window: &mut bool,
    ) -> Option<ParamValue> {
        match name.node.as_str() {
            "json" => {
                if args.len() != 1 {
                    self.report(
                        CheckDiagnostic::error(
                            codes::BAD_ARGUMENTS,
                            span,
                            format!("`json` takes one value, got {}", args.len()),
                        )
                        .label("wrong number of arguments")
                        .help("e.g. param searchFieldJson = json({ textField_x: \"销售收款\" })"),
                    );
                    return None;
                }
                let inner = self.check_param_value(&args[0], uses_window)?;
                Some(ParamValue::JsonString(Box::new(inner)))
            }
            "split" => match args {
                [Spanned {
                    node: Value::String(text),
                    span: text_span,
                }, Spanned {
                    node: Value::String(sep),
                    ..
                }] if !sep.is_empty() => {
                    self.check_request_template(text, *text_span, uses_window)?;
                    Some(ParamValue::Split {
                        template: text.clone(),
                        separator: sep.clone(),
                    })
                }
                _ => {
                    self.report(
                        CheckDiagnostic::error(
                            codes::BAD_ARGUMENTS,
                            span,
                            "`split` takes a string and a non-empty separator string",
                        )
                        .label("bad arguments")
                        .help("e.g. param so_ids = split(\"{{ env.SO_IDS }}\", \",\")"),
                    );
                    None
                }
            },
            other => {
                let help = match vendor::closest(other, &["json", "split"]) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "request values may call `json(...)` and `split(...)`".to_owned(),
                };
                self.report(
                    CheckDiagnostic::error(
                        codes::UNKNOWN_FUNCTION,
                        name.span,
                        format!("unknown function `{other}` in a request value"),
                    )
                    .label("unknown function")
                    .help(help),
                );
                None
            }
        }
    }

    /// Compiles a request template and checks its variables.
    fn check_request_template(
        &mut self,
        text: &str,
        span: Span,
        uses_window: &mut bool,
    ) -> Option<()> {
        if !text.contains("{{") && !text.contains("{%") {
            return Some(());
        }
        let problems =
            template::validate(text, template::VARIABLES, true, template::World::Request);
        let env = minijinja::Environment::new();
        if let Ok(t) = env.template_from_str(text) {
            if t.undeclared_variables(false)
                .iter()
                .any(|v| WINDOW_VARIABLES.contains(&v.as_str()))
            {
                *uses_window = true;
            }
        }
        self.report_template_problems(problems, text, span, template::VARIABLES)
    }

    pub(crate) fn report_template_problems(
        &mut self,
        problems: Vec<template::TemplateProblem>,
        template: &str,
        span: Span,
        allowed: &[&str],
    ) -> Option<()> {
        if problems.is_empty() {
            return Some(());
        }
        for problem in problems {
            match problem {
                template::TemplateProblem::Syntax { message, .. } => self.report(
                    CheckDiagnostic::error(
                        codes::BAD_TEMPLATE,
                        span,
                        format!("template does not compile: {message}"),
                    )
                    .label("bad template")
                    .help("templates use minijinja syntax, e.g. \"{{ window.start | datetime }}\""),
                ),
                template::TemplateProblem::Render {
                    message,
                    range,
                    name,
                    candidates,
                } => {
                    let at = range.map_or(span, |r| self.span_within(span, template, r));
                    let suggestion = name
                        .as_deref()
                        .and_then(|name| vendor::closest(name, &candidates));
                    let help = match suggestion {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "variables: LAST_SYNC_TIME, CURRENT_TIME, DAYS_AGO_<n>, \
                                 window.start/end, page, page_size, env.NAME; filters: \
                                 datetime, date, utc, timestamp, millis"
                            .to_owned(),
                    };
                    self.report(
                        CheckDiagnostic::error(
                            codes::TEMPLATE_RENDER,
                            at,
                            format!("template does not render: {message}"),
                        )
                        .label("fails to render")
                        .help(help),
                    );
                }
                template::TemplateProblem::UnknownVariable { name } => {
                    let help = match vendor::closest(&name, allowed) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "templates may use {}{}",
                            allowed.join(", "),
                            if allowed.contains(&"window") {
                                " and DAYS_AGO_<n>"
                            } else {
                                ""
                            }
                        ),
                    };
                    self.report(
                        CheckDiagnostic::error(
                            codes::UNKNOWN_VARIABLE,
                            span,
                            format!("template variable `{name}` does not exist"),
                        )
                        .label("unknown variable")
                        .help(help),
                    );
                }
            }
        }
        None
    }

    /// The span in the spec of bytes `range` of a template written at `span` (a quoted
    /// string), or the whole string when the text between the quotes is not the template
    /// verbatim (escapes).
    fn span_within(&self, span: Span, template: &str, range: std::ops::Range<usize>) -> Span {
        let start = span.start + 1 + range.start;
        let end = span.start + 1 + range.end;
        let verbatim = self
            .text
            .get(span.start + 1..span.start + 1 + template.len());
        if verbatim == Some(template) && end < span.end && range.start < range.end {
            Span::new(start, end)
        } else {
            span
        }
    }
}
