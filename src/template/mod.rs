//! The `{{ ... }}` template world: request params and custom SQL, rendered with minijinja.
//!
//! Owns the environment (filters `datetime`, `date`, `timestamp`, `millis`), the list of
//! variables a template may use, compiling templates during `check` and rendering them per
//! request. It does not own `<field>` interpolation in mappings (that is `transform`).

use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime};
use chrono_tz::Tz;
use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::plan::time;

/// Variables every request template may use, besides `DAYS_AGO_<n>`.
pub const VARIABLES: &[&str] = &[
    "LAST_SYNC_TIME",
    "CURRENT_TIME",
    "window",
    "page",
    "page_size",
    "offset",
    "cursor",
    "env",
    "secrets",
];

/// Variables of a custom SQL head template.
pub const SQL_VARIABLES: &[&str] = &["table", "columns", "env"];

/// Formats accepted by the date filters' input, in order of preference.
const LOCAL_FORMATS: &[&str] = &["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"];

/// Builds the environment in time zone `tz` (the source systems' clocks).
pub fn environment(tz: Tz) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("datetime", move |v: Value, fmt: Option<String>| {
        let t = to_local(&v, tz)?;
        format_time(&t, fmt.as_deref().unwrap_or("%Y-%m-%d %H:%M:%S"))
    });
    env.add_filter("date", move |v: Value, fmt: Option<String>| {
        let t = to_local(&v, tz)?;
        format_time(&t, fmt.as_deref().unwrap_or("%Y-%m-%d"))
    });
    // `utc` turns a source-zone time into the same instant in UTC, for vendors that take
    // GMT bounds (DingTalk Yida's `modifiedFromTimeGMT`).
    env.add_filter("utc", move |v: Value| {
        let t = to_local(&v, tz)?;
        Ok(t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
    });
    env.add_filter("timestamp", move |v: Value| {
        Ok(to_local(&v, tz)?.timestamp())
    });
    env.add_filter("millis", move |v: Value| {
        Ok(to_local(&v, tz)?.timestamp_millis())
    });
    env
}

/// `t` in strftime format `fmt`; a format chrono cannot write (`%Q`) is an error, where
/// `to_string()` would panic.
fn format_time(t: &DateTime<Tz>, fmt: &str) -> Result<String, Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    write!(out, "{}", t.format(fmt)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("`{fmt}` is not a time format (e.g. '%Y-%m-%d %H:%M:%S')"),
        )
    })?;
    Ok(out)
}

/// Reads a template time value (`yyyy-MM-dd HH:mm:ss` local time, or epoch seconds).
fn to_local(value: &Value, tz: Tz) -> Result<DateTime<Tz>, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "the value given to the filter does not exist",
        ));
    }
    if let Some(text) = value.as_str() {
        for format in LOCAL_FORMATS {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
                return local(naive, tz);
            }
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(t.with_timezone(&tz));
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return local(date.and_time(chrono::NaiveTime::MIN), tz);
        }
    } else if let Ok(secs) = i64::try_from(value.clone()) {
        if let Some(t) = DateTime::from_timestamp(secs, 0) {
            return Ok(t.with_timezone(&tz));
        }
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("`{value}` is not a time (expected yyyy-MM-dd HH:mm:ss)"),
    ))
}

/// A wall-clock time of `tz` as an instant there: the first occurrence of a repeated time,
/// the end of the gap for a skipped one ([`time::instant`]), never an error.
fn local(naive: NaiveDateTime, tz: Tz) -> Result<DateTime<Tz>, Error> {
    Ok(time::instant(naive, tz).with_timezone(&tz))
}

