//! The status page: one server-rendered HTML document a person reads at a glance.
//!
//! Owns the markup: every spec with its schedule, last and next run, lag, rows, errors and a
//! small inline-SVG chart of rows per run, then the recent failures with their messages.
//! Times are shown in the profile's zone. The only script is the "run now" button. It does
//! not own the data (the daemon's views, already masked).

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::metrics::Outcome;
use super::{RunView, SpecView};

pub(super) struct PageData<'a> {
    pub(super) instance: &'a str,
    pub(super) folder: &'a str,
    pub(super) zone: Tz,
    pub(super) now: DateTime<Utc>,
    pub(super) started_at: DateTime<Utc>,
    pub(super) specs: &'a [SpecView],
    /// Newest first, per spec.
    pub(super) history: &'a HashMap<String, Vec<RunView>>,
    /// Newest first, across specs.
    pub(super) failures: &'a [RunView],
    /// The per-process token the "Run now" button sends (`http::RUN_TOKEN_HEADER`).
    pub(super) run_token: &'a str,
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(zone: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `3m 20s ago`, `in 2h 5m`.
fn relative(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds();
    let text = span(seconds.unsigned_abs());
    if seconds >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

fn span(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn outcome_class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "ok",
        Outcome::Partial => "warn",
        Outcome::Failed => "bad",
        Outcome::Stopped => "muted",
    }
}

/// Bars of rows written per run, oldest left; failed runs are red stubs.
fn chart(runs: &[RunView]) -> String {
    if runs.is_empty() {
        return "<span class=\"muted\">no runs yet</span>".to_owned();
    }
    let (width, height, bar) = (150.0_f64, 32.0_f64, 5.0_f64);
    let max = runs
        .iter()
        .map(|r| r.report.rows_written)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} \
         {height}\" role=\"img\"><title>rows written per run (last {})</title>",
        runs.len()
    );
    for (i, run) in runs.iter().rev().enumerate() {
        let rows = run.report.rows_written as f64;
        let h = if run.outcome == Outcome::Failed {
            height
        } else {
            (rows / max * (height - 2.0)).max(1.0)
        };
        let x = i as f64 * bar;
        let class = outcome_class(run.outcome);
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{h}\"><title>{} \
             {}: {} rows</title></rect>",
            height - h,
            bar - 1.0,
            esc(&run.started_at.to_rfc3339()),
            run.outcome.as_str(),
            run.report.rows_written
        );
    }
    svg.push_str("</svg>");
    svg
}

