//! `qsync plan`: what a run would do, rendered as text, without writing anything or
//! calling any API. A consumer of the plan, beside `exec`; it uses the same pure pieces
//! (`source` windows and requests, `connectors` signing, `transform`, `sink` SQL).

use std::fmt::Write as _;

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::config::LoadedProfile;
use crate::connectors::{self, PreparedRequest, Token};
use crate::plan::{ColumnPlan, EndRule, Expr, PaginationPlan, Piece, Plan, TransformStep};
use crate::source::{self, PageState, RangeInputs};
use crate::template::{Renderer, RequestContext};
use crate::transform::{RunClock, Transformer};

/// What the dry run is told.
#[derive(Debug, Clone, Default)]
pub struct DryRunInputs<'a> {
    /// The run's clock (source time zone); `now` when absent.
    pub at: Option<NaiveDateTime>,
    /// The stored or stated high-water mark.
    pub last_sync: Option<NaiveDateTime>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    pub remedy: bool,
    pub profile: Option<&'a LoadedProfile>,
    pub sample: Option<&'a serde_json::Value>,
    /// Rows of the sample to show at most.
    pub max_rows: usize,
    /// The sample is the live first page (`--live`), not a file.
    pub live: bool,
}

/// Renders the whole dry run.
pub fn explain(plan: &Plan, inputs: &DryRunInputs<'_>) -> String {
    let tz = inputs
        .profile
        .map_or(chrono_tz::Asia::Shanghai, LoadedProfile::timezone);
    let now = inputs
        .at
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).naive_local());
    let mut out = String::new();
    let _ = writeln!(out, "plan `{}` — {}", plan.name, plan.title);
    section_source(&mut out, plan);
    let windows = section_windows(&mut out, plan, inputs, now, tz);
    section_request(&mut out, plan, inputs, now, tz, windows.first().copied());
    section_pagination(&mut out, &plan.source.pagination);
    section_transforms(&mut out, plan);
    section_rows(&mut out, plan, inputs, now, tz);
    section_sql(&mut out, plan);
    section_schedule(&mut out, plan);
    let secrets = inputs
        .profile
        .map(LoadedProfile::secrets)
        .unwrap_or_default();
    connectors::mask(&out, &secrets)
}

/// `qsync plan --live`: fetches the first page of the first window for real (rate limits
/// and retries apply) and returns the decoded payload, to be shown as the sample.
pub async fn fetch_live_page(
    plan: &Plan,
    profile: &LoadedProfile,
    inputs: &DryRunInputs<'_>,
) -> Result<serde_json::Value, String> {
    let tz = profile.timezone();
    let now = inputs
        .at
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).naive_local());
    let window = plan.source.window.as_ref().and_then(|w| {
        let (start, end) = source::resolve_range(
            w,
            &RangeInputs {
                now: Some(now),
                last_sync: inputs.last_sync,
                since: inputs.since,
                until: inputs.until,
                full: false,
                remedy: None,
            },
        )
        .ok()?;
        source::split(start, end, w.max_span).first().copied()
    });
    let page = PageState::first(&plan.source.pagination);
    let ctx = RequestContext {
        now,
        window_start: window.map(|w| w.start),
        window_end: window.map(|w| w.end),
        page: page.page,
        page_size: page_size(&plan.source.pagination),
        offset: page.offset,
        cursor: None,
        env: std::env::vars().collect(),
    };
    let call = source::build_call(&plan.source, &Renderer::new(tz), &ctx, &page)
        .map_err(|e| e.to_string())?;
    let connection = profile
        .connection(&plan.source.connection)
        .map_err(|e| e.to_string())?;
    let connector = connectors::build(plan.source.kind, &plan.source.connection, connection)
        .map_err(|e| e.to_string())?;
    let limiter = std::sync::Arc::new(source::RateLimiter::new(
        &plan.source.rates,
        plan.source.rate_by_send,
    ));
    let http = source::HttpSource::new(
        connector,
        limiter,
        source::SourceOptions {
            spec: plan.name.clone(),
            connection: plan.source.connection.clone(),
            timeout: plan.source.timeout,
            retry: plan.source.retry.clone(),
            secrets: profile.secrets(),
        },
    )
    .map_err(|e| e.to_string())?;
    let site = source::Site {
        spec: plan.name.clone(),
        window: window.map_or_else(|| "(no window)".to_owned(), |w| w.to_string()),
        page: "page 1".to_owned(),
    };
    http.call(&call, &site)
        .await
        .map_err(|e| http.mask(&e.to_string()))
}

