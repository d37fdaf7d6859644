//! Scheme → [`Draft`]: each key of the scheme becomes its spec construct (README, "qsync
//! import"), or a diagnostic with its JSON path and a `# TODO` line where it would go.
//!
//! One [`Translator`] walks the scheme; its methods are split by the half they read:
//! this file has the entry point, reporting and the small text helpers both halves use,
//! `source.rs` the source half (request fields, paging, flatten, renames, schedules),
//! `target.rs` the target half (the table, columns, the main SQL bound to fields, mode and
//! key) and the request field reader both halves share.

mod key;
mod source;
mod target;

use std::collections::BTreeSet;

use super::codes;
use super::json::{Node, Value};
use super::render::{quote, value as render_value, Draft, Line};
use super::sql::{self, MainSql, Slot};
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
    /// Environment variables the spec reads (`{{ env.X }}`).
    pub(crate) env: Vec<String>,
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
    /// TODO lines for the top of the spec (a half that is not JSON), already reported.
    pub(crate) header: Vec<Line>,
}

pub(super) const SOURCE_KEYS: &[&str] = &[
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
pub(super) const TARGET_KEYS: &[&str] = &[
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
pub(super) const FIELD_KEYS: &[&str] = &[
    "field", "label", "type", "value", "children", "parser", "describe", "default",
];
pub(super) const FORMAT_KEYS: &[&str] = &["old", "new", "format"];
pub(super) const REMEDY_KEYS: &[&str] = &["crontab", "takeOverRequest"];
/// The keys of the scheme file itself.
pub(super) const SCHEME_KEYS: &[&str] = &["name", "source", "target"];
/// The `field`s of `otherRequest` entries.
const OTHER_REQUEST_FIELDS: &[&str] = &["main_sql", "limit"];

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
        env: Vec::new(),
        broken_window_start: None,
        flattened: Vec::new(),
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
    for line in &halves.header {
        t.draft.header.push(todo_text(line));
    }
    for extra in &halves.extra {
        let todo = t.unknown_key(extra, "the scheme", SCHEME_KEYS);
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
        env: t.env,
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
    /// Environment variables the spec reads.
    env: Vec<String>,
    /// The request field whose `LAST_SYNC_TIME` template did not translate.
    broken_window_start: Option<String>,
    /// The arrays `@flatten` expands (`items`): one row per element.
    flattened: Vec<String>,
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

    /// A key that is none of `known` (the keys of its `place`), with the closest known
    /// key as a suggestion.
    fn unknown_key(&mut self, node: &Node, place: &str, known: &[&str]) -> Line {
        let key = node.path.rsplit(['.', '[']).next().unwrap_or_default();
        let key = key.trim_end_matches(']').trim_matches('"').to_owned();
        self.unknown_name(node, &key, place, known)
    }

    fn unknown_name(&mut self, node: &Node, key: &str, place: &str, known: &[&str]) -> Line {
        let help = match crate::check::closest(key, known) {
            Some(s) => format!("did you mean `{s}`? Otherwise translate it by hand, or remove it from the scheme if it does nothing"),
            None => "translate it by hand, or remove it from the scheme if it does nothing".to_owned(),
        };
        self.error(
            node,
            codes::UNKNOWN_KEY,
            format!("`{key}` in {place} has no qsync translation; its setting is not carried over"),
            &help,
        )
    }

    fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) -> Line {
        let found = shown(node);
        self.error(
            node,
            codes::WRONG_TYPE,
            format!("{what} is {found}, not {expected}"),
            "fix the scheme's value",
        )
    }

    /// A yes/no setting (`idCheck`): `true`/`false`, `"true"`/`"false"`, `1`/`0`. Anything
    /// else is reported (and a TODO put in `block`) and taken as false.
    fn flag(&mut self, node: Option<&Node>, what: &str, block: Block) -> bool {
        let Some(node) = node else { return false };
        if node.value == Value::Null {
            return false;
        }
        match node.text().as_deref().map(str::trim) {
            Some("true" | "TRUE" | "True" | "1") => true,
            Some("false" | "FALSE" | "False" | "0") => false,
            _ => {
                let line = self.wrong_type(node, what, "true or false; it is taken as false");
                match block {
                    Block::Source => self.draft.source.push(line),
                    Block::Target => self.draft.target.push(line),
                }
                false
            }
        }
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
}

/// Whether a constant `value` suits the platform's field type `ty` (lowercase); types
/// qsync does not know take anything.
fn value_fits(ty: &str, value: &str) -> bool {
    match ty {
        "int" | "integer" | "long" | "bigint" | "tinyint" | "smallint" => {
            value.parse::<i64>().is_ok()
        }
        "number" | "float" | "double" | "decimal" | "numeric" => {
            serde_json::from_str::<serde_json::Number>(value).is_ok()
        }
        "bool" | "boolean" => matches!(value, "true" | "false" | "0" | "1"),
        _ => true,
    }
}

/// What a value of type `ty` looks like, for messages.
fn expected_value(ty: &str) -> &'static str {
    match ty {
        "int" | "integer" | "long" | "bigint" | "tinyint" | "smallint" => "a whole number",
        "bool" | "boolean" => "true or false",
        _ => "a number",
    }
}

/// Where a finding's TODO line goes.
#[derive(Clone, Copy)]
enum Block {
    Source,
    Target,
}

/// A value as a message shows it: scalars as they are written (`` `-1` ``, `` `"yes"` ``),
/// objects and arrays by their kind.
fn shown(node: &Node) -> String {
    match &node.value {
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Number(n) => format!("`{n}`"),
        Value::Bool(b) => format!("`{b}`"),
        _ => node.kind().to_owned(),
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
    sql::split_outside(text, '|', &['\'', '"'], &['('], &[')'])
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
