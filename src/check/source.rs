//! The `source` block: connector, connection, window, paging; its params and templates are
//! checked in `params.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::directives::{PaginateAst, Style};
use super::{codes, vendor, CheckDiagnostic, Checker, Directives};
use crate::plan::{
    human, ConnectorKind, EndRule, FieldPath, HttpMethod, PaginationPlan, ParamPlace, ParamPlan,
    SourcePlan, WindowPlan,
};
use crate::syntax::ast::{Source, SourceStmt, WindowOpt};
use crate::syntax::{Span, Spanned};

#[derive(Debug, Clone)]
pub(crate) struct CheckedSource {
    pub plan: SourcePlan,
    /// Where the vendor total comes from: the `total` statement, else the connector's
    /// default (the source's connector name).
    pub total_span: Span,
}

impl Checker<'_> {
    pub(crate) fn check_source(
        &mut self,
        source: &Spanned<Source>,
        directives: &Directives,
    ) -> Option<CheckedSource> {
        let kind = self.check_connector_kind(&source.kind);
        let mut connection: Option<Spanned<String>> = None;
        let mut method: Option<HttpMethod> = None;
        let mut params: Vec<(ParamPlan, Span)> = Vec::new();
        let mut window_opts: Option<(&[WindowOpt], Span)> = None;
        let mut singles: BTreeMap<&str, (Span, Vec<String>)> = BTreeMap::new();
        let mut uses_window = false;
        let mut ok = true;

        for stmt in &source.statements {
            match &stmt.node {
                SourceStmt::Connection(name) => {
                    if self.first_statement(&mut singles, "connection", stmt.span, Vec::new()) {
                        connection = Some(name.clone());
                    }
                }
                SourceStmt::Method(m) => match m.node.to_ascii_uppercase().as_str() {
                    "GET" => method = Some(HttpMethod::Get),
                    "POST" => method = Some(HttpMethod::Post),
                    other => {
                        self.report(
                            CheckDiagnostic::error(
                                codes::UNKNOWN_HTTP_METHOD,
                                m.span,
                                format!("unknown HTTP method `{other}`"),
                            )
                            .label("not GET or POST")
                            .help("vendor APIs are read with `method POST` (the default) or `method GET`"),
                        );
                        ok = false;
                    }
                },
                SourceStmt::Param { place, name, value } => {
                    let place_kind = match place.node.as_str() {
                        "query" => ParamPlace::Query,
                        "header" => ParamPlace::Header,
                        _ => ParamPlace::Body,
                    };
                    let path: Vec<String> = if place_kind == ParamPlace::Header {
                        vec![name.node.clone()]
                    } else {
                        name.node.split('.').map(str::to_owned).collect()
                    };
                    if let Some((_, previous)) = params
                        .iter()
                        .find(|(p, _)| *p.path == *path && p.place == place_kind)
                    {
                        let previous = *previous;
                        self.report(
                            CheckDiagnostic::error(
                                codes::DUPLICATE_PARAM,
                                name.span,
                                format!("parameter `{}` is set twice", name.node),
                            )
                            .label("set again here")
                            .help(format!(
                                "remove one of the two; the first is on line {}",
                                self.line(previous)
                            )),
                        );
                        ok = false;
                        continue;
                    }
                    match self.check_param_value(value, &mut uses_window) {
                        Some(v) => params.push((
                            ParamPlan {
                                path: path.into(),
                                place: place_kind,
                                value: v,
                            },
                            name.span,
                        )),
                        None => ok = false,
                    }
                }
                SourceStmt::Window(opts) => {
                    if self.first_statement(&mut singles, "window", stmt.span, Vec::new()) {
                        window_opts = Some((opts, stmt.span));
                    }
                }
                SourceStmt::Records(p) => {
                    self.first_statement(&mut singles, "records", stmt.span, p.node.clone());
                }
                SourceStmt::Id(p) => {
                    self.first_statement(&mut singles, "id", stmt.span, p.node.clone());
                }
                SourceStmt::Modified(p) => {
                    self.first_statement(&mut singles, "modified", stmt.span, p.node.clone());
                }
                SourceStmt::Total(p) => {
                    self.first_statement(&mut singles, "total", stmt.span, p.node.clone());
                }
                SourceStmt::Directive(_) => {}
            }
        }

        let kind = kind?;
        let info = crate::connectors::endpoint_info(kind, &source.endpoint.node);
        let connection = self.check_connection(kind, connection, &source.kind.span);

        let window = match window_opts {
            Some((opts, span)) => {
                if !uses_window {
                    self.report(
                        CheckDiagnostic::error(
                            codes::WINDOW_UNUSED,
                            Span::new(span.start, span.start + "window".len()),
                            "the source declares a `window` but no parameter carries it",
                        )
                        .label("window not sent")
                        .help("send its bounds, e.g. param start_time = \"{{ window.start | datetime }}\" and param end_time = \"{{ window.end | datetime }}\""),
                    );
                }
                self.check_window(opts, info.max_window)
            }
            // Params that use the window imply one with default settings.
            None if uses_window => Some(default_window(info.max_window)),
            None => None,
        };

        let pagination = match &directives.paginate {
            Some(p) => self.check_pagination(p, &params, &info),
            None => Some(PaginationPlan::None),
        };

        let path_of = |key: &str, singles: &BTreeMap<&str, (Span, Vec<String>)>| {
            singles.get(key).map(|(_, p)| FieldPath::from(p.clone()))
        };
        let records = path_of("records", &singles)
            .or_else(|| info.records_path.clone())
            .unwrap_or_default();
        let total = path_of("total", &singles).or_else(|| info.total_path.clone());
        let rates = if directives.rates.is_empty() {
            info.rates
                .iter()
                .map(|(requests, per)| crate::plan::RateLimit {
                    requests: *requests,
                    per: *per,
                })
                .collect()
        } else {
            directives.rates.clone()
        };
        let plan = SourcePlan {
            kind,
            endpoint: source.endpoint.node.clone(),
            http_method: method.unwrap_or(if kind == ConnectorKind::Http {
                HttpMethod::Get
            } else {
                HttpMethod::Post
            }),
            connection: connection?,
            params: params.into_iter().map(|(p, _)| p).collect(),
            window,
            pagination: pagination?,
            rates,
            rate_by_send: directives
                .rate_by_send
                .unwrap_or_else(|| crate::connectors::spaces_rate_by_send(kind)),
            retry: directives.retry.clone().unwrap_or_default(),
            records,
            id: path_of("id", &singles),
            modified: path_of("modified", &singles),
            total,
            timeout: directives.timeout.unwrap_or(Duration::from_secs(30)),
            max_pages: directives
                .paginate
                .as_ref()
                .and_then(|p| p.max_pages)
                .unwrap_or(crate::plan::MAX_PAGES),
        };
        if let (PaginationPlan::Keyset { .. }, None, Some(p)) =
            (&plan.pagination, &plan.id, &directives.paginate)
        {
            self.report(
                CheckDiagnostic::error(
                    codes::KEYSET_NEEDS_ID,
                    p.span,
                    "keyset paging needs the record `id`",
                )
                .label("pages overlap at the keyset value")
                .help(
                    "add `id <field>` to the source: each request resends the last page's \
                     boundary value, so records come twice and are recognised by their id",
                ),
            );
            ok = false;
        }
        let total_span = singles
            .get("total")
            .map_or(source.kind.span, |(span, _)| *span);
        ok.then_some(CheckedSource { plan, total_span })
    }

    /// Records a once-only statement; reports and returns false for a repeat.
    fn first_statement<'k>(
        &mut self,
        singles: &mut BTreeMap<&'k str, (Span, Vec<String>)>,
        key: &'k str,
        span: Span,
        path: Vec<String>,
    ) -> bool {
        if let Some((first, _)) = singles.get(key) {
            let first = *first;
            self.report(
                CheckDiagnostic::error(
                    codes::DUPLICATE_STATEMENT,
                    Span::new(span.start, span.start + key.len()),
                    format!("`{key}` is given twice in the source"),
                )
                .label("second one")
                .help(format!(
                    "keep one `{key}`; the first is on line {}",
                    self.line(first)
                )),
            );
            return false;
        }
        singles.insert(key, (span, path));
        true
    }

    fn check_connector_kind(&mut self, kind: &Spanned<String>) -> Option<ConnectorKind> {
        let found = ConnectorKind::from_keyword(&kind.node);
        if found.is_none() {
            let names: Vec<&str> = ConnectorKind::ALL.iter().map(|k| k.keyword()).collect();
            let help = match vendor::closest(&kind.node, &names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("connectors: {}", names.join(", ")),
            };
            self.report(
                CheckDiagnostic::error(
                    codes::UNKNOWN_CONNECTOR,
                    kind.span,
                    format!("unknown connector `{}`", kind.node),
                )
                .label("unknown connector")
                .help(help),
            );
        }
        found
    }

    fn check_connection(
        &mut self,
        kind: ConnectorKind,
        connection: Option<Spanned<String>>,
        kind_span: &Span,
    ) -> Option<String> {
        let Some(connection) = connection else {
            self.report(
                CheckDiagnostic::error(
                    codes::MISSING_CONNECTION,
                    *kind_span,
                    "the source names no connection",
                )
                .label("which credentials?")
                .help("add `connection <name>` naming an entry of the profile (qsync.yaml)"),
            );
            return None;
        };
        self.check_profile_entry(&connection, Some(kind.keyword()));
        Some(connection.node.clone())
    }

    /// Checks a connection name against the profile, when there is one.
    pub(crate) fn check_profile_entry(&mut self, name: &Spanned<String>, kind: Option<&str>) {
        let Some(profile) = self.ctx.profile else {
            return;
        };
        match profile.profile.connections.get(&name.node) {
            None => {
                let names: Vec<&str> = profile
                    .profile
                    .connections
                    .keys()
                    .map(String::as_str)
                    .collect();
                let help = match vendor::closest(&name.node, &names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => {
                        format!("`{}` defines no connections", profile.path)
                    }
                    None => format!("`{}` defines: {}", profile.path, names.join(", ")),
                };
                self.report(
                    CheckDiagnostic::error(
                        codes::UNKNOWN_PROFILE,
                        name.span,
                        format!(
                            "connection `{}` is not in profile `{}`",
                            name.node, profile.path
                        ),
                    )
                    .label("unknown connection")
                    .help(help),
                );
            }
            Some(entry) => {
                let expected = kind.unwrap_or("mysql");
                if entry.kind != expected {
                    self.report(
                        CheckDiagnostic::error(
                            codes::PROFILE_KIND_MISMATCH,
                            name.span,
                            format!(
                                "connection `{}` is a `{}` connection, this needs `{expected}`",
                                name.node, entry.kind
                            ),
                        )
                        .label("wrong kind")
                        .help(format!(
                            "point this at a `kind: {expected}` entry of the profile"
                        )),
                    );
                }
                if entry.kind == expected {
                    self.check_profile_settings(profile, name, entry);
                }
                if expected == "http" && entry.kind == "http" && entry.get("error_path").is_none() {
                    self.report(
                        CheckDiagnostic::warning(
                            codes::HTTP_NO_ERROR_PATH,
                            name.span,
                            format!(
                                "connection `{}` declares no `error_path`: an error the vendor \
                                 answers with HTTP 200 is not recognised as one",
                                name.node
                            ),
                        )
                        .label("errors look like data")
                        .help(
                            "set `error_path` and `success_value` in the profile (e.g. `code` \
                             and `0`), and `retryable_codes` for the vendor's busy answers; \
                             without them an answer lacking the records path is retried and \
                             then fails the window",
                        ),
                    );
                }
                let missing = profile.missing_by_connection.get(&name.node);
                for var in missing.into_iter().flatten() {
                    self.report(
                        CheckDiagnostic::warning(
                            codes::MISSING_ENV,
                            name.span,
                            format!(
                                "connection `{}` uses environment variable `{var}`, which is not set",
                                name.node
                            ),
                        )
                        .label("incomplete credentials")
                        .help(format!(
                            "set {var} before `qsync plan` or `qsync run`; they refuse to start without it"
                        )),
                    );
                }
            }
        }
    }

    /// A connection's keys against what its kind takes and, when every variable it uses is
    /// set, the connector built from it: a misspelt or missing credential is caught here,
    /// not at a run's first request.
    fn check_profile_settings(
        &mut self,
        profile: &crate::config::LoadedProfile,
        name: &Spanned<String>,
        entry: &crate::config::Connection,
    ) {
        let kind = ConnectorKind::from_keyword(&entry.kind);
        let known = kind.map_or(crate::config::MYSQL_KEYS, crate::connectors::profile_keys);
        let mut unknown = false;
        for key in entry.settings.keys() {
            // `secrets:` (values specs send as `{{ secrets.NAME }}`) belongs to every kind.
            if known.contains(&key.as_str())
                || key == "secrets"
                || (kind.is_some() && crate::config::COMMON_VENDOR_KEYS.contains(&key.as_str()))
            {
                continue;
            }
            unknown = true;
            let help = match vendor::closest(key, known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("a `{}` connection takes {}", entry.kind, known.join(", ")),
            };
            self.report(
                CheckDiagnostic::error(
                    codes::PROFILE_UNKNOWN_KEY,
                    name.span,
                    format!(
                        "connection `{}` has unknown key `{key}` at {}",
                        name.node,
                        profile.locate(&name.node, Some(key))
                    ),
                )
                .label(format!("`{key}` is not a `{}` setting", entry.kind))
                .help(help),
            );
        }
        // A misspelt key usually is the missing one: one diagnostic, not two. Unset
        // variables are reported apart (`missing_env`) and leave values empty.
        if unknown || profile.missing_by_connection.contains_key(&name.node) {
            return;
        }
        let problem = match kind {
            Some(kind) => crate::connectors::build(kind, &name.node, entry)
                .err()
                .map(|e| e.to_string()),
            None => profile.target_url(&name.node).err().map(|e| e.to_string()),
        };
        if let Some(problem) = problem {
            self.report(
                CheckDiagnostic::error(
                    codes::PROFILE_BAD_CONNECTION,
                    name.span,
                    format!(
                        "{}; the entry is at {}",
                        crate::config::mask(&problem, &entry.secrets()),
                        profile.locate(&name.node, None)
                    ),
                )
                .label("cannot connect with this entry")
                .help(format!(
                    "a `{}` connection takes {}",
                    entry.kind,
                    known.join(", ")
                )),
            );
        }
    }
    fn check_window(
        &mut self,
        opts: &[WindowOpt],
        vendor_max: Option<Duration>,
    ) -> Option<WindowPlan> {
        let mut window = default_window(vendor_max);
        let mut seen: Vec<&str> = Vec::new();
        let mut ok = true;
        for opt in opts {
            let key = opt.key.node.as_str();
            if seen.contains(&key) {
                self.report(
                    CheckDiagnostic::error(
                        codes::BAD_WINDOW,
                        opt.key.span,
                        format!("window option `{key}` is given twice"),
                    )
                    .label("repeated option"),
                );
                ok = false;
                continue;
            }
            seen.push(key);
            if key == "initial" {
                match parse_initial(&opt.value.node) {
                    Some(t) => window.initial = Some(t),
                    None => {
                        self.report(
                            CheckDiagnostic::error(
                                codes::BAD_WINDOW,
                                opt.value.span,
                                format!("`{}` is not a start time", opt.value.node),
                            )
                            .label("expected yyyy-MM-dd HH:mm:ss")
                            .help("e.g. window initial \"2024-01-01 00:00:00\""),
                        );
                        ok = false;
                    }
                }
                continue;
            }
            let Some(d) = self.check_duration(&opt.value) else {
                ok = false;
                continue;
            };
            match key {
                "max" => {
                    if d.is_zero() {
                        self.report(
                            CheckDiagnostic::error(
                                codes::BAD_WINDOW,
                                opt.value.span,
                                "a window of zero length reads nothing",
                            )
                            .label("zero"),
                        );
                        ok = false;
                    }
                    if let Some(limit) = vendor_max {
                        if d > limit {
                            self.report(
                                CheckDiagnostic::error(
                                    codes::WINDOW_OVER_LIMIT,
                                    opt.value.span,
                                    format!(
                                        "the vendor allows windows of at most {}, this asks for {}",
                                        human(limit),
                                        human(d)
                                    ),
                                )
                                .label("over the vendor's limit")
                                .help(format!("use `max {}` or less", human(limit))),
                            );
                        }
                    }
                    window.max_span = d;
                }
                "lag" => window.lag = d,
                _ => window.overlap = d,
            }
        }
        ok.then_some(window)
    }

    fn check_pagination(
        &mut self,
        p: &PaginateAst,
        params: &[(ParamPlan, Span)],
        info: &crate::connectors::EndpointInfo,
    ) -> Option<PaginationPlan> {
        let size_param = p
            .per
            .as_ref()
            .map_or_else(|| default_size_param(&p.param.node), |s| s.node.clone());
        let mut ok = true;
        let mut collide = |checker: &mut Self, path: &[String], span: Span, what: &str| {
            if let Some((_, declared)) = params.iter().find(|(d, _)| *d.path == *path) {
                checker.report(
                    CheckDiagnostic::error(
                        codes::PAGINATE_COLLISION,
                        span,
                        format!(
                            "`@paginate` sets {what} `{}`, which is also declared with `param`",
                            path.join(".")
                        ),
                    )
                    .label("set by paging")
                    .help(format!(
                        "remove the `param {}` line (line {}): paging sets it on every request",
                        path.join("."),
                        checker.line(*declared)
                    )),
                );
                ok = false;
            }
        };
        collide(self, &p.param.node, p.param.span, "the page parameter");
        if p.style != Style::Cursor || p.size.is_some() {
            let span = p.per.as_ref().map_or(p.param.span, |s| s.span);
            collide(self, &size_param, span, "the page-size parameter");
        }
        if let (Some(size), Some(max)) = (p.size, info.max_page_size) {
            if size > max {
                self.report(
                    CheckDiagnostic::error(
                        codes::PAGE_SIZE_OVER_LIMIT,
                        p.size_span.unwrap_or(p.span),
                        format!("the vendor allows at most {max} records per page, this asks for {size}"),
                    )
                    .label("over the vendor's maximum")
                    .help(format!("use `size {max}` or less: the vendor refuses or truncates larger pages")),
                );
            }
        }
        let size = p.size.or(info.max_page_size).unwrap_or(50);
        let param = FieldPath::from(p.param.node.clone());
        let size_param = FieldPath::from(size_param);
        let from = FieldPath::from(p.from_path.clone().unwrap_or_default());
        let until = p.until.clone().unwrap_or_else(|| {
            info.has_next_path
                .clone()
                .map(EndRule::HasNext)
                .or_else(|| info.total_path.clone().map(EndRule::Total))
                .unwrap_or(EndRule::ShortPage)
        });
        let plan = match p.style {
            Style::Page => PaginationPlan::Page {
                param,
                size_param,
                size,
                first: p.first.or(info.page_base).unwrap_or(1),
                until,
            },
            Style::Offset => PaginationPlan::Offset {
                param,
                size_param,
                size,
                until,
            },
            Style::Cursor => PaginationPlan::Cursor {
                param,
                from,
                size_param: p.size.map(|_| size_param),
                size: p.size,
            },
            Style::Keyset => PaginationPlan::Keyset {
                param,
                field: from,
                size_param,
                size,
            },
        };
        ok.then_some(plan)
    }
}

fn default_window(vendor_max: Option<Duration>) -> WindowPlan {
    WindowPlan {
        max_span: vendor_max.unwrap_or(Duration::from_secs(86_400)),
        lag: Duration::from_secs(60),
        overlap: Duration::from_secs(300),
        initial: None,
    }
}

fn parse_initial(text: &str) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
}

/// `pageIndex` → `pageSize`, `page_no` → `page_size`, `pager.page_no` → `pager.page_size`.
pub(crate) fn default_size_param(param: &[String]) -> Vec<String> {
    let mut path = param.to_vec();
    let last = path.pop().unwrap_or_default();
    let camel = last.chars().any(char::is_uppercase);
    path.push(if camel { "pageSize" } else { "page_size" }.to_owned());
    path
}