fn section_source(out: &mut String, plan: &Plan) {
    let s = &plan.source;
    let _ = writeln!(out, "\nsource");
    let _ = writeln!(
        out,
        "  {} {} {} (connection `{}`)",
        s.kind.keyword(),
        s.http_method.as_str(),
        s.endpoint,
        s.connection
    );
    let _ = writeln!(out, "  records at `{}`", path_text(&s.records));
    if let Some(id) = &s.id {
        let by = s
            .modified
            .as_ref()
            .map(|m| format!(", latest `{}` wins", path_text(m)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  id `{}`: duplicates within a window removed{by}",
            path_text(id)
        );
    }
    if let Some(total) = &s.total {
        let _ = writeln!(
            out,
            "  completeness: records fetched must equal `{}`",
            path_text(total)
        );
    }
    let rates: Vec<String> = s
        .rates
        .iter()
        .map(|r| format!("{}/{}", r.requests, per_unit(r.per)))
        .collect();
    let _ = writeln!(
        out,
        "  rate {}; {} attempts per request, backoff {}..{}; timeout {}",
        if rates.is_empty() {
            "unlimited".to_owned()
        } else {
            let spacing = if s.rate_by_send { "send" } else { "answer" };
            format!("{} (spaced by {spacing})", rates.join(" and "))
        },
        s.retry.attempts,
        crate::check::human_duration(s.retry.base),
        crate::check::human_duration(s.retry.max),
        crate::check::human_duration(s.timeout),
    );
}

fn section_windows(
    out: &mut String,
    plan: &Plan,
    inputs: &DryRunInputs<'_>,
    now: NaiveDateTime,
    _tz: Tz,
) -> Vec<source::Window> {
    let _ = writeln!(out, "\nwindows (run at {})", fmt_time(now));
    let Some(window) = &plan.source.window else {
        let _ = writeln!(
            out,
            "  none: every run reads everything the request returns"
        );
        return Vec::new();
    };
    let _ = writeln!(
        out,
        "  at most {} each, lag {}, overlap {}",
        crate::check::human_duration(window.max_span),
        crate::check::human_duration(window.lag),
        crate::check::human_duration(window.overlap)
    );
    let range = source::resolve_range(
        window,
        &RangeInputs {
            now: Some(now),
            last_sync: inputs.last_sync,
            since: inputs.since,
            until: inputs.until,
            full: false,
            remedy: if inputs.remedy {
                plan.remedy.as_ref().map(|r| r.lookback)
            } else {
                None
            },
        },
    );
    let from = match (inputs.remedy, inputs.since, inputs.last_sync) {
        (true, _, _) => "remedy lookback".to_owned(),
        (_, Some(_), _) => "--since".to_owned(),
        (_, _, Some(mark)) => format!("last sync {} minus overlap", fmt_time(mark)),
        _ => "the window's initial time".to_owned(),
    };
    match range {
        Ok((start, end)) => {
            let windows = source::split(start, end, window.max_span);
            let _ = writeln!(
                out,
                "  range {} .. {} (from {from}): {} window(s)",
                fmt_time(start),
                fmt_time(end),
                windows.len()
            );
            let shown = 5;
            for (i, w) in windows.iter().enumerate().take(shown) {
                let _ = writeln!(out, "  {:>3}  {w}", i + 1);
            }
            if windows.len() > shown {
                let _ = writeln!(out, "  ...  {} more", windows.len() - shown);
            }
            windows
        }
        Err(e) => {
            let _ = writeln!(out, "  {e}");
            Vec::new()
        }
    }
}

fn section_request(
    out: &mut String,
    plan: &Plan,
    inputs: &DryRunInputs<'_>,
    now: NaiveDateTime,
    tz: Tz,
    window: Option<source::Window>,
) {
    let _ = writeln!(out, "\nfirst request");
    let page = PageState::first(&plan.source.pagination);
    let ctx = RequestContext {
        now,
        window_start: window.map(|w| w.start),
        window_end: window.map(|w| w.end),
        page: page.page,
        page_size: page_size(&plan.source.pagination),
        offset: page.offset,
        cursor: None,
        env: std::env::vars().collect(),
    };
    let call = match source::build_call(&plan.source, &Renderer::new(tz), &ctx, &page) {
        Ok(call) => call,
        Err(e) => {
            let _ = writeln!(out, "  {e}");
            return;
        }
    };
    let connection = inputs
        .profile
        .and_then(|p| p.profile.connections.get(&plan.source.connection));
    let Some(connection) = connection else {
        let _ = writeln!(
            out,
            "  (no profile entry `{}`: shown unsigned)",
            plan.source.connection
        );
        let _ = writeln!(out, "  {} {}", call.http_method.as_str(), call.endpoint);
        let body = serde_json::Value::Object(call.params.clone());
        let _ = writeln!(out, "  params {}", body);
        return;
    };
    let connector = match connectors::build(plan.source.kind, &plan.source.connection, connection) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "  {e}");
            return;
        }
    };
    let utc = tz
        .from_local_datetime(&now)
        .earliest()
        .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
    // A token the vendor would issue at run time; the dry run never asks for one.
    let token = connector.profile_token(utc).or_else(|| {
        connector
            .token_request(utc, None)
            .ok()
            .flatten()
            .map(|_| Token {
                access_token: "<token fetched at run time>".to_owned(),
                refresh_token: None,
                expires_at: utc,
            })
    });
    match connector.prepare(&call, utc, token.as_ref()) {
        Ok(request) => {
            let text = request_text(&request);
            let masked = connectors::mask(&text, &connector.secrets());
            out.push_str(&masked);
        }
        Err(e) => {
            let _ = writeln!(out, "  {e}");
        }
    }
}

