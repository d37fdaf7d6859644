//! `qsync plan`: what a run would do, rendered as text, without writing anything or
//! calling any API. A consumer of the plan, beside `exec`; it uses the same pure pieces
//! (`source` windows and requests, `connectors` signing, `transform`, `sink` SQL).

use std::fmt::Write as _;

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use crate::config::{LoadedProfile, ProfileError};
use crate::connectors::{self, ConnectorError, PreparedRequest, Token};
use crate::plan::{human, PaginationPlan, Plan};
use crate::source::{self, PageState, RangeInputs, RenderError};
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

/// The dry run's text, and what in it failed (a request template that does not render, a
/// range that cannot be resolved, a table that cannot be built): `qsync plan` exits 1 when
/// `failures` is not empty, since a run would fail at the same place.
#[derive(Debug, Clone)]
pub struct Explained {
    pub text: String,
    pub failures: Vec<String>,
}

/// Renders the whole dry run.
pub fn explain(plan: &Plan, inputs: &DryRunInputs<'_>) -> Explained {
    let tz = inputs
        .profile
        .map_or(chrono_tz::Asia::Shanghai, LoadedProfile::timezone);
    let now = inputs
        .at
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).naive_local());
    let mut out = String::new();
    let mut failures = Vec::new();
    let _ = writeln!(out, "plan `{}` — {}", plan.name, plan.title);
    section_source(&mut out, plan);
    let windows = section_windows(&mut out, plan, inputs, now, tz);
    let first = windows.first().copied();
    section_request(&mut out, plan, inputs, now, tz, first, &mut failures);
    section_pagination(&mut out, &plan.source.pagination);
    section_transforms(&mut out, plan);
    section_rows(&mut out, plan, inputs, now, tz, &mut failures);
    section_sql(&mut out, plan, &mut failures);
    section_schedule(&mut out, plan);
    let secrets = inputs.profile.map_or_else(
        || crate::config::env_secrets(std::env::vars()),
        LoadedProfile::secrets,
    );
    let masker = crate::config::Masker::new(&secrets);
    Explained {
        text: masker.mask(&out),
        failures: failures.iter().map(|f| masker.mask(f)).collect(),
    }
}

/// Writes a failure into the text where it happened and notes it for the exit code.
fn fail(out: &mut String, failures: &mut Vec<String>, message: String) {
    let _ = writeln!(out, "  error: {message}");
    failures.push(message);
}

/// Why `qsync plan --live` could not fetch the first page.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A request parameter's template failed.
    #[error(transparent)]
    Request(#[from] RenderError),
    /// The source connection is missing from the profile.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The connection's settings do not fit its vendor.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The call failed (vendor error, retries exhausted); secrets masked.
    #[error("{masked}")]
    Fetch { masked: String },
}