/// Why a template was refused during `check`.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateProblem {
    /// minijinja could not compile it; the message and the byte range within the template.
    Syntax {
        message: String,
        range: Option<std::ops::Range<usize>>,
    },
    /// It uses a variable that does not exist.
    UnknownVariable { name: String },
    /// It compiles but fails when rendered against stand-in values (a window, page 1, an
    /// `env` that has every name): an unknown filter (`datetim`), an attribute the variable
    /// lacks (`window.strat`), a filter refusing its value. `name` is the misspelt word and
    /// `candidates` the names it could have meant, for a did-you-mean.
    Render {
        message: String,
        range: Option<std::ops::Range<usize>>,
        name: Option<String>,
        candidates: Vec<&'static str>,
    },
}

/// The filters a request template may use: qsync's own, then minijinja's common built-ins
/// (for did-you-mean suggestions).
pub const FILTERS: &[&str] = &[
    "datetime",
    "date",
    "utc",
    "timestamp",
    "millis",
    "default",
    "upper",
    "lower",
    "trim",
    "replace",
    "join",
    "int",
    "float",
    "string",
    "length",
    "first",
    "last",
    "tojson",
    "urlencode",
    "round",
    "abs",
    "safe",
    "escape",
];

/// The attributes of `window`.
const WINDOW_FIELDS: &[&str] = &["start", "end"];

/// Which template world a template belongs to, for test rendering during `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// Request params, query, headers: [`VARIABLES`], `DAYS_AGO_<n>`, qsync's filters,
    /// strict about undefined values (as [`Renderer`] is).
    Request,
    /// A custom SQL head: [`SQL_VARIABLES`], minijinja's built-in filters only (as the
    /// sink renders it).
    Sql,
}

/// Stand-in for `env` (and `secrets`) while test rendering: every name is set, to a time-shaped text so
/// that date filters over an environment variable render too.
#[derive(Debug)]
struct AnyEnv;

impl minijinja::value::Object for AnyEnv {
    fn get_value(self: &std::sync::Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from("2024-01-01 00:00:00"))
    }
}

/// Renders `source` once against stand-in values of `world`, so a template that compiles
/// but cannot render fails in `check` rather than at a run's first window.
fn test_render(source: &str, world: World) -> Result<(), TemplateProblem> {
    let tz = chrono_tz::Asia::Shanghai;
    let result = match world {
        World::Request => {
            let env = environment(tz);
            let t = |s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok();
            let ctx = RequestContext {
                now: t("2024-01-08 12:00:00").unwrap_or_default(),
                window_start: t("2024-01-01 00:00:00"),
                window_end: t("2024-01-08 00:00:00"),
                page: Some(1),
                page_size: Some(50),
                offset: Some(0),
                cursor: Some("cursor".to_owned()),
                env: std::collections::BTreeMap::new(),
                secrets: std::collections::BTreeMap::new(),
            };
            let template = env.template_from_str(source);
            template.and_then(|template| {
                let days: Vec<i64> = template
                    .undeclared_variables(false)
                    .iter()
                    .filter_map(|name| days_ago_n(name))
                    .collect();
                let mut map = ctx.to_map(&days, tz);
                map.insert("env".into(), Value::from_object(AnyEnv));
                // Which secrets a connection declares is the profile's business.
                map.insert("secrets".into(), Value::from_object(AnyEnv));
                template.render(Value::from(map)).map(drop)
            })
        }
        World::Sql => {
            let env = Environment::new();
            let ctx = minijinja::context! {
                table => "`t`",
                columns => "`a`, `b`",
                env => Value::from_object(AnyEnv),
            };
            env.render_str(source, ctx).map(drop)
        }
    };
    result.map_err(|error| render_problem(source, &error))
}