fn request_text(request: &PreparedRequest) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  {} {}", request.method.as_str(), request.url);
    for (name, value) in &request.headers {
        let _ = writeln!(out, "  {name}: {value}");
    }
    if let Some(body) = &request.body {
        let _ = writeln!(out, "  body: {body}");
    }
    out
}

fn page_size(p: &PaginationPlan) -> Option<u32> {
    match p {
        PaginationPlan::Page { size, .. }
        | PaginationPlan::Offset { size, .. }
        | PaginationPlan::Keyset { size, .. } => Some(*size),
        PaginationPlan::Cursor { size, .. } => *size,
        PaginationPlan::None => None,
    }
}

fn section_pagination(out: &mut String, p: &PaginationPlan) {
    let _ = writeln!(out, "\npagination");
    let line = match p {
        PaginationPlan::None => "one request per window, no paging".to_owned(),
        PaginationPlan::Page {
            param,
            size_param,
            size,
            first,
            until,
        } => format!(
            "`{}` = {first}, {}, ... with `{}` = {size}; stop {}",
            path_text(param),
            first + 1,
            path_text(size_param),
            end_text(until)
        ),
        PaginationPlan::Offset {
            param,
            size_param,
            size,
            until,
        } => format!(
            "`{}` = 0, {size}, {}, ... with `{}` = {size}; stop {}",
            path_text(param),
            size * 2,
            path_text(size_param),
            end_text(until)
        ),
        PaginationPlan::Cursor { param, from, .. } => format!(
            "`{}` = the previous page's `{}`; stop when it is missing or the page is empty",
            path_text(param),
            path_text(from)
        ),
        PaginationPlan::Keyset {
            param,
            field,
            size_param,
            size,
        } => format!(
            "`{}` = the largest `{}` of the previous page, `{}` = {size}; stop on an empty page",
            path_text(param),
            path_text(field),
            path_text(size_param)
        ),
    };
    let _ = writeln!(out, "  {line}");
    let _ = writeln!(
        out,
        "  guarded: a page repeating the previous one, or paging past the reported count, fails the window"
    );
}