/// `qsync plan --live`: fetches the first page of the first window for real (rate limits
/// and retries apply) and returns the decoded payload, to be shown as the sample.
pub async fn fetch_live_page(
    plan: &Plan,
    profile: &LoadedProfile,
    inputs: &DryRunInputs<'_>,
) -> Result<serde_json::Value, LiveError> {
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
            tz,
        )
        .ok()?;
        source::split(start, end, w.max_span, tz).first().copied()
    });
    let call = first_call(
        plan,
        profile.profile.connections.get(&plan.source.connection),
        now,
        tz,
        window,
    )?;
    let connection = profile.connection(&plan.source.connection)?;
    let connector = connectors::build(plan.source.kind, &plan.source.connection, connection)?;
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
            max_response_bytes: connection
                .max_response_bytes()
                .unwrap_or(crate::config::DEFAULT_MAX_RESPONSE_MB << 20),
        },
    )
    .map_err(|e| LiveError::Fetch {
        masked: crate::config::mask(&e.to_string(), &profile.secrets()),
    })?;
    let site = source::Site {
        spec: plan.name.clone(),
        window: window.map_or_else(|| "(no window)".to_owned(), |w| w.to_string()),
        page: "page 1".to_owned(),
    };
    http.call(&call, &site).await.map_err(|e| LiveError::Fetch {
        masked: http.mask(&e.to_string()),
    })
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
    let _ = writeln!(out, "  records at `{}`", s.records.label());
    if let Some(id) = &s.id {
        let by = s
            .modified
            .as_ref()
            .map(|m| format!(", latest `{}` wins", m.label()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  id `{}`: duplicates within a window removed{by}",
            id.label()
        );
    }
    if let Some(total) = &s.total {
        let _ = writeln!(
            out,
            "  completeness: records fetched must equal `{}`",
            total.label()
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
        human(s.retry.base),
        human(s.retry.max),
        human(s.timeout),
    );
}

fn section_windows(
    out: &mut String,
    plan: &Plan,
    inputs: &DryRunInputs<'_>,
    now: NaiveDateTime,
    tz: Tz,
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
        human(window.max_span),
        human(window.lag),
        human(window.overlap)
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
        tz,
    );
    let from = match (inputs.remedy, inputs.since, inputs.last_sync) {
        (true, _, _) => "remedy lookback".to_owned(),
        (_, Some(_), _) => "--since".to_owned(),
        (_, _, Some(mark)) => format!("last sync {} minus overlap", fmt_time(mark)),
        _ => "the window's initial time".to_owned(),
    };
    match range {
        Ok((start, end)) => {
            let windows = source::split(start, end, window.max_span, tz);
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
        // No start or an empty range: a run would do nothing, which is not a failure.
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
    failures: &mut Vec<String>,
) {
    let _ = writeln!(out, "\nfirst request");
    let connection = inputs
        .profile
        .and_then(|p| p.profile.connections.get(&plan.source.connection));
    let call = match first_call(plan, connection, now, tz, window) {
        Ok(call) => call,
        Err(e) => {
            fail(out, failures, e.to_string());
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
            fail(out, failures, e.to_string());
            return;
        }
    };
    let utc = crate::plan::time::instant(now, tz);
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
            let masked = crate::config::mask(&text, &connector.secrets());
            out.push_str(&masked);
        }
        Err(e) => fail(out, failures, e.to_string()),
    }
}

/// The call of the first page of `window` (the first window a run would read), rendered
/// at `now`: what the dry run prints and what `--live` sends.
fn first_call(
    plan: &Plan,
    connection: Option<&crate::config::Connection>,
    now: NaiveDateTime,
    tz: Tz,
    window: Option<source::Window>,
) -> Result<connectors::ApiCall, RenderError> {
    let page = PageState::first(&plan.source.pagination);
    let ctx = RequestContext {
        now,
        window_start: window.map(|w| w.start),
        window_end: window.map(|w| w.end),
        page: page.page,
        page_size: plan.source.pagination.page_size(),
        offset: page.offset,
        cursor: None,
        env: std::env::vars().collect(),
        secrets: connection
            .map(crate::config::Connection::declared_secrets)
            .unwrap_or_default(),
    };
    source::build_call(&plan.source, &Renderer::new(tz), &ctx, &page)
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

fn section_pagination(out: &mut String, p: &PaginationPlan) {
    let _ = writeln!(out, "\npagination");
    let _ = writeln!(out, "  {p}");
    let _ = writeln!(
        out,
        "  guarded: a page repeating the previous one, or paging past the reported count, fails the window"
    );
}

fn section_transforms(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "\ntransforms");
    if plan.transforms.is_empty() {
        let _ = writeln!(out, "  none: one row per record");
    }
    for step in &plan.transforms {
        let _ = writeln!(out, "  {step}");
    }
    let _ = writeln!(out, "\ncolumns");
    for c in &plan.columns {
        let _ = writeln!(out, "  {:<24} {:<14} {}", c.name, c.ty.to_string(), c.expr);
    }
}

