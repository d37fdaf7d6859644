//! Scheme → [`Draft`]: each key of the scheme becomes its spec construct (README, "qsync
//! import"), or a diagnostic with its JSON path and a `# TODO` line where it would go.

use std::collections::BTreeSet;

use super::codes;
use super::json::{Node, Value};
use super::render::{quote, value as render_value, Draft, Line};
use super::sql::{self, MainSql, Slot, Verb};
use super::vendor::{self, Vendor};
use super::ImportDiagnostic;
use crate::check::CheckDiagnostic;
use crate::plan::ConnectorKind;
use crate::template;

/// What translation produced.
pub(crate) struct Translation {
    pub(crate) draft: Draft,
    pub(crate) diagnostics: Vec<ImportDiagnostic>,
    /// `(name, qsync.yaml entry)` of each connection the spec uses.
    pub(crate) connections: Vec<(String, String)>,
}

/// The halves of one scheme and where each came from (an index into the input files).
pub(crate) struct Halves<'n> {
    pub(crate) title: Option<&'n Node>,
    pub(crate) source: &'n Node,
    pub(crate) source_file: usize,
    pub(crate) target: &'n Node,
    pub(crate) target_file: usize,
    /// Top-level keys besides `name`, `source` and `target`, reported as unknown.
    pub(crate) extra: Vec<&'n Node>,
}

const SOURCE_KEYS: &[&str] = &[
    "api",
    "method",
    "number",
    "id",
    "name",
    "idCheck",
    "pagination",
    "request",
    "beatFlat",
    "omissionRemedy",
    "crontab",
    "formatResponse",
];
const TARGET_KEYS: &[&str] = &[
    "api",
    "effect",
    "method",
    "number",
    "id",
    "name",
    "idCheck",
    "request",
    "otherRequest",
];
const FIELD_KEYS: &[&str] = &[
    "field", "label", "type", "value", "children", "parser", "describe", "default",
];

/// Names the platform gives the page-number parameter.
const PAGE_NAMES: &[&str] = &[
    "page_index",
    "pageIndex",
    "page_no",
    "pageNo",
    "pageNumber",
    "page_number",
    "pageNum",
    "page",
    "current_page",
    "currentPage",
];
/// Names the platform gives the page-size parameter.
const SIZE_NAMES: &[&str] = &["page_size", "pageSize", "per_page", "perPage", "pagesize"];

/// Request parameters a vendor takes as a JSON *string* (PROTOCOLS.md §5: Yida's
/// `searchFieldJson`, and its sibling `orderConfigJson`).
const JSON_STRING_PARAMS: &[(ConnectorKind, &str)] = &[
    (ConnectorKind::DingtalkYida, "searchFieldJson"),
    (ConnectorKind::DingtalkYida, "orderConfigJson"),
];

pub(crate) fn translate(
    halves: &Halves<'_>,
    file_stem: &str,
    file_names: &[String],
    connector: Option<ConnectorKind>,
) -> Translation {
    let mut t = Translator {
        diagnostics: Vec::new(),
        file: halves.source_file,
        draft: Draft::default(),
        vendor: None,
        renamed: BTreeSet::new(),
        source_id: None,
        source_number: None,
        in_map: false,
        window_start: None,
    };
    let origin = file_names.join(" + ");
    t.draft.header.push(format!(
        "Imported by `qsync import` from {origin} (轻易云 scheme)."
    ));
    t.draft.title = halves
        .title
        .and_then(Node::text)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| file_stem.to_owned());
    for extra in &halves.extra {
        let todo = t.unknown_key(extra, "the scheme");
        t.draft.header.push(todo_text(&todo));
    }
    let mut connections = Vec::new();
    t.source(halves.source, connector);
    if let Some(v) = &t.vendor {
        connections.push((v.connection.to_owned(), vendor::profile_entry(v)));
    }
    t.file = halves.target_file;
    let target_connection = t.target(halves.target);
    connections.push(target_connection);
    Translation {
        draft: t.draft,
        diagnostics: t.diagnostics,
        connections,
    }
}

fn todo_text(line: &Line) -> String {
    match line {
        Line::Todo { code, message } => format!("TODO({code}): {message}"),
        _ => String::new(),
    }
}

struct Translator {
    diagnostics: Vec<ImportDiagnostic>,
    /// The input file the nodes being read come from.
    file: usize,
    draft: Draft,
    vendor: Option<Vendor>,
    /// New names given by `formatResponse`: references to them are plain fields.
    renamed: BTreeSet<String>,
    source_id: Option<String>,
    source_number: Option<String>,
    /// Whether request fields being read are the target's (their TODOs go in the map).
    in_map: bool,
    /// The request field that carries `LAST_SYNC_TIME` (`start_time`, `params.modified_from`).
    window_start: Option<String>,
}

/// What a source request field turned into.
enum Param {
    /// A value to send.
    Value(String),
    /// The page-number parameter, with its literal first page when it has one.
    Page(Option<i64>),
    /// The page-size parameter, with its literal size when it has one.
    Size(Option<u32>),
    /// Nothing is sent (no value in the scheme).
    Unsent,
    /// An object whose every member is a paging parameter: `@paginate` sends them.
    Paging,
    /// Could not be translated (a diagnostic was reported).
    Broken,
}

/// Paging found among the request fields.
#[derive(Default)]
struct Paging {
    page: Option<(String, Option<i64>)>,
    size: Option<(String, Option<u32>)>,
}

impl Translator {
    // ------------------------------------------------------------------ reporting

    fn report(&mut self, node: &Node, diagnostic: CheckDiagnostic) -> Line {
        // The stand-in for a missing half: that half's absence is the one finding.
        if node.path == super::MISSING {
            return Line::Todo {
                code: codes::NOT_A_SCHEME,
                message: "the scheme has no such half; this is a placeholder".to_owned(),
            };
        }
        let line = Line::Todo {
            code: diagnostic.code,
            message: format!("{}: {}", node.path, diagnostic.message),
        };
        self.diagnostics.push(ImportDiagnostic {
            file: self.file,
            path: node.path.clone(),
            diagnostic: diagnostic.label(node.path.clone()),
        });
        line
    }

    fn error(&mut self, node: &Node, code: &'static str, message: String, help: &str) -> Line {
        let d = CheckDiagnostic::error(code, node.span, message).help(help);
        self.report(node, d)
    }

    fn warn(&mut self, node: &Node, code: &'static str, message: String, help: &str) {
        let d = CheckDiagnostic::warning(code, node.span, message).help(help);
        self.report(node, d);
    }

    fn unknown_key(&mut self, node: &Node, place: &str) -> Line {
        let key = node.path.rsplit(['.', '[']).next().unwrap_or_default();
        let key = key.trim_end_matches(']').trim_matches('"').to_owned();
        self.error(
            node,
            codes::UNKNOWN_KEY,
            format!("`{key}` in {place} has no qsync translation; its setting is not carried over"),
            "translate it by hand, or remove it from the scheme if it does nothing",
        )
    }

    fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) -> Line {
        let found = node.kind();
        self.error(
            node,
            codes::WRONG_TYPE,
            format!("{what} is {found}, not {expected}"),
            "fix the scheme's value",
        )
    }

    fn text_of(&mut self, node: &Node, what: &str) -> Option<String> {
        if let Some(text) = node.text() {
            return Some(text);
        }
        if node.value == Value::Null {
            return None;
        }
        let line = self.wrong_type(node, what, "a string");
        self.field_todo(line);
        None
    }

    /// Puts the TODO of a request field in the block the field belongs to.
    fn field_todo(&mut self, line: Line) {
        if self.in_map {
            self.draft.map.push(line);
        } else {
            self.draft.source.push(line);
        }
    }

    // ------------------------------------------------------------------ source

    /// Translates the source half.
    fn source(&mut self, source: &Node, connector: Option<ConnectorKind>) {
        if !matches!(source.value, Value::Object(_)) {
            let line = self.error(
                source,
                codes::NOT_A_SCHEME,
                format!("the source half is {}, not an object", source.kind()),
                "a source half looks like {\"api\": \"erp.warehouse.get\", \"request\": [...]}",
            );
            self.draft.source_head = "http \"/\"".to_owned();
            self.draft.source.push(Line::stmt("connection api"));
            self.draft.source.push(line);
            return;
        }
        for member in source.members() {
            if !SOURCE_KEYS.contains(&member.key.as_str()) {
                let line = self.unknown_key(&member.node, "the source");
                self.draft.source.push(line);
            }
        }
        let api = source.get("api").and_then(Node::text);
        let vendor = match (&api, connector) {
            (Some(api), Some(kind)) => Some(vendor::chosen(kind, api)),
            (Some(api), None) => vendor::infer(api),
            (None, _) => None,
        };
        let vendor = match (vendor, &api) {
            (Some(v), _) => v,
            (None, api_text) => {
                let line = match (api_text, source.get("api")) {
                    (Some(api), Some(node)) => self.error(
                        node,
                        codes::UNKNOWN_VENDOR,
                        format!("the API `{api}` does not tell its vendor; the spec uses the plain `http` connector"),
                        "pass --connector jushuitan|qimen|jikeyun|wdt|dingtalk_yida|http",
                    ),
                    _ => self.error(
                        source,
                        codes::MISSING_KEY,
                        "the source has no `api`".to_owned(),
                        "add the API name, e.g. \"api\": \"erp.warehouse.get\"",
                    ),
                };
                self.draft.source.push(line);
                vendor::chosen(ConnectorKind::Http, api_text.as_deref().unwrap_or("/"))
            }
        };
        self.draft.source_head = format!("{} {}", vendor.kind.keyword(), quote(&vendor.endpoint));
        self.draft.source.insert(
            0,
            Line::stmt_with(
                format!("connection {}", vendor.connection),
                Some(vendor.reason.to_owned()),
            ),
        );
        self.vendor = Some(vendor.clone());

        if let Some(method) = source.get("method") {
            if let Some(m) = self.text_of(method, "`method`") {
                let m = m.trim().to_ascii_uppercase();
                match m.as_str() {
                    "POST" | "" => {}
                    "GET" | "PUT" | "PATCH" | "DELETE" => {
                        self.draft.source.push(Line::stmt(format!("method {m}")));
                    }
                    other => {
                        let line = self.error(
                            method,
                            codes::UNKNOWN_KEY,
                            format!("the HTTP method `{other}` is not one qsync sends"),
                            "use GET or POST",
                        );
                        self.draft.source.push(line);
                    }
                }
            }
        }

        // Request fields: params, paging and the window bounds.
        let mut paging = Paging::default();
        let mut params = Vec::new();
        let mut uses_window = false;
        if let Some(request) = source.get("request") {
            let fields = self.request_fields(request);
            let mut seen = BTreeSet::new();
            for field in fields {
                if let Some(line) =
                    self.source_field(field, &[], &mut paging, &mut seen, &mut uses_window)
                {
                    params.push(line);
                }
            }
        }
        if uses_window {
            self.draft.source.push(Line::stmt_with(
                "window",
                Some(
                    "LAST_SYNC_TIME/CURRENT_TIME: the first run needs --since, or add initial \"yyyy-MM-dd HH:mm:ss\""
                        .to_owned(),
                ),
            ));
        }
        self.draft.source.extend(params);
        self.paginate(source, &paging, &vendor);

        if let Some(id) = source.get("id") {
            if let Some(id) = self.text_of(id, "`id`").filter(|s| !s.trim().is_empty()) {
                let check = source.get("idCheck").is_some_and(Node::truthy);
                let number = source.get("number").and_then(Node::text);
                let comment = match (check, &number) {
                    (true, Some(n)) => {
                        format!("idCheck: duplicates of an id are dropped; number: {n}")
                    }
                    (true, None) => "idCheck: duplicates of an id are dropped".to_owned(),
                    (false, Some(n)) => format!("number: {n}"),
                    (false, None) => String::new(),
                };
                self.draft
                    .source
                    .push(Line::stmt_with(format!("id {}", id.trim()), Some(comment)));
                self.source_id = Some(id.trim().to_owned());
            }
        }
        self.source_number = source
            .get("number")
            .and_then(Node::text)
            .map(|s| s.trim().to_owned());

        self.flatten(source);
        self.renames(source, &vendor);
        if let Some(cron) = source.get("crontab") {
            self.schedule(cron, "@schedule");
        }
        if let Some(remedy) = source.get("omissionRemedy") {
            self.remedy(remedy);
        }
    }

    /// The fields of a `request`: an array of field objects, or an object of
    /// `name: value` pairs (as the WDT case study writes `pager{}` and `params{}`).
    fn request_fields<'n>(&mut self, request: &'n Node) -> Vec<&'n Node> {
        match &request.value {
            Value::Array(items) => items.iter().collect(),
            Value::Object(members) => members.iter().map(|m| &m.node).collect(),
            Value::Null => Vec::new(),
            _ => {
                let line = self.wrong_type(request, "`request`", "an array of fields");
                self.draft.source.push(line);
                Vec::new()
            }
        }
    }

    /// One request field (recursing into `children`); the line to write, if any.
    fn source_field(
        &mut self,
        field: &Node,
        parents: &[String],
        paging: &mut Paging,
        seen: &mut BTreeSet<String>,
        uses_window: &mut bool,
    ) -> Option<Line> {
        let (name, spec) = self.field_parts(field)?;
        let mut path = parents.to_vec();
        path.push(name.clone());
        let dotted = path.join(".");
        if !seen.insert(dotted.clone()) {
            let line = self.error(
                field,
                codes::DUPLICATE_FIELD,
                format!("the request field `{dotted}` is given twice"),
                "keep one of them",
            );
            return Some(line);
        }
        let label = spec.label.clone();
        let param = self.param_value(&spec, &path, paging, uses_window);
        if let Param::Value(v) = &param {
            if v.contains("LAST_SYNC_TIME") && self.window_start.is_none() {
                self.window_start = Some(dotted.clone());
            }
        }
        match param {
            Param::Value(value) if parents.is_empty() => Some(Line::Assign {
                keyword: "param",
                name: dotted,
                value,
                comment: label,
            }),
            Param::Value(value) => Some(Line::Assign {
                keyword: "",
                name: name.clone(),
                value,
                comment: label,
            }),
            Param::Page(first) => {
                paging.page = Some((dotted, first));
                None
            }
            Param::Size(size) => {
                paging.size = Some((dotted, size));
                None
            }
            Param::Unsent => Some(Line::Comment(format!(
                "{dotted}{}: no value in the scheme, not sent",
                label.map(|l| format!(" ({l})")).unwrap_or_default()
            ))),
            Param::Broken | Param::Paging => None,
        }
    }

    /// The value of one request field, as spec text.
    fn param_value(
        &mut self,
        spec: &FieldSpec<'_>,
        path: &[String],
        paging: &mut Paging,
        uses_window: &mut bool,
    ) -> Param {
        let name = path.last().cloned().unwrap_or_default();
        let kind = self.vendor.as_ref().map(|v| v.kind);
        if let Some(children) = spec.children {
            let mut members = Vec::new();
            let mut seen = BTreeSet::new();
            let paged_before = (paging.page.is_some(), paging.size.is_some());
            for child in children.elements() {
                let line = self.source_field(child, path, paging, &mut seen, uses_window);
                match line {
                    Some(Line::Assign { name, value, .. }) => {
                        members.push(format!("{}: {value}", object_key(&name)));
                    }
                    Some(line @ Line::Todo { .. }) => self.draft.source.push(line),
                    _ => {}
                }
            }
            if children.elements().is_empty() && !matches!(children.value, Value::Array(_)) {
                let line = self.wrong_type(children, "`children`", "an array of fields");
                self.draft.source.push(line);
                return Param::Broken;
            }
            if members.is_empty() {
                let paged = (paging.page.is_some(), paging.size.is_some()) != paged_before;
                return if paged { Param::Paging } else { Param::Unsent };
            }
            let object = format!("{{ {} }}", members.join(", "));
            let as_string = kind.is_some_and(|k| JSON_STRING_PARAMS.contains(&(k, name.as_str())));
            return Param::Value(if as_string {
                format!("json({object})")
            } else {
                object
            });
        }
        let Some(value_node) = spec.value else {
            return Param::Unsent;
        };
        let text = match &value_node.value {
            Value::String(s) => s.clone(),
            Value::Null => return Param::Unsent,
            Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                return Param::Value(render_value(&value_node.to_json()))
            }
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Param::Unsent;
        }
        match trimmed {
            "{PAGINATION_START_PAGE}" => return Param::Page(None),
            "{PAGINATION_PAGE_SIZE}" => return Param::Size(None),
            _ => {}
        }
        if paging.page.is_none() && PAGE_NAMES.contains(&name.as_str()) {
            if let Ok(first) = trimmed.parse::<i64>() {
                return Param::Page(Some(first));
            }
        }
        if paging.size.is_none() && SIZE_NAMES.contains(&name.as_str()) {
            if let Ok(size) = trimmed.parse::<u32>() {
                return Param::Size(Some(size));
            }
        }
        let rendered = if trimmed.contains("{{") || has_placeholder(trimmed) {
            match self.request_template(value_node, &text) {
                Some(t) => {
                    let t = self.gmt_bounds(value_node, &name, t);
                    *uses_window |= ["LAST_SYNC_TIME", "CURRENT_TIME", "window."]
                        .iter()
                        .any(|v| t.contains(v));
                    quote(&t)
                }
                None => return Param::Broken,
            }
        } else if crate::config::is_secret_key(&name) {
            let connection = self.vendor.as_ref().map_or("api", |v| v.connection);
            let var = format!("{}_{}", connection.to_ascii_uppercase(), env_name(&name));
            self.warn(
                value_node,
                codes::SECRET_MOVED,
                format!("the value of `{name}` is a credential: the spec reads it from the environment variable `{var}`"),
                &format!("set {var} where qsync runs; specs live in git, credentials do not"),
            );
            quote(&format!("{{{{ env.{var} }}}}"))
        } else {
            match spec.ty.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("int" | "integer" | "long" | "number" | "float" | "double" | "decimal")
                    if serde_json::from_str::<serde_json::Number>(trimmed).is_ok() =>
                {
                    trimmed.to_owned()
                }
                Some("bool" | "boolean") if matches!(trimmed, "true" | "false") => {
                    trimmed.to_owned()
                }
                _ => quote(&text),
            }
        };
        match spec.parser {
            None => Param::Value(rendered),
            Some(parser) => match self.parser(parser) {
                Some(separator) => {
                    Param::Value(format!("split({rendered}, {})", quote(&separator)))
                }
                None => Param::Broken,
            },
        }
    }

    /// `{"name": "StringToArray", "params": ","}` → the separator.
    fn parser(&mut self, parser: &Node) -> Option<String> {
        let name = parser
            .get("name")
            .and_then(Node::text)
            .or_else(|| parser.text());
        match name.as_deref() {
            Some("StringToArray") => Some(
                parser
                    .get("params")
                    .and_then(Node::text)
                    .unwrap_or_else(|| ",".to_owned()),
            ),
            other => {
                let line = self.error(
                    parser,
                    codes::UNKNOWN_PARSER,
                    format!(
                        "the parser `{}` has no qsync equivalent; the field is not sent",
                        other.unwrap_or("?")
                    ),
                    "StringToArray is the parser qsync knows (split(value, \",\"))",
                );
                self.draft.source.push(line);
                None
            }
        }
    }

    /// A request value with `{{ ... }}`: spaced the house way and compiled as `check`
    /// will; `None` (reported) when it cannot be.
    fn request_template(&mut self, node: &Node, text: &str) -> Option<String> {
        if has_placeholder(text) {
            let line = self.error(
                node,
                codes::BAD_TEMPLATE,
                format!("`{}` uses a platform placeholder qsync does not know; the field is not sent", text.trim()),
                "qsync knows {PAGINATION_START_PAGE}, {PAGINATION_PAGE_SIZE} and {{ ... }} templates",
            );
            self.draft.source.push(line);
            return None;
        }
        let spaced = space_template(text);
        let problems = template::validate(&spaced, template::VARIABLES, true);
        if let Some(problem) = problems.first() {
            let why = match problem {
                template::TemplateProblem::Syntax { message, .. } => message.clone(),
                template::TemplateProblem::UnknownVariable { name } => {
                    format!("`{name}` is not a variable qsync has")
                }
            };
            let line = self.error(
                node,
                codes::BAD_TEMPLATE,
                format!("the template `{}` does not compile: {why}; the field is not sent", text.trim()),
                "variables: LAST_SYNC_TIME, CURRENT_TIME, DAYS_AGO_<n>, window.start/end, env.NAME; filters: datetime, date, timestamp, millis",
            );
            self.draft.source.push(line);
            return None;
        }
        Some(spaced)
    }

    /// DingTalk Yida takes its `...TimeGMT` bounds in GMT (PROTOCOLS.md §5), and the
    /// platform's `datetime` gives the source time zone: the spec converts with `utc`.
    fn gmt_bounds(&mut self, node: &Node, name: &str, template: String) -> String {
        let yida = self
            .vendor
            .as_ref()
            .is_some_and(|v| v.kind == ConnectorKind::DingtalkYida);
        if !(yida && name.ends_with("GMT") && template.contains("| datetime }}")) {
            return template;
        }
        self.warn(
            node,
            codes::GMT_BOUNDS,
            format!("`{name}` is a GMT time and `datetime` gives the source time zone: the spec converts with `utc`"),
            "DingTalk Yida reads its *TimeGMT bounds in GMT",
        );
        template.replace("| datetime }}", "| utc }}")
    }

    /// Emits `@paginate` from the page fields and `pagination.pageSize`.
    fn paginate(&mut self, source: &Node, paging: &Paging, vendor: &Vendor) {
        let declared = source.get("pagination");
        let declared_size = declared.and_then(|p| {
            for member in p.members() {
                if member.key != "pageSize" {
                    let line = self.unknown_key(&member.node, "`pagination`");
                    self.draft.source.push(line);
                }
            }
            p.get("pageSize")
        });
        let size_node = declared_size.or(declared);
        let declared_size = match declared_size {
            Some(node) => match node.text().and_then(|t| t.trim().parse::<u32>().ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    let line =
                        self.wrong_type(node, "`pagination.pageSize`", "a positive whole number");
                    self.draft.source.push(line);
                    None
                }
            },
            None => None,
        };
        let Some((page, first)) = &paging.page else {
            if paging.size.is_some() || declared.is_some() {
                let node = size_node.unwrap_or(source);
                let line = self.error(
                    node,
                    codes::PAGINATION,
                    "the scheme pages, but no request field is the page number ({PAGINATION_START_PAGE}); only the first page is read".to_owned(),
                    "add the page field, or write @paginate by hand",
                );
                self.draft.source.push(line);
            }
            return;
        };
        let info = crate::connectors::endpoint_info(vendor.kind, &vendor.endpoint);
        let literal = paging.size.as_ref().and_then(|(_, s)| *s);
        let mut size = declared_size.or(literal).unwrap_or(50);
        if let Some(max) = info.max_page_size {
            if size > max {
                let node = size_node.unwrap_or(source);
                self.warn(
                    node,
                    codes::PAGE_SIZE_CLAMPED,
                    format!("the page size {size} is over the vendor's maximum of {max}: the spec asks for {max}"),
                    "the vendor refuses larger pages",
                );
                size = max;
            }
        }
        let mut line = format!("@paginate {page} size {size}");
        if let Some(first) = first {
            if info.page_base.unwrap_or(1) != *first {
                line.push_str(&format!(" from {first}"));
            }
        }
        if let Some((size_param, _)) = &paging.size {
            let parts: Vec<String> = page.split('.').map(str::to_owned).collect();
            if crate::check::default_size_param(&parts).join(".") != *size_param {
                line.push_str(&format!(" per {size_param}"));
            }
        }
        self.draft.source.push(Line::stmt(line));
    }

    fn flatten(&mut self, source: &Node) {
        let Some(flat) = source.get("beatFlat") else {
            return;
        };
        let items: Vec<&Node> = match &flat.value {
            Value::Array(items) => items.iter().collect(),
            Value::String(_) => vec![flat],
            _ => {
                let line = self.wrong_type(flat, "`beatFlat`", "an array of field names");
                self.draft.directives.push(line);
                return;
            }
        };
        for item in items {
            match item.text().filter(|s| is_path(s.trim())) {
                Some(name) => self.draft.directives.push(Line::stmt_with(
                    format!("@flatten {}", name.trim()),
                    Some("beatFlat: one row per element".to_owned()),
                )),
                None => {
                    let line = self.wrong_type(item, "a `beatFlat` entry", "a field name");
                    self.draft.directives.push(line);
                }
            }
        }
    }

    fn renames(&mut self, source: &Node, vendor: &Vendor) {
        let Some(list) = source.get("formatResponse") else {
            return;
        };
        if !matches!(list.value, Value::Array(_)) {
            let line = self.wrong_type(list, "`formatResponse`", "an array of {old, new, format}");
            self.draft.directives.push(line);
            return;
        }
        for item in list.elements() {
            for member in item.members() {
                if !["old", "new", "format"].contains(&member.key.as_str()) {
                    let line = self.unknown_key(&member.node, "a `formatResponse` entry");
                    self.draft.directives.push(line);
                }
            }
            let old = item
                .get("old")
                .and_then(Node::text)
                .filter(|s| is_path(s.trim()));
            let new = item
                .get("new")
                .and_then(Node::text)
                .filter(|s| is_name(s.trim()));
            let (Some(old), Some(new)) = (old, new) else {
                let line = self.error(
                    item,
                    codes::MISSING_KEY,
                    "a `formatResponse` entry needs `old` (a field) and `new` (a name)".to_owned(),
                    "e.g. {\"old\": \"dateField_x\", \"new\": \"datetime_new\", \"format\": \"date\"}",
                );
                self.draft.directives.push(line);
                continue;
            };
            let old = record_field(vendor.kind, old.trim());
            let mut text = format!("@rename {old} -> {}", new.trim());
            if let Some(format) = item.get("format") {
                let name = format.text().unwrap_or_default();
                match column_type(&name) {
                    TypeMatch::Type(ty) => text.push_str(&format!(" : {ty}")),
                    TypeMatch::Untyped => {}
                    TypeMatch::Unknown => {
                        let line = self.error(
                            format,
                            codes::UNKNOWN_FORMAT,
                            format!("the format `{name}` has no qsync type; the field is renamed, not converted"),
                            "formats: string, int, bigint, float, decimal, date, datetime, boolean, json",
                        );
                        self.draft.directives.push(line);
                    }
                }
            }
            self.renamed.insert(new.trim().to_owned());
            self.draft
                .directives
                .push(Line::stmt_with(text, Some("formatResponse".to_owned())));
        }
    }

    fn schedule(&mut self, cron: &Node, directive: &str) -> Option<String> {
        let text = match cron.text() {
            Some(t) => t.trim().to_owned(),
            None => {
                let line = self.wrong_type(cron, "`crontab`", "a cron string");
                self.draft.directives.push(line);
                return None;
            }
        };
        if let Err(why) = crate::check::parse_cron(&text) {
            let line = self.error(
                cron,
                codes::BAD_CRON,
                format!("`{text}` is not a cron expression ({why}); no {directive} is written"),
                "5 fields (minute hour day month weekday), or 6 with seconds, e.g. \"2 1 * * *\"",
            );
            self.draft.directives.push(line);
            return None;
        }
        if directive == "@schedule" {
            self.draft.directives.push(Line::stmt_with(
                format!("@schedule {}", quote(&text)),
                Some("crontab".to_owned()),
            ));
        }
        Some(text)
    }

    fn remedy(&mut self, remedy: &Node) {
        let window_start = self.window_start.clone();
        let window_start = window_start.as_deref();
        if !matches!(remedy.value, Value::Object(_)) {
            let line = self.wrong_type(remedy, "`omissionRemedy`", "an object");
            self.draft.directives.push(line);
            return;
        }
        for member in remedy.members() {
            if !["crontab", "takeOverRequest"].contains(&member.key.as_str()) {
                let line = self.unknown_key(&member.node, "`omissionRemedy`");
                self.draft.directives.push(line);
            }
        }
        let mut lookback = None;
        if let Some(over) = remedy.get("takeOverRequest") {
            for field in over.elements() {
                let name = field.get("field").and_then(Node::text).unwrap_or_default();
                let value = field.get("value").and_then(Node::text).unwrap_or_default();
                let days = days_ago(&value);
                // The take-over names the field, nested ones by their own name.
                let start = window_start
                    .is_some_and(|w| w == name.trim() || w.rsplit('.').next() == Some(name.trim()));
                match (start, days) {
                    (true, Some(n)) => lookback = Some(n),
                    _ => {
                        let line = self.error(
                            field,
                            codes::REMEDY,
                            format!("the remedy sets `{name}` to `{value}`; qsync's remedy re-reads from the window start ({}) a number of days back, and nothing else", window_start.unwrap_or("no window")),
                            "the remedy's take-over must be the LAST_SYNC_TIME field set to {{DAYS_AGO_<n>|datetime}}",
                        );
                        self.draft.directives.push(line);
                    }
                }
            }
            if !matches!(over.value, Value::Array(_)) {
                let line = self.wrong_type(over, "`takeOverRequest`", "an array of fields");
                self.draft.directives.push(line);
            }
        }
        let cron = match remedy.get("crontab") {
            Some(cron) => self.schedule(cron, "@remedy"),
            None => {
                let line = self.error(
                    remedy,
                    codes::REMEDY,
                    "the omission remedy has no `crontab`; qsync runs a remedy on its own schedule, so none is written".to_owned(),
                    "add \"crontab\" to omissionRemedy, or run `qsync run --remedy` by hand",
                );
                self.draft.directives.push(line);
                None
            }
        };
        match (cron, lookback) {
            (Some(cron), Some(days)) => self.draft.directives.push(Line::stmt_with(
                format!("@remedy {} lookback {days}d", quote(&cron)),
                Some("omissionRemedy: re-read the last days on its own schedule".to_owned()),
            )),
            (Some(cron), None) if remedy.get("takeOverRequest").is_none() => {
                let line = self.error(
                    remedy,
                    codes::REMEDY,
                    format!("the omission remedy on \"{cron}\" says nothing of how far back it reads (no `takeOverRequest`)"),
                    "add a takeOverRequest of the LAST_SYNC_TIME field with {{DAYS_AGO_<n>|datetime}}",
                );
                self.draft.directives.push(line);
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ target

    /// Translates the target half; returns the target connection's profile entry.
    fn target(&mut self, target: &Node) -> (String, String) {
        let default_table = self.default_table();
        self.draft.target_table.clone_from(&default_table);
        if !matches!(target.value, Value::Object(_)) {
            let line = self.error(
                target,
                codes::NOT_A_SCHEME,
                format!("the target half is {}, not an object", target.kind()),
                "a target half looks like {\"api\": \"execute\", \"request\": [...], \"otherRequest\": [...]}",
            );
            self.draft.target.push(Line::stmt("connection bi"));
            self.draft.target.push(line);
            self.fallback_map();
            return ("bi".to_owned(), vendor::mysql_entry("bi", None));
        }
        for member in target.members() {
            if !TARGET_KEYS.contains(&member.key.as_str()) {
                let line = self.unknown_key(&member.node, "the target");
                self.draft.target.push(line);
            }
        }
        let api = target.get("api").and_then(Node::text).unwrap_or_default();
        let writes = matches!(api.trim(), "execute" | "batchexecute");
        if !writes {
            let node = target.get("api").unwrap_or(target);
            let line = self.error(
                node,
                codes::TARGET_API,
                if api.trim().is_empty() {
                    "the target has no `api`: it writes nowhere qsync knows".to_owned()
                } else {
                    format!("the target API `{}` does not write to MySQL (`空操作` keeps the records in the platform); the spec writes them to the table `{default_table}`", api.trim())
                },
                "check the table and its columns; qsync writes MySQL tables only",
            );
            self.draft.target.push(line);
        }

        // Columns from the request fields.
        let mut columns = Vec::new();
        if let Some(request) = target.get("request") {
            self.in_map = true;
            let fields = self.target_fields(request);
            let mut seen = BTreeSet::new();
            for field in fields {
                if let Some(column) = self.column(field) {
                    if seen.insert(column.name.clone()) {
                        columns.push(column);
                    } else {
                        let line = self.error(
                            field,
                            codes::DUPLICATE_FIELD,
                            format!(
                                "the column `{}` is given twice; the first is kept",
                                column.name
                            ),
                            "keep one of them",
                        );
                        self.draft.map.push(line);
                    }
                }
            }
        }

        // main_sql: table, mode and how values bind to columns; limit: batch.
        let mut main = None;
        let mut batch = None;
        if let Some(other) = target.get("otherRequest") {
            for item in other.elements() {
                let key = item.get("field").and_then(Node::text).unwrap_or_default();
                let value = item.get("value");
                match key.as_str() {
                    "main_sql" => main = value.map(|v| (v, v.text().unwrap_or_default())),
                    "limit" => batch = value,
                    _ => {
                        let line = self.error(
                            item,
                            codes::UNKNOWN_KEY,
                            format!("`{key}` in `otherRequest` has no qsync translation; its setting is not carried over"),
                            "translate it by hand, or remove it from the scheme if it does nothing",
                        );
                        self.draft.target.push(line);
                    }
                }
            }
        }
        let mut parsed = None;
        match &main {
            Some((node, text)) => match sql::parse(text) {
                Ok(m) => {
                    self.draft.target_table = m.table.clone();
                    parsed = Some(m);
                }
                Err(e) => {
                    let line = self.error(
                        node,
                        codes::MAIN_SQL_NOT_INSERT,
                        format!("{e}; the spec's write mode is left to you"),
                        "qsync writes rows with INSERT, REPLACE, INSERT IGNORE or INSERT … ON DUPLICATE KEY UPDATE",
                    );
                    self.draft.target.push(line);
                }
            },
            None if writes => {
                let line = self.error(
                    target,
                    codes::MISSING_KEY,
                    format!("the target has no `main_sql` in `otherRequest`; the spec writes to `{default_table}` in the default mode"),
                    "add {\"field\": \"main_sql\", \"value\": \"REPLACE INTO t (…) VALUES\"}",
                );
                self.draft.target.push(line);
            }
            None => {}
        }
        if let Some(m) = &parsed {
            if let Some((node, _)) = &main {
                columns = self.bind(node, m, columns);
            }
        }
        if columns.is_empty() {
            self.fallback_columns(target, &mut columns);
        }

        let connection = match parsed.as_ref().and_then(|m| m.database.clone()) {
            Some(db) if is_name(&db) => db,
            _ => "bi".to_owned(),
        };
        let database = (connection != "bi").then_some(connection.as_str());
        let entry = vendor::mysql_entry(&connection, database);
        self.draft.target.insert(
            0,
            Line::stmt_with(
                format!("connection {connection}"),
                database.map(|db| format!("the database `{db}` of main_sql")),
            ),
        );
        self.mode_and_key(target, parsed.as_ref(), &columns, writes);
        if let Some(node) = batch {
            match node.text().and_then(|t| t.trim().parse::<u32>().ok()) {
                Some(n) if (1..=100_000).contains(&n) => {
                    self.draft.target.push(Line::stmt_with(
                        format!("batch {n}"),
                        Some("limit".to_owned()),
                    ));
                }
                _ => {
                    let line = self.wrong_type(node, "`limit`", "a whole number from 1 to 100000");
                    self.draft.target.push(line);
                }
            }
        }
        self.draft.target.push(Line::stmt_with(
            "create",
            Some("create the table from the map's types when it is missing".to_owned()),
        ));
        for column in columns {
            self.draft.map.extend(column.todo);
            self.draft.map.push(Line::Assign {
                keyword: "",
                name: column.name,
                value: match column.ty {
                    Some(ty) => format!("{} : {ty}", column.expr),
                    None => column.expr,
                },
                comment: column.label,
            });
        }
        (connection.clone(), entry)
    }

    /// The target's fields: the children of `main_params` (the one-row form), or the
    /// fields themselves.
    fn target_fields<'n>(&mut self, request: &'n Node) -> Vec<&'n Node> {
        let fields: Vec<&Node> = match &request.value {
            Value::Array(items) => items.iter().collect(),
            _ => {
                let line = self.wrong_type(request, "`request`", "an array of fields");
                self.draft.map.push(line);
                return Vec::new();
            }
        };
        let main_params = fields
            .iter()
            .position(|f| f.get("field").and_then(Node::text).as_deref() == Some("main_params"));
        match main_params {
            Some(i) => {
                for (j, other) in fields.iter().enumerate() {
                    if j != i {
                        let line = self.error(
                            other,
                            codes::UNKNOWN_KEY,
                            "a field beside `main_params` has no qsync translation (qsync writes one row per record, from `main_params`)".to_owned(),
                            "detail rows are a second spec with @flatten over the detail array",
                        );
                        self.draft.map.push(line);
                    }
                }
                match fields[i].get("children") {
                    Some(children) => children.elements().iter().collect(),
                    None => Vec::new(),
                }
            }
            None => fields,
        }
    }

    /// One target field as a map column.
    fn column(&mut self, field: &Node) -> Option<Column> {
        let (name, spec) = self.field_parts(field)?;
        let mut todo = Vec::new();
        let ty = match spec.ty.as_deref() {
            None => None,
            Some(t) => match column_type(t) {
                TypeMatch::Type(ty) => Some(ty.to_owned()),
                TypeMatch::Untyped => None,
                TypeMatch::Unknown => {
                    let node = field.get("type").unwrap_or(field);
                    self.warn(
                        node,
                        codes::UNKNOWN_TYPE,
                        format!("the type `{t}` has no qsync column type; `{name}` is left untyped (text)"),
                        "types: string, int, bigint, float, decimal, date, datetime, boolean, json",
                    );
                    None
                }
            },
        };
        let text = spec.value.and_then(Node::text).unwrap_or_default();
        let expr = if text.trim().is_empty() {
            let node = spec.value.unwrap_or(field);
            todo.push(self.error(
                node,
                codes::NO_VALUE,
                format!("the column `{name}` has no value in the scheme; it is written as NULL"),
                "give the column a field, a constant or sql(...)",
            ));
            "null".to_owned()
        } else {
            match self.column_expr(
                spec.value.unwrap_or(field),
                text.trim(),
                &name,
                ty.as_deref(),
            ) {
                Ok(e) => e,
                Err(line) => {
                    todo.push(line);
                    "null".to_owned()
                }
            }
        };
        Some(Column {
            name,
            expr,
            ty,
            label: spec.label,
            todo,
        })
    }

    /// A target value as a map expression.
    fn column_expr(
        &mut self,
        node: &Node,
        text: &str,
        name: &str,
        ty: Option<&str>,
    ) -> Result<String, Line> {
        if let Some(sql) = text.strip_prefix("_function") {
            return Ok(format!("sql({})", quote(sql.trim())));
        }
        if let Some(inner) = text.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
            let path = inner.trim();
            if is_path(path)
                && !template::VARIABLES.contains(&path)
                && template::days_ago_n(path).is_none()
            {
                if let Some(rest) = path.strip_prefix("extend.") {
                    self.warn(
                        node,
                        codes::PLATFORM_EXTEND,
                        format!("`extend` is the platform's metadata of a record; the spec reads `extend.{rest}` where the vendor sends it, else `{rest}`"),
                        "check which field of the vendor's record holds the value",
                    );
                    return Ok(format!("coalesce({path}, {})", self.field_ref(rest)));
                }
                return Ok(self.field_ref(path));
            }
            return Err(self.error(
                node,
                codes::UNSUPPORTED_VALUE,
                format!("`{text}` is a request template; a column takes record fields, constants and sql(...), so `{name}` is written as NULL"),
                "for the run's time use now(), or sql(\"NOW()\")",
            ));
        }
        if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            if is_path(inner.trim()) {
                return Ok(self.field_ref(inner.trim()));
            }
        }
        if text.contains('{') {
            // `{as_id}-{items_asi_id}`: an interpolation.
            let mut out = String::new();
            let mut rest = text;
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').map(|c| open + c);
                let Some(close) = close.filter(|c| is_path(rest[open + 1..*c].trim())) else {
                    return Err(self.error(
                        node,
                        codes::UNSUPPORTED_VALUE,
                        format!("`{text}` is not fields in braces and text; `{name}` is written as NULL"),
                        "write {field} for a record field, e.g. \"{as_id}-{items_asi_id}\"",
                    ));
                };
                out.push_str(&rest[..open]);
                out.push('<');
                let field = rest[open + 1..close].trim();
                out.push_str(&self.field_ref(field));
                out.push('>');
                rest = &rest[close + 1..];
            }
            out.push_str(rest);
            return Ok(quote(&out));
        }
        let numeric = matches!(
            ty.map(|t| t.split('(').next().unwrap_or(t)),
            Some("int" | "bigint" | "decimal" | "double")
        );
        if numeric && serde_json::from_str::<serde_json::Number>(text).is_ok() {
            return Ok(text.to_owned());
        }
        if ty == Some("bool") && matches!(text, "true" | "false") {
            return Ok(text.to_owned());
        }
        Ok(quote(text))
    }

    /// A record field as the spec names it: Yida form fields live under `data`.
    fn field_ref(&self, field: &str) -> String {
        if self.renamed.contains(field) {
            return field.to_owned();
        }
        match &self.vendor {
            Some(v) => record_field(v.kind, field),
            None => field.to_owned(),
        }
    }

    /// Binds `main_sql`'s columns to the request fields' values.
    fn bind(&mut self, node: &Node, sql: &MainSql, fields: Vec<Column>) -> Vec<Column> {
        if sql.columns.is_empty() {
            return fields;
        }
        let mismatch = |t: &mut Translator, why: String| {
            let line = t.error(
                node,
                codes::SQL_COLUMNS,
                format!("{why}; the columns are the request fields instead"),
                "make main_sql's column list and values match the request fields",
            );
            t.draft.map.push(line);
        };
        let slots: Vec<Slot> = match &sql.slots {
            Some(slots) if slots.len() != sql.columns.len() => {
                mismatch(
                    self,
                    format!(
                        "main_sql names {} columns and {} values",
                        sql.columns.len(),
                        slots.len()
                    ),
                );
                return fields;
            }
            Some(slots) => slots.clone(),
            None => vec![Slot::Positional; sql.columns.len()],
        };
        let positional = slots.iter().filter(|s| **s == Slot::Positional).count();
        if positional > 0 && positional != fields.len() {
            mismatch(
                self,
                format!(
                    "main_sql binds {positional} values by position and the request has {} fields",
                    fields.len()
                ),
            );
            return fields;
        }
        let mut used = vec![false; fields.len()];
        let mut position = 0;
        let mut out = Vec::new();
        for (column, slot) in sql.columns.iter().zip(&slots) {
            let bound = match slot {
                Slot::Positional => {
                    position += 1;
                    Some(position - 1)
                }
                Slot::Named(name) => {
                    let found = fields.iter().position(|f| &f.name == name);
                    if found.is_none() {
                        mismatch(self, format!("main_sql's placeholder for `{column}` names `{name}`, which is no request field"));
                        return fields;
                    }
                    found
                }
                Slot::Sql(text) => {
                    out.push(Column {
                        name: column.clone(),
                        expr: format!("sql({})", quote(text)),
                        ty: None,
                        label: Some("main_sql".to_owned()),
                        todo: Vec::new(),
                    });
                    None
                }
            };
            if let Some(i) = bound {
                used[i] = true;
                let mut c = fields[i].clone();
                c.name.clone_from(column);
                out.push(c);
            }
        }
        for (field, used) in fields.iter().zip(used) {
            if !used {
                self.warn(
                    node,
                    codes::UNUSED_FIELD,
                    format!(
                        "main_sql writes the request field `{}` to no column; it is left out",
                        field.name
                    ),
                    "add it to main_sql's columns if the table should have it",
                );
            }
        }
        out
    }

    /// With no columns at all (a `空操作` target), the record id keeps the map valid.
    fn fallback_columns(&mut self, target: &Node, columns: &mut Vec<Column>) {
        let id = self
            .source_id
            .clone()
            .or_else(|| self.source_number.clone());
        let (name, expr) = match &id {
            Some(id) => (id.replace('.', "_"), self.field_ref(id)),
            None => ("id".to_owned(), "null".to_owned()),
        };
        let todo = self.error(
            target,
            codes::NO_VALUE,
            format!("the target names no columns; the table gets the record id `{name}` only"),
            "list the columns to keep in the map",
        );
        self.draft.map.push(todo);
        columns.push(Column {
            name,
            expr,
            ty: None,
            label: None,
            todo: Vec::new(),
        });
    }

    fn fallback_map(&mut self) {
        self.draft.map.push(Line::Assign {
            keyword: "",
            name: "id".to_owned(),
            value: "null".to_owned(),
            comment: None,
        });
    }

    fn mode_and_key(
        &mut self,
        target: &Node,
        sql: Option<&MainSql>,
        columns: &[Column],
        writes: bool,
    ) {
        let id_check = target.get("idCheck").is_some_and(Node::truthy);
        let (mode, why) = match sql.map(|s| s.verb) {
            Some(Verb::Replace) => ("replace", "main_sql REPLACE INTO"),
            Some(Verb::Upsert) => ("upsert", "main_sql INSERT … ON DUPLICATE KEY UPDATE"),
            Some(Verb::InsertIgnore) => ("ignore", "main_sql INSERT IGNORE"),
            Some(Verb::Insert) if id_check => (
                "ignore",
                "main_sql INSERT with idCheck: an id already written is skipped",
            ),
            Some(Verb::Insert) => ("insert", "main_sql INSERT INTO"),
            None if writes => ("", ""),
            None if id_check => ("ignore", "idCheck: each id is kept once"),
            None => ("insert", "no main_sql"),
        };
        if let (Some(custom), Some(node)) = (
            sql.and_then(|s| s.custom_update.as_ref()),
            target.get("otherRequest"),
        ) {
            self.warn(
                node,
                codes::UPSERT_LIST,
                format!("`ON DUPLICATE KEY UPDATE {custom}` is not kept: `mode upsert` sets every column to its new value"),
                "if the table must compute its own values on update, write the spec's `sql` head by hand",
            );
        }
        let key = self.key(target, columns);
        if mode.is_empty() {
            return;
        }
        match (&key, mode) {
            (Some((key, how)), _) => {
                self.draft.target.push(Line::stmt_with(
                    format!("mode {mode}"),
                    Some(why.to_owned()),
                ));
                self.draft
                    .target
                    .push(Line::stmt_with(format!("key {key}"), Some(how.clone())));
            }
            (None, "insert") => {
                self.draft
                    .target
                    .push(Line::stmt_with("mode insert", Some(why.to_owned())));
            }
            (None, _) => {
                let line = self.error(
                    target,
                    codes::NO_KEY,
                    format!("{why} needs the column rows are matched on, and the scheme names none (`id` naming a column, or a column from the source's `id` or `number`); `mode {mode}` is left out"),
                    "add `key <column>` and `mode …` to the target",
                );
                self.draft.target.push(line);
            }
        }
    }

    /// The key column: the target's `id` when it is a column, else the column that holds
    /// the source's `id`, else its `number`.
    fn key(&self, target: &Node, columns: &[Column]) -> Option<(String, String)> {
        let bound = |c: &Column| c.todo.is_empty() && !c.expr.starts_with("sql(");
        if let Some(id) = target.get("id").and_then(Node::text) {
            let id = id.trim();
            if columns.iter().any(|c| c.name == id && bound(c)) {
                return Some((id.to_owned(), "the target's id".to_owned()));
            }
        }
        for (field, what) in [(&self.source_id, "id"), (&self.source_number, "number")] {
            let Some(field) = field else { continue };
            let wanted = self.field_ref(field);
            if let Some(c) = columns.iter().find(|c| c.expr == wanted && bound(c)) {
                return Some((
                    c.name.clone(),
                    format!("the column of the source's {what} `{field}`"),
                ));
            }
        }
        None
    }

    /// The table a scheme without `main_sql` writes to: the API name without its vendor
    /// prefix, as the platform names its tables (`jushuitan.refund.list.query` →
    /// `refund_list_query`).
    fn default_table(&self) -> String {
        let endpoint = self
            .vendor
            .as_ref()
            .map_or("imported", |v| v.endpoint.as_str());
        let trimmed = endpoint
            .trim_start_matches("jushuitan.")
            .trim_start_matches("wdt.")
            .trim_start_matches("/open/")
            .trim_start_matches("/v1.0/")
            .trim_start_matches('/');
        let name: String = trimmed
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = name.trim_matches('_').to_owned();
        if name.is_empty() {
            "imported".to_owned()
        } else {
            name
        }
    }

    // ------------------------------------------------------------------ fields

    /// A request field's name and settings; `None` (reported) without a name.
    fn field_parts<'n>(&mut self, field: &'n Node) -> Option<(String, FieldSpec<'n>)> {
        if !matches!(field.value, Value::Object(_)) {
            let line = self.wrong_type(
                field,
                "a request field",
                "an object with `field` and `value`",
            );
            self.field_todo(line);
            return None;
        }
        for member in field.members() {
            if !FIELD_KEYS.contains(&member.key.as_str()) {
                let line = self.unknown_key(&member.node, "a request field");
                self.field_todo(line);
            }
        }
        let name = field
            .get("field")
            .and_then(Node::text)
            .map(|s| s.trim().to_owned());
        let Some(name) = name.filter(|n| is_name(n)) else {
            let line = self.error(
                field,
                codes::MISSING_KEY,
                "a request field without a usable `field` name is left out".to_owned(),
                "every field needs \"field\": \"<name>\"",
            );
            self.field_todo(line);
            return None;
        };
        let label = field
            .get("label")
            .and_then(Node::text)
            .filter(|l| !l.trim().is_empty() && l.trim() != name);
        Some((
            name,
            FieldSpec {
                label,
                ty: field.get("type").and_then(Node::text),
                value: field.get("value").or_else(|| field.get("default")),
                children: field.get("children"),
                parser: field.get("parser"),
            },
        ))
    }
}