fn end_text(rule: &EndRule) -> String {
    match rule {
        EndRule::ShortPage => "at a page shorter than the page size".to_owned(),
        EndRule::EmptyPage => "at an empty page".to_owned(),
        EndRule::HasNext(p) => format!("when `{}` is false", path_text(p)),
        EndRule::PageCount(p) => format!("after `{}` pages", path_text(p)),
        EndRule::Total(p) => format!("once `{}` records are read", path_text(p)),
    }
}

fn section_transforms(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "\ntransforms");
    if plan.transforms.is_empty() {
        let _ = writeln!(out, "  none: one row per record");
    }
    for step in &plan.transforms {
        let line = match step {
            TransformStep::Flatten { path, prefix } => format!(
                "@flatten {}: one row per element, element fields as `{prefix}_<field>`",
                path_text(path)
            ),
            TransformStep::Rename { from, to, convert } => format!(
                "@rename {} -> {to}{}",
                path_text(from),
                convert.map(|t| format!(" : {t}")).unwrap_or_default()
            ),
            TransformStep::Split { field, separator } => {
                format!("@split {} by {separator:?}", path_text(field))
            }
            TransformStep::Filter { field, op, value } => {
                format!("@filter {} {op:?} {value}", path_text(field))
            }
        };
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "\ncolumns");
    for c in &plan.columns {
        let _ = writeln!(
            out,
            "  {:<24} {:<14} {}",
            c.name,
            c.ty.to_string(),
            expr_text(&c.expr)
        );
    }
}

fn section_rows(
    out: &mut String,
    plan: &Plan,
    inputs: &DryRunInputs<'_>,
    now: NaiveDateTime,
    tz: Tz,
) {
    let Some(sample) = inputs.sample else {
        return;
    };
    let records = crate::check::sample_records(sample, &plan.source.records);
    let clock = RunClock {
        now: tz
            .from_local_datetime(&now)
            .earliest()
            .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc)),
        tz,
    };
    let transformer = match Transformer::new(&plan.transforms, &plan.columns, clock) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "\nrows from the sample\n  {e}");
            return;
        }
    };
    let mut rows = Vec::new();
    let mut rejects = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if let Err(e) = transformer.rows(record, &mut rows) {
            rejects.push(format!("record {}: {e}", i + 1));
        }
    }
    let names: Vec<&str> = transformer.column_names().collect();
    let _ = writeln!(
        out,
        "\nrows from the {} ({} record(s) → {} row(s), {} rejected)",
        if inputs.live {
            "live first page"
        } else {
            "sample"
        },
        records.len(),
        rows.len(),
        rejects.len()
    );
    // One block per row keeps wide tables readable in a terminal.
    for (i, row) in rows.iter().enumerate().take(inputs.max_rows.max(1)) {
        let _ = writeln!(out, "  row {}", i + 1);
        for (name, cell) in names.iter().zip(row) {
            let _ = writeln!(out, "    {name:<24} {}", cell.render());
        }
    }
    if rows.len() > inputs.max_rows.max(1) {
        let _ = writeln!(
            out,
            "  ... {} more row(s)",
            rows.len() - inputs.max_rows.max(1)
        );
    }
    for r in rejects {
        let _ = writeln!(out, "  rejected {r}");
    }
}