fn section_rows(
    out: &mut String,
    plan: &Plan,
    inputs: &DryRunInputs<'_>,
    now: NaiveDateTime,
    tz: Tz,
    failures: &mut Vec<String>,
) {
    let Some(sample) = inputs.sample else {
        let _ = writeln!(
            out,
            "\nrows\n  no sample: pass `--sample <response.json>`, put a vendor response at \
             `samples/{}.json` beside the spec, or fetch the first page with `--live`",
            plan.name
        );
        return;
    };
    // A sample file is a whole answer: the connector unwraps it, or it is the vendor's error
    // (the live first page arrives unwrapped).
    let decoded;
    let sample = if inputs.live {
        sample
    } else {
        let connection = inputs
            .profile
            .and_then(|p| p.profile.connections.get(&plan.source.connection))
            .map(|entry| (plan.source.connection.as_str(), entry));
        match connectors::decode_sample(plan.source.kind, connection, sample) {
            Ok(value) => {
                decoded = value;
                &decoded
            }
            Err((code, message)) => {
                let _ = writeln!(
                    out,
                    "\nrows from the sample\n  the sample is an error answer of {}: code \
                     {code}: {message}",
                    plan.source.kind.keyword()
                );
                return;
            }
        }
    };
    let records = crate::check::sample_records(sample, &plan.source.records);
    let clock = RunClock {
        now: crate::plan::time::instant(now, tz),
        tz,
    };
    let transformer = match Transformer::new(&plan.transforms, &plan.columns, clock) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "\nrows from the sample");
            fail(out, failures, e.to_string());
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

fn section_sql(out: &mut String, plan: &Plan, failures: &mut Vec<String>) {
    let _ = writeln!(out, "\nsql");
    let table = match crate::sink::TableSpec::new(&plan.target, &plan.columns) {
        Ok(t) => t,
        Err(e) => {
            fail(out, failures, e.to_string());
            return;
        }
    };
    let indent = |out: &mut String, text: &str| {
        for line in text.lines() {
            let _ = writeln!(out, "  {line}");
        }
    };
    if plan.target.create {
        let _ = writeln!(
            out,
            "  -- when the table is missing (text keys compare byte for byte: {} on MariaDB, \
             utf8mb4_0900_bin on MySQL 8)",
            crate::sink::BINARY_KEY_COLLATION
        );
        indent(
            out,
            &crate::sink::create_table_sql(&table, crate::sink::BINARY_KEY_COLLATION),
        );
    }
    // What the run really executes: `LOAD DATA` (into the staging copy and a merge, for
    // upserts) when the server allows local infile, else bound multi-row statements.
    let statement = match crate::sink::statement_sql(&table, 1) {
        Ok(sql) => format!("{sql}, ... (one tuple per row, values bound)"),
        Err(e) => {
            failures.push(e.to_string());
            format!("error: {e}")
        }
    };
    match crate::sink::load_statements(&table) {
        Some(load) => {
            let _ = writeln!(
                out,
                "  -- each batch of up to {} rows, streamed through LOAD DATA LOCAL INFILE{}",
                plan.target.batch,
                if load.len() > 1 {
                    " into a temporary copy of the table, then merged"
                } else {
                    ""
                }
            );
            for sql in &load {
                indent(out, sql);
            }
            let _ = writeln!(
                out,
                "  -- or, when the server refuses local infile, in statements of up to 1000 rows"
            );
            indent(out, &statement);
        }
        None => {
            let _ = writeln!(
                out,
                "  -- each batch of up to {} rows, in statements of up to 1000 rows",
                plan.target.batch
            );
            indent(out, &statement);
        }
    }
    let _ = writeln!(
        out,
        "  -- in the same transaction as each window's last batch"
    );
    indent(out, crate::sink::CURSOR_SQL);
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
            human(r.lookback)
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
        _ => human(per),
    }
}

fn fmt_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