/// The parts of a request field.
struct FieldSpec<'n> {
    label: Option<String>,
    ty: Option<String>,
    value: Option<&'n Node>,
    children: Option<&'n Node>,
    parser: Option<&'n Node>,
}

/// A map column being built.
#[derive(Clone)]
struct Column {
    name: String,
    expr: String,
    ty: Option<String>,
    label: Option<String>,
    /// TODO lines that go above the column.
    todo: Vec<Line>,
}

enum TypeMatch {
    Type(&'static str),
    Untyped,
    Unknown,
}

/// The platform's field `type` (or `formatResponse` format) as a qsync column type.
fn column_type(name: &str) -> TypeMatch {
    match name.trim().to_ascii_lowercase().as_str() {
        "" | "string" | "str" | "varchar" | "char" => TypeMatch::Type("string"),
        "text" | "longtext" => TypeMatch::Type("text"),
        "int" | "integer" | "tinyint" | "smallint" => TypeMatch::Type("int"),
        "bigint" | "long" => TypeMatch::Type("bigint"),
        "float" | "double" | "number" | "decimal" | "numeric" => TypeMatch::Type("decimal(20,6)"),
        "date" => TypeMatch::Type("date"),
        "datetime" | "timestamp" | "time" => TypeMatch::Type("datetime"),
        "bool" | "boolean" => TypeMatch::Type("bool"),
        "object" | "array" | "json" => TypeMatch::Type("json"),
        "any" | "mixed" => TypeMatch::Untyped,
        _ => TypeMatch::Unknown,
    }
}

/// A record field path as the vendor's records hold it: DingTalk Yida keeps form values
/// (`dateField_x`, `numberField_y`, ...) under `data` (PROTOCOLS.md §5).
fn record_field(kind: ConnectorKind, field: &str) -> String {
    let form_field = field.split_once("Field_").is_some_and(|(head, tail)| {
        !head.is_empty()
            && head.chars().all(|c| c.is_ascii_alphabetic())
            && !tail.is_empty()
            && tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if kind == ConnectorKind::DingtalkYida && form_field {
        format!("data.{field}")
    } else {
        field.to_owned()
    }
}

/// `{{LAST_SYNC_TIME|datetime}}` → `{{ LAST_SYNC_TIME | datetime }}`.
fn space_template(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}").map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        let inner = &rest[open + 2..close];
        let parts: Vec<&str> = split_pipes(inner).into_iter().map(str::trim).collect();
        out.push_str("{{ ");
        out.push_str(&parts.join(" | "));
        out.push_str(" }}");
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Splits at `|` outside quotes and parentheses.
fn split_pipes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, '|') if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Whether `text` has a single-brace `{NAME}` placeholder outside `{{ }}`.
fn has_placeholder(text: &str) -> bool {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if rest[open..].starts_with("{{") {
            match rest[open..].find("}}") {
                Some(close) => {
                    rest = &rest[open + close + 2..];
                    continue;
                }
                None => return false,
            }
        }
        if let Some(close) = rest[open..].find('}') {
            if is_name(&rest[open + 1..open + close]) {
                return true;
            }
        }
        rest = &rest[open + 1..];
    }
    false
}

/// `{{DAYS_AGO_1|datetime}}` → 1.
fn days_ago(text: &str) -> Option<i64> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let variable = split_pipes(inner).first()?.trim().to_owned();
    template::days_ago_n(&variable).filter(|n| *n > 0)
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn is_path(text: &str) -> bool {
    !text.is_empty() && text.split('.').all(is_name)
}

fn object_key(name: &str) -> String {
    if is_name(name) {
        name.to_owned()
    } else {
        quote(name)
    }
}

/// `systemToken` → `SYSTEM_TOKEN`.
fn env_name(field: &str) -> String {
    let mut out = String::new();
    for (i, c) in field.chars().enumerate() {
        if c.is_uppercase() && i > 0 && !out.ends_with('_') {
            out.push('_');
        }
        if c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_spaced_the_house_way() {
        assert_eq!(
            space_template("{{LAST_SYNC_TIME|datetime}}"),
            "{{ LAST_SYNC_TIME | datetime }}"
        );
        assert_eq!(
            space_template("from {{ DAYS_AGO_1|datetime('%Y|%m') }}"),
            "from {{ DAYS_AGO_1 | datetime('%Y|%m') }}"
        );
        assert_eq!(days_ago("{{DAYS_AGO_3|datetime}}"), Some(3));
        assert_eq!(days_ago("{{CURRENT_TIME|datetime}}"), None);
    }

    #[test]
    fn placeholders_and_names() {
        assert!(has_placeholder("{PAGINATION_START_PAGE}"));
        assert!(has_placeholder("x{FOO}"));
        assert!(!has_placeholder("{{ LAST_SYNC_TIME }}"));
        assert!(!has_placeholder("{\"a\": 1}"));
        assert_eq!(env_name("systemToken"), "SYSTEM_TOKEN");
        assert_eq!(env_name("app_secret"), "APP_SECRET");
    }

    #[test]
    fn yida_form_fields_live_under_data() {
        let yida = ConnectorKind::DingtalkYida;
        assert_eq!(
            record_field(yida, "numberField_lgkgut81"),
            "data.numberField_lgkgut81"
        );
        assert_eq!(record_field(yida, "processInstanceId"), "processInstanceId");
        assert_eq!(
            record_field(ConnectorKind::Qimen, "dateField_x"),
            "dateField_x"
        );
    }
}