fn section_sql(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "\nsql");
    let table = match crate::sink::TableSpec::new(&plan.target, &plan.columns) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "  {e}");
            return;
        }
    };
    let indent = |out: &mut String, text: &str| {
        for line in text.lines() {
            let _ = writeln!(out, "  {line}");
        }
    };
    if plan.target.create {
        let _ = writeln!(out, "  -- when the table is missing");
        indent(out, &crate::sink::create_table_sql(&table));
    }
    let streamed = plan.target.sql.is_none() && plan.target.mode != crate::plan::WriteMode::Upsert;
    let _ = writeln!(
        out,
        "  -- each batch of up to {} rows{}",
        plan.target.batch,
        if streamed {
            ", streamed through LOAD DATA LOCAL INFILE when the server allows it, else"
        } else {
            ""
        }
    );
    match crate::sink::statement_sql(&table, 1) {
        Ok(sql) => indent(
            out,
            &format!("{sql}, ... (one tuple per row, values bound)"),
        ),
        Err(e) => {
            let _ = writeln!(out, "  {e}");
        }
    }
    let _ = writeln!(
        out,
        "  -- in the same transaction as each window's last batch"
    );
    let state = crate::state::cursor_statement(&plan.name, chrono::NaiveDateTime::MIN, "");
    indent(out, &state.sql);
}

fn section_schedule(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "\nschedule");
    match &plan.schedule {
        Some(s) => {
            let _ = writeln!(out, "  runs on \"{s}\"");
        }
        None => {
            let _ = writeln!(out, "  no @schedule: runs only when started");
        }
    }
    if let Some(r) = &plan.remedy {
        let _ = writeln!(
            out,
            "  remedy on \"{}\" re-reads the last {}",
            r.schedule,
            crate::check::human_duration(r.lookback)
        );
    }
}

/// `1s` → `s`, `60s` → `min`: how rates are written in specs.
fn per_unit(per: std::time::Duration) -> String {
    match per.as_secs() {
        1 => "s".to_owned(),
        60 => "min".to_owned(),
        3600 => "h".to_owned(),
        86_400 => "day".to_owned(),
        _ => crate::check::human_duration(per),
    }
}

fn path_text(path: &[String]) -> String {
    if path.is_empty() {
        "(the whole response)".to_owned()
    } else {
        path.join(".")
    }
}

fn fmt_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A map expression as the spec would write it.
pub fn expr_text(expr: &Expr) -> String {
    match expr {
        Expr::Field(p) => p.join("."),
        Expr::Interpolate(pieces) => {
            let inner: String = pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Field(f) => format!("<{}>", f.join(".")),
                })
                .collect();
            format!("{inner:?}")
        }
        Expr::Const(v) => v.to_string(),
        Expr::Sql(s) => format!("sql({s:?})"),
        Expr::Coalesce(items) => format!("coalesce({})", list(items)),
        Expr::Concat(items) => format!("concat({})", list(items)),
        Expr::DateFormat(e, f) => format!("date_format({}, {f:?})", expr_text(e)),
        Expr::Now => "now()".to_owned(),
        Expr::DaysAgo(n) => format!("days_ago({n})"),
        Expr::Case {
            subject,
            arms,
            default,
        } => {
            let mut parts: Vec<String> = arms
                .iter()
                .map(|(k, v)| format!("{k} => {}", expr_text(v)))
                .collect();
            if let Some(d) = default {
                parts.push(format!("_ => {}", expr_text(d)));
            }
            format!("case {} {{ {} }}", expr_text(subject), parts.join(", "))
        }
    }
}

fn list(items: &[Expr]) -> String {
    items.iter().map(expr_text).collect::<Vec<_>>().join(", ")
}

/// Columns as `name type` pairs, for messages.
pub fn column_list(columns: &[ColumnPlan]) -> String {
    columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.ty))
        .collect::<Vec<_>>()
        .join(", ")
}