/// What a render error says, with the word it stumbled on and what that word could be.
fn render_problem(source: &str, error: &Error) -> TemplateProblem {
    let range = error.range().filter(|r| source.get(r.clone()).is_some());
    let text = range.clone().and_then(|r| source.get(r)).unwrap_or("");
    let (name, candidates): (Option<String>, Vec<&'static str>) = match error.kind() {
        ErrorKind::UnknownFilter => {
            let word = text.rsplit('|').next().unwrap_or(text);
            (Some(identifier(word)), FILTERS.to_vec())
        }
        ErrorKind::UndefinedError => match text.trim().rsplit_once('.') {
            Some((parent, attr)) if parent.trim() == "window" => {
                (Some(identifier(attr)), WINDOW_FIELDS.to_vec())
            }
            Some((_, attr)) => (Some(identifier(attr)), Vec::new()),
            None => (None, Vec::new()),
        },
        _ => (None, Vec::new()),
    };
    let message = match (error.kind(), &name) {
        (ErrorKind::UnknownFilter, Some(name)) => format!("unknown filter `{name}`"),
        (ErrorKind::UndefinedError, Some(name)) if !text.is_empty() => {
            format!("`{}` does not exist (no attribute `{name}`)", text.trim())
        }
        _ => match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        },
    };
    TemplateProblem::Render {
        message,
        range,
        name,
        candidates,
    }
}

/// `window.strat`: an attribute `window` lacks. Found by reading the text, since a strict
/// undefined value only fails where it is used, and then at the filter, not at the word.
fn unknown_window_field(source: &str) -> Option<TemplateProblem> {
    let mut from = 0;
    while let Some(at) = source[from..].find("window.").map(|i| i + from) {
        from = at + "window.".len();
        let before = source[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let name = identifier(&source[from..]);
        if name.is_empty() || WINDOW_FIELDS.contains(&name.as_str()) {
            continue;
        }
        return Some(TemplateProblem::Render {
            message: format!("`window` has no attribute `{name}` (it has `start` and `end`)"),
            range: Some(at..from + name.len()),
            name: Some(name),
            candidates: WINDOW_FIELDS.to_vec(),
        });
    }
    None
}

/// The leading identifier of `text` (`datetim('%Y')` → `datetim`).
fn identifier(text: &str) -> String {
    text.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Compiles `source`, checks its variables against `allowed` (+ `DAYS_AGO_<n>` when
/// `days_ago` is true) and, when those hold, renders it once against stand-in values of
/// `world` ([`TemplateProblem::Render`]). Returns every problem found.
pub fn validate(
    source: &str,
    allowed: &[&str],
    days_ago: bool,
    world: World,
) -> Vec<TemplateProblem> {
    let env = environment(chrono_tz::Asia::Shanghai);
    let template = match env.template_from_str(source) {
        Ok(t) => t,
        Err(error) => {
            return vec![TemplateProblem::Syntax {
                message: error.detail().unwrap_or("invalid template").to_owned(),
                range: error.range(),
            }]
        }
    };
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !allowed.contains(&name.as_str()))
        .filter(|name| !(days_ago && days_ago_n(name).is_some()))
        .collect();
    unknown.sort();
    if unknown.is_empty() {
        if world == World::Request {
            if let Some(problem) = unknown_window_field(source) {
                return vec![problem];
            }
        }
        return test_render(source, world).err().into_iter().collect();
    }
    unknown
        .into_iter()
        .map(|name| TemplateProblem::UnknownVariable { name })
        .collect()
}

/// `DAYS_AGO_7` → 7.
pub fn days_ago_n(name: &str) -> Option<i64> {
    name.strip_prefix("DAYS_AGO_")?.parse().ok()
}

/// Everything a request template can see for one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The run's clock, in the source time zone.
    pub now: NaiveDateTime,
    pub window_start: Option<NaiveDateTime>,
    pub window_end: Option<NaiveDateTime>,
    pub page: Option<i64>,
    pub page_size: Option<u32>,
    pub offset: Option<i64>,
    pub cursor: Option<String>,
    /// Environment variables visible as `env.NAME`.
    pub env: std::collections::BTreeMap<String, String>,
    /// The source connection's declared secrets, visible as `secrets.NAME`
    /// (`config::Connection::declared_secrets`).
    pub secrets: std::collections::BTreeMap<String, String>,
}

fn fmt_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl RequestContext {
    fn to_value(&self, days_ago: &[i64], tz: Tz) -> Value {
        Value::from(self.to_map(days_ago, tz))
    }

    fn to_map(&self, days_ago: &[i64], tz: Tz) -> std::collections::BTreeMap<String, Value> {
        let mut map = std::collections::BTreeMap::<String, Value>::new();
        let start = self.window_start.unwrap_or(self.now);
        let end = self.window_end.unwrap_or(self.now);
        map.insert("LAST_SYNC_TIME".into(), Value::from(fmt_time(start)));
        map.insert("CURRENT_TIME".into(), Value::from(fmt_time(end)));
        let window = std::collections::BTreeMap::from([
            ("start", Value::from(fmt_time(start))),
            ("end", Value::from(fmt_time(end))),
        ]);
        map.insert("window".into(), Value::from(window));
        map.insert("page".into(), Value::from(self.page.unwrap_or(1)));
        map.insert(
            "page_size".into(),
            self.page_size.map_or(Value::from(()), Value::from),
        );
        map.insert("offset".into(), Value::from(self.offset.unwrap_or(0)));
        map.insert(
            "cursor".into(),
            self.cursor.clone().map_or(Value::from(()), Value::from),
        );
        map.insert("env".into(), Value::from(self.env.clone()));
        map.insert("secrets".into(), Value::from(self.secrets.clone()));
        for n in days_ago {
            // Calendar days: the same wall-clock time n days back, or the end of the gap
            // when that time was skipped.
            let t = time::existing(self.now - ChronoDuration::days(*n), tz);
            map.insert(format!("DAYS_AGO_{n}"), Value::from(fmt_time(t)));
        }
        map
    }
}

/// A request template that does not compile or render: minijinja's kind and detail
/// (`invalid operation: `soon` is not a time ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
}