pub(super) fn render(data: &PageData<'_>) -> String {
    let mut html = String::new();
    let broken = data.specs.iter().filter(|s| s.error.is_some()).count();
    let failing = data
        .specs
        .iter()
        .filter(|s| {
            s.last_run
                .as_ref()
                .is_some_and(|r| r.outcome == Outcome::Failed)
        })
        .count();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"30\">\
         <meta name=\"qsync-run-token\" content=\"{run_token}\">\
         <title>qsync serve — {instance}</title><style>{STYLE}</style></head><body>\
         <header><h1>qsync serve</h1><p>instance <b>{instance}</b> · folder <code>{folder}</code> \
         · up since {up} · times in {zone} · now {now}</p>\
         <p class=\"summary\">{n} specs · <span class=\"{fail_class}\">{failing} failing</span> · \
         <span class=\"{broken_class}\">{broken} broken</span></p></header>",
        instance = esc(data.instance),
        run_token = esc(data.run_token),
        folder = esc(data.folder),
        up = time(data.zone, data.started_at),
        zone = data.zone.name(),
        now = time(data.zone, data.now),
        n = data.specs.len(),
        fail_class = if failing > 0 { "bad" } else { "ok" },
        broken_class = if broken > 0 { "bad" } else { "ok" },
    );
    html.push_str(
        "<table id=\"specs\"><thead><tr><th>Spec</th><th>Status</th><th>Schedule</th>\
         <th>Last run</th><th>Next run</th><th>Lag</th><th>Rows</th><th>Errors</th>\
         <th>Rows per run</th><th></th></tr></thead><tbody>",
    );
    for spec in data.specs {
        let name = esc(&spec.name);
        let status_class = match spec.status {
            "idle" => "ok",
            "running" => "run",
            _ => "bad",
        };
        let schedule = match (&spec.schedule, &spec.remedy_schedule) {
            (Some(s), Some(r)) => format!(
                "<code>{}</code><br><small>remedy <code>{}</code></small>",
                esc(s),
                esc(r)
            ),
            (Some(s), None) => format!("<code>{}</code>", esc(s)),
            (None, Some(r)) => format!("<small>remedy <code>{}</code></small>", esc(r)),
            (None, None) => "<span class=\"muted\">manual only</span>".to_owned(),
        };
        let last = match &spec.last_run {
            Some(run) => format!(
                "<span class=\"{} outcome\">{}</span> {}<br><small>{} · {:.1}s · {} records</small>",
                outcome_class(run.outcome),
                run.outcome.as_str(),
                relative(data.now, run.finished_at),
                time(data.zone, run.finished_at),
                run.duration_seconds,
                run.report.records,
            ),
            None => "<span class=\"muted\">never</span>".to_owned(),
        };
        let running = match (spec.running_since, spec.running_kind) {
            (Some(since), Some(kind)) => format!(
                "<br><small class=\"run\">{} run started {}</small>",
                kind.as_str(),
                relative(data.now, since)
            ),
            _ => String::new(),
        };
        let next = spec.next_run.map_or_else(
            || "<span class=\"muted\">—</span>".to_owned(),
            |t| {
                format!(
                    "{}<br><small>{}</small>",
                    relative(data.now, t),
                    time(data.zone, t)
                )
            },
        );
        let lag = spec.lag_seconds.map_or_else(
            || "<span class=\"muted\">—</span>".to_owned(),
            |l| span(l.max(0.0) as u64),
        );
        let runs = data.history.get(&spec.name).map_or(&[][..], Vec::as_slice);
        let title = spec
            .title
            .as_deref()
            .map(|t| format!("<br><small>{}</small>", esc(t)))
            .unwrap_or_default();
        let _ = write!(
            html,
            "<tr class=\"spec\" data-spec=\"{name}\"><td><b>{name}</b>{title}</td>\
             <td><span class=\"badge {status_class}\">{status}</span>{running}</td>\
             <td>{schedule}</td><td>{last}</td><td>{next}</td><td>{lag}</td>\
             <td>{rows}</td><td class=\"{err_class}\">{failures}</td><td>{chart}</td>\
             <td><button onclick=\"runNow('{name}')\" {disabled}>Run now</button></td></tr>",
            status = spec.status,
            rows = spec.rows_written,
            err_class = if spec.failures > 0 { "bad" } else { "" },
            failures = spec.failures,
            chart = chart(runs),
            disabled = if spec.status == "invalid" {
                "disabled"
            } else {
                ""
            },
        );
        if let Some(error) = &spec.error {
            let note = if spec.status == "broken" {
                "The file on disk fails check; the last good version keeps running."
            } else {
                "The spec fails check and is not scheduled."
            };
            let _ = write!(
                html,
                "<tr class=\"detail\"><td colspan=\"10\"><b class=\"bad\">{note}</b>\
                 <pre class=\"error\">{}</pre></td></tr>",
                esc(error)
            );
        } else if let Some(run) = spec.last_run.as_ref().filter(|r| r.error.is_some()) {
            let _ = write!(
                html,
                "<tr class=\"detail\"><td colspan=\"10\"><b class=\"bad\">Last run failed:</b>\
                 <pre class=\"error\">{}</pre></td></tr>",
                esc(run.error.as_deref().unwrap_or(""))
            );
        }
    }
    html.push_str("</tbody></table><h2>Recent failures</h2>");
    if data.failures.is_empty() {
        html.push_str("<p class=\"muted\" id=\"no-failures\">No failures.</p>");
    } else {
        html.push_str(
            "<table id=\"failures\"><thead><tr><th>When</th><th>Spec</th><th>Run</th>\
             <th>Window</th><th>Error</th></tr></thead><tbody>",
        );
        for run in data.failures {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{} · {}</td><td>{}</td>\
                 <td><pre class=\"error\">{}</pre></td></tr>",
                time(data.zone, run.finished_at),
                esc(&run.spec),
                run.kind.as_str(),
                run.outcome.as_str(),
                esc(&run
                    .report
                    .range
                    .map_or_else(|| "—".to_owned(), |r| r.to_string())),
                esc(run.error.as_deref().unwrap_or(""))
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str(
        "<footer><a href=\"/metrics\">/metrics</a> · <a href=\"/api/specs\">/api/specs</a> · \
         <a href=\"/api/runs\">/api/runs</a></footer><script>\
         function runNow(spec){fetch('/api/specs/'+encodeURIComponent(spec)+'/run',\
         {method:'POST',headers:{'X-Qsync-Run-Token':document.querySelector(\
         'meta[name=qsync-run-token]').content}}).then(function(r){return r.json()}).then(function(j){\
         alert(j.error?('Not started: '+j.error):('Run of '+spec+' queued'));location.reload()})}\
         </script></body></html>",
    );
    html
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{margin:0}header p{margin:.2em 0;color:#555}.summary{font-size:15px}\
table{border-collapse:collapse;width:100%;margin-top:1em}\
th,td{border-bottom:1px solid #ddd;padding:.4em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.ok{color:#1a7f37}.warn{color:#9a6700}.bad{color:#cf222e}\
.run{color:#0969da}.muted{color:#888}.badge{padding:.1em .5em;border-radius:.8em;\
border:1px solid currentColor;font-size:12px}pre.error{white-space:pre-wrap;margin:.3em 0;\
color:#cf222e;background:#fff5f5;padding:.4em}svg.chart rect.ok{fill:#2da44e}\
svg.chart rect.warn{fill:#d4a72c}svg.chart rect.bad{fill:#cf222e}\
svg.chart rect.muted{fill:#aaa}tr.detail td{border-top:none}footer{margin-top:2em;color:#888}";