/// Renders request templates for one run.
pub struct Renderer {
    env: Environment<'static>,
    tz: Tz,
}

impl Renderer {
    pub fn new(tz: Tz) -> Renderer {
        Renderer {
            env: environment(tz),
            tz,
        }
    }

    /// Renders one template against `ctx`.
    ///
    /// Errors: a template that does not compile, or a filter that fails on its value.
    pub fn render(&self, source: &str, ctx: &RequestContext) -> Result<String, TemplateError> {
        let template = self
            .env
            .template_from_str(source)
            .map_err(|e| TemplateError {
                message: e.to_string(),
            })?;
        let days: Vec<i64> = template
            .undeclared_variables(false)
            .iter()
            .filter_map(|name| days_ago_n(name))
            .collect();
        template.render(ctx.to_value(&days, self.tz)).map_err(|e| {
            // An unset `env.NAME` is the usual cause of an undefined value: name it.
            let unset: Vec<String> = template
                .undeclared_variables(true)
                .into_iter()
                .filter_map(|v| v.strip_prefix("env.").map(str::to_owned))
                .filter(|name| !ctx.env.contains_key(name))
                .collect();
            let message = match e.detail() {
                Some(detail) => format!("{}: {detail}", e.kind()),
                None => e.to_string(),
            };
            TemplateError {
                message: if e.kind() == ErrorKind::UndefinedError && !unset.is_empty() {
                    format!(
                        "the environment variable{} `{}` {} not set ({message})",
                        if unset.len() == 1 { "" } else { "s" },
                        unset.join("`, `"),
                        if unset.len() == 1 { "is" } else { "are" },
                    )
                } else {
                    message
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        let t = |s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        RequestContext {
            now: t("2024-03-10 12:00:00"),
            window_start: Some(t("2024-03-01 00:00:00")),
            window_end: Some(t("2024-03-08 00:00:00")),
            page: Some(2),
            page_size: Some(50),
            offset: None,
            cursor: None,
            env: Default::default(),
            secrets: Default::default(),
        }
    }

    #[test]
    fn filters_render_in_source_time_zone() {
        let r = Renderer::new(chrono_tz::Asia::Shanghai);
        let c = ctx();
        assert_eq!(
            r.render("{{ LAST_SYNC_TIME | datetime }}", &c).unwrap(),
            "2024-03-01 00:00:00"
        );
        assert_eq!(
            r.render("{{ window.end | date }}", &c).unwrap(),
            "2024-03-08"
        );
        // 2024-03-01 00:00 in Shanghai is 2024-02-29 16:00 UTC.
        assert_eq!(
            r.render("{{ window.start | timestamp }}", &c).unwrap(),
            "1709222400"
        );
        assert_eq!(
            r.render("{{ window.start | millis }}", &c).unwrap(),
            "1709222400000"
        );
        assert_eq!(
            r.render("{{ DAYS_AGO_1 | datetime }}", &c).unwrap(),
            "2024-03-09 12:00:00"
        );
        assert_eq!(
            r.render("{{ CURRENT_TIME | datetime('%Y%m%d') }}", &c)
                .unwrap(),
            "20240308"
        );
        assert_eq!(r.render("{{ page }}/{{ page_size }}", &c).unwrap(), "2/50");
        assert_eq!(
            r.render("{{ window.start | utc }}", &c).unwrap(),
            "2024-02-29 16:00:00"
        );
    }

    #[test]
    fn validate_reports_unknown_variables_and_syntax() {
        assert!(validate(
            "{{ window.start | datetime }}",
            VARIABLES,
            true,
            World::Request
        )
        .is_empty());
        assert!(validate("{{ DAYS_AGO_3 }}", VARIABLES, true, World::Request).is_empty());
        assert_eq!(
            validate("{{ LAST_SYNC }}", VARIABLES, true, World::Request),
            vec![TemplateProblem::UnknownVariable {
                name: "LAST_SYNC".into()
            }]
        );
        assert!(matches!(
            validate("{{ window.start | ", VARIABLES, true, World::Request).as_slice(),
            [TemplateProblem::Syntax { .. }]
        ));
    }

    #[test]
    fn validate_renders_once_to_find_unknown_filters_and_attributes() {
        let problem = |text: &str| validate(text, VARIABLES, true, World::Request);
        assert!(problem("{{ window.start | datetime('%Y%m%d') }}").is_empty());
        assert!(problem("{{ env.SHOP | datetime }} {{ cursor }}").is_empty());
        let text = "{{ window.strat | datetime }}";
        assert_eq!(
            problem(text),
            vec![TemplateProblem::Render {
                message: "`window` has no attribute `strat` (it has `start` and `end`)".into(),
                range: Some(3..15),
                name: Some("strat".into()),
                candidates: vec!["start", "end"],
            }]
        );
        let text = "{{ window.end | datetim }}";
        let found = problem(text);
        let [TemplateProblem::Render {
            message,
            range,
            name,
            ..
        }] = found.as_slice()
        else {
            panic!("one render problem");
        };
        assert_eq!(message, "unknown filter `datetim`");
        assert_eq!(name.as_deref(), Some("datetim"));
        assert_eq!(range.clone().map(|r| &text[r]), Some("datetim"));
        // A format chrono cannot write is an error, not a panic.
        let bad = problem("{{ window.end | datetime('%Q') }}");
        assert!(
            matches!(bad.as_slice(), [TemplateProblem::Render { message, .. }] if message.contains("not a time format")),
            "{bad:?}"
        );
        // The SQL head world has no qsync filters, as the sink renders it.
        assert!(validate(
            "{{ table }} ({{ columns }})",
            SQL_VARIABLES,
            false,
            World::Sql
        )
        .is_empty());
        assert!(!validate("{{ table | datetime }}", SQL_VARIABLES, false, World::Sql).is_empty());
    }

    #[test]
    fn bad_time_is_an_error_not_a_panic() {
        let r = Renderer::new(chrono_tz::Asia::Shanghai);
        let err = r.render("{{ 'soon' | datetime }}", &ctx()).unwrap_err();
        assert!(err.message.contains("is not a time"), "{err}");
    }
}
