//! `qsync import`: an integration platform's scheme JSON (轻易云 QEasy, the shapes of the
//! case studies in `shared/seeds/`) → a `.qsync` spec and the profile entries its
//! connections need, naming precisely what could not be translated.
//!
//! Owns reading the scheme (`json`), telling the vendor from the API name (`vendor`),
//! reading the target's `main_sql` (`sql`), the key-by-key translation (`translate`) and
//! writing the spec text in the house style (`render`). Every finding is an
//! [`ImportDiagnostic`]: a `qsync::import::...` code, the JSON path, and a span into the
//! scheme file for miette. It does not check the spec it writes: [`check_spec`] hands it
//! to `check`, the same as `qsync check`.

pub mod codes;
mod fold;
mod json;
mod render;
mod sql;
mod translate;
mod vendor;

use std::collections::BTreeMap;

use crate::check::{self, CheckContext, CheckDiagnostic};
use crate::config::LoadedProfile;
use crate::plan::ConnectorKind;
use crate::syntax::Span;

/// One scheme file as read: its display name, its text and how the bytes were decoded.
#[derive(Debug, Clone)]
pub struct SchemeFile {
    pub name: String,
    /// The text without a byte order mark; empty when the bytes could not be decoded.
    pub text: String,
    /// The encoding the bytes were read in when it is not UTF-8 (`GB18030`, `UTF-16LE`).
    pub encoding: Option<&'static str>,
    /// Why the bytes could not be decoded at all.
    pub unreadable: Option<String>,
}

impl SchemeFile {
    /// A file whose text is already known (UTF-8).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SchemeFile {
        SchemeFile {
            name: name.into(),
            text: text.into(),
            encoding: None,
            unreadable: None,
        }
    }

    /// A file from its bytes: a byte order mark (UTF-8, UTF-16) says the encoding and is
    /// dropped; bytes that are not UTF-8 are read as GB18030 (a superset of GBK, what the
    /// platform's Chinese Windows users save), and bytes that are neither are unreadable.
    pub fn decode(name: impl Into<String>, bytes: &[u8]) -> SchemeFile {
        let mut file = SchemeFile::new(name, String::new());
        if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
            let (text, had_errors) =
                encoding.decode_without_bom_handling(bytes.get(bom..).unwrap_or_default());
            if had_errors {
                file.unreadable = Some(format!(
                    "the file starts with a {} byte order mark but its bytes are not {}",
                    encoding.name(),
                    encoding.name()
                ));
            } else {
                file.text = text.into_owned();
                if encoding != encoding_rs::UTF_8 {
                    file.encoding = Some(encoding.name());
                }
            }
            return file;
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            text.clone_into(&mut file.text);
            return file;
        }
        match encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
            Some(text) => {
                file.text = text.into_owned();
                file.encoding = Some("GB18030 (GBK)");
            }
            None => {
                let at = std::str::from_utf8(bytes)
                    .err()
                    .map_or(0, |e| e.valid_up_to());
                file.unreadable = Some(format!(
                    "the bytes are neither UTF-8 nor GB18030 (GBK); the first bad byte is at offset {at}"
                ));
            }
        }
        file
    }
}

/// What to import: a whole scheme (`{"source": {...}, "target": {...}}`, optionally with
/// `"name"`), or its two halves from two files.
#[derive(Debug, Clone)]
pub enum SchemeInput {
    Whole(SchemeFile),
    Halves {
        source: SchemeFile,
        target: SchemeFile,
    },
}

impl SchemeInput {
    /// The input files, in the order [`ImportDiagnostic::file`] indexes them.
    pub fn files(&self) -> Vec<&SchemeFile> {
        match self {
            SchemeInput::Whole(f) => vec![f],
            SchemeInput::Halves { source, target } => vec![source, target],
        }
    }
}

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The connector to use, overriding what the API name says (`--connector`).
    pub connector: Option<ConnectorKind>,
    /// The spec's title when the scheme has no `name` (usually the file stem).
    pub default_title: String,
}

/// A finding about the scheme: where (file index into [`SchemeInput::files`], JSON path,
/// span) and what. Errors mean the spec is incomplete; warnings that it is complete but
/// something was changed or moved.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportDiagnostic {
    pub file: usize,
    /// `$.source.request[3].value`
    pub path: String,
    /// Code (`qsync::import::...`), severity, message, help and the span in the file.
    pub diagnostic: CheckDiagnostic,
}

/// The result of importing one scheme.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The `.qsync` text; it passes `check` even when incomplete (the untranslated parts
    /// are `# TODO` comments).
    pub spec: String,
    pub diagnostics: Vec<ImportDiagnostic>,
    /// `(name, YAML entry)` of each connection the spec uses, for the profile stub.
    pub connections: Vec<(String, String)>,
    /// Environment variables the spec reads (`{{ env.DINGTALK_SYSTEM_TOKEN }}`): the
    /// credentials that were request fields of the scheme.
    pub env: Vec<String>,
}

impl Imported {
    /// Whether everything was translated: no error diagnostics.
    pub fn is_complete(&self) -> bool {
        !self.diagnostics.iter().any(|d| d.diagnostic.is_error())
    }

    /// The number of `# TODO(...)` lines in the spec: what is left to do by hand.
    pub fn todo_lines(&self) -> usize {
        self.spec
            .lines()
            .filter(|l| l.trim_start().starts_with("# TODO("))
            .count()
    }
}

/// Imports one scheme. Never fails: what cannot be read or translated is a diagnostic.
/// A half that cannot be read is replaced by an empty one, so the other half is still
/// translated (and `--connector` still applies to the source).
pub fn import(input: &SchemeInput, options: &ImportOptions) -> Imported {
    let files = input.files();
    let names: Vec<String> = files.iter().map(|f| display_name(&f.name)).collect();
    let mut diagnostics = Vec::new();
    let mut header = Vec::new();
    let mut roots = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let d = read_problem(file);
        if let Some(d) = d {
            if d.is_error() {
                header.push(render::Line::Todo {
                    code: d.code,
                    message: format!("{}: {}", names[i], d.message),
                });
            }
            diagnostics.push(ImportDiagnostic {
                file: i,
                path: "$".to_owned(),
                diagnostic: d,
            });
        }
        if file.unreadable.is_some() {
            roots.push(None);
            continue;
        }
        match json::parse(&file.text) {
            Ok(root) => roots.push(Some(root)),
            Err(e) => {
                header.push(render::Line::Todo {
                    code: codes::NOT_JSON,
                    message: format!(
                        "{} is not JSON ({}); what it holds is not translated",
                        names[i], e.message
                    ),
                });
                diagnostics.push(ImportDiagnostic {
                    file: i,
                    path: "$".to_owned(),
                    diagnostic: CheckDiagnostic::error(
                        codes::NOT_JSON,
                        e.span,
                        format!("the scheme is not JSON: {}", e.message),
                    )
                    .label("here")
                    .help("the scheme is the JSON the platform's editor shows (comments and trailing commas are fine; bare words such as `int` need quotes)"),
                });
                roots.push(None);
            }
        }
    }
    // A placeholder half stands in for what could not be read, so the spec still checks.
    let empty = json::Node {
        span: Span::new(0, 0),
        path: MISSING.to_owned(),
        value: json::Value::Object(Vec::new()),
    };
    let mut found = Vec::new();
    let mut parts: Vec<(Option<json::Node>, Option<json::Node>)> = Vec::new();
    match input {
        SchemeInput::Whole(_) => {
            if let Some(Some(mut root)) = roots.pop() {
                fold::scheme(&mut root, 0, &mut found);
                parts.push((Some(root), None));
            }
        }
        SchemeInput::Halves { .. } => {
            let mut roots = roots.into_iter();
            for (i, key) in ["source", "target"].into_iter().enumerate() {
                match roots.next().flatten() {
                    Some(root) => {
                        let (mut node, name) = half(root, key);
                        if key == "source" {
                            fold::source(&mut node, i, &mut found);
                        } else {
                            fold::target(&mut node, i, &mut found);
                        }
                        parts.push((Some(node), name));
                    }
                    None => parts.push((None, None)),
                }
            }
        }
    }
    let halves = match (input, parts.as_slice()) {
        (SchemeInput::Whole(_), [(Some(root), _)]) => whole_halves(root, &empty, &mut found),
        (SchemeInput::Halves { .. }, [(source, source_name), (target, target_name)]) => {
            translate::Halves {
                title: source_name.as_ref().or(target_name.as_ref()),
                source: source.as_ref().unwrap_or(&empty),
                source_file: 0,
                target: target.as_ref().unwrap_or(&empty),
                target_file: 1,
                extra: Vec::new(),
                header: Vec::new(),
            }
        }
        _ => translate::Halves {
            title: None,
            source: &empty,
            source_file: 0,
            target: &empty,
            target_file: files.len().saturating_sub(1),
            extra: Vec::new(),
            header: Vec::new(),
        },
    };
    let halves = translate::Halves { header, ..halves };
    diagnostics.append(&mut found);
    let translation =
        translate::translate(&halves, &options.default_title, &names, options.connector);
    // What stands in for a missing half is not worth a finding.
    diagnostics.extend(
        translation
            .diagnostics
            .into_iter()
            .filter(|d| d.path != MISSING),
    );
    let mut draft = translation.draft;
    let mut spec = render::render(&draft);
    // The spec is meant to pass `check` as written; when a key that did not translate
    // leaves it reading what it no longer provides, say so rather than promise it.
    let failed: Vec<CheckDiagnostic> = check_spec("imported.qsync", &spec, None)
        .into_iter()
        .filter(CheckDiagnostic::is_error)
        .collect();
    if let Some(first) = failed.first() {
        let message = format!(
            "the spec does not pass `qsync check` ({} error(s), the first: {}); a setting that did not translate (another TODO) is the likely cause",
            failed.len(),
            first.message
        );
        draft
            .header
            .push(format!("TODO({}): {message}", codes::SPEC_DOES_NOT_CHECK));
        spec = render::render(&draft);
        let root_span = files
            .first()
            .map_or(Span::new(0, 0), |f| Span::new(0, f.text.len().min(1)));
        diagnostics.push(ImportDiagnostic {
            file: 0,
            path: "$".to_owned(),
            diagnostic: CheckDiagnostic::error(codes::SPEC_DOES_NOT_CHECK, root_span, message)
                .label("$")
                .help("`qsync import --check` shows check's findings; fix the scheme (or the spec) and import again"),
        });
    }
    diagnostics.sort_by_key(|d| (d.file, d.diagnostic.span.start, d.diagnostic.span.end));
    Imported {
        spec,
        diagnostics,
        connections: translation.connections,
        env: translation.env,
    }
}

/// What reading the file's bytes found: an encoding other than UTF-8 (a warning), or
/// bytes that are no text at all (an error).
fn read_problem(file: &SchemeFile) -> Option<CheckDiagnostic> {
    if let Some(why) = &file.unreadable {
        return Some(
            CheckDiagnostic::error(
                codes::UNREADABLE,
                Span::new(0, 0),
                format!("the file cannot be read as text: {why}"),
            )
            .help("save the scheme as UTF-8 (or GBK) and import it again"),
        );
    }
    file.encoding.map(|encoding| {
        CheckDiagnostic::warning(
            codes::ENCODING,
            Span::new(0, 0),
            format!("the file is not UTF-8: it was read as {encoding}"),
        )
        .help("nothing to do if the labels read right; the spec is written in UTF-8")
    })
}

/// The path of the empty half that stands in for a missing one.
pub(crate) const MISSING: &str = "$.<missing>";

/// The halves of a whole-scheme file, and what is wrong with its shape.
fn whole_halves<'n>(
    root: &'n json::Node,
    empty: &'n json::Node,
    found: &mut Vec<ImportDiagnostic>,
) -> translate::Halves<'n> {
    let mut missing = |what: &str| {
        found.push(ImportDiagnostic {
            file: 0,
            path: "$".to_owned(),
            diagnostic: CheckDiagnostic::error(
                codes::NOT_A_SCHEME,
                Span::new(root.span.start, (root.span.start + 1).min(root.span.end)),
                format!("the scheme has no `{what}` half"),
            )
            .label("$")
            .help("a scheme file is {\"name\": \"...\", \"source\": {...}, \"target\": {...}}; two halves in two files go with --source and --target"),
        });
    };
    let source = root.get("source");
    let target = root.get("target");
    if source.is_none() {
        missing("source");
    }
    if target.is_none() {
        missing("target");
    }
    let extra = root
        .members()
        .iter()
        .filter(|m| !translate::SCHEME_KEYS.contains(&m.key.as_str()))
        .map(|m| &m.node)
        .collect();
    translate::Halves {
        title: root.get("name"),
        source: source.unwrap_or(empty),
        source_file: 0,
        target: target.unwrap_or(empty),
        target_file: 0,
        extra,
        header: Vec::new(),
    }
}

/// A half file is the half itself (`{"api": ...}`, whose own `name` is a key of the half),
/// or wrapped as `{"source": {...}}`, optionally with the scheme's `"name"` beside it,
/// which is then the spec's title.
fn half(root: json::Node, key: &str) -> (json::Node, Option<json::Node>) {
    let wrapped = root.get(key).is_some()
        && root
            .members()
            .iter()
            .all(|m| m.key == key || m.key == "name");
    if !wrapped {
        return (root, None);
    }
    let members = match root.value {
        json::Value::Object(members) => members,
        value => {
            let node = json::Node {
                span: root.span,
                path: root.path,
                value,
            };
            return (node, None);
        }
    };
    let mut half = None;
    let mut name = None;
    for member in members {
        if member.key == key && half.is_none() {
            half = Some(member.node);
        } else if member.key == "name" {
            name = Some(member.node);
        }
    }
    match half {
        Some(half) => (half, name),
        None => (
            json::Node {
                span: root.span,
                path: root.path,
                value: json::Value::Object(Vec::new()),
            },
            name,
        ),
    }
}

fn display_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The diagnostics as a person reads them (miette, unicode, no colour), per file.
pub fn render_diagnostics(input: &SchemeInput, diagnostics: &[ImportDiagnostic]) -> String {
    let mut out = String::new();
    for (i, file) in input.files().iter().enumerate() {
        let of_file: Vec<CheckDiagnostic> = diagnostics
            .iter()
            .filter(|d| d.file == i)
            .map(|d| d.diagnostic.clone())
            .collect();
        out.push_str(&check::render(&file.name, &file.text, &of_file));
    }
    out
}

/// The diagnostics as JSON objects: code, severity, message, JSON path, help, file, line
/// and column (1-based, in characters).
pub fn json_diagnostics(
    input: &SchemeInput,
    diagnostics: &[ImportDiagnostic],
) -> Vec<serde_json::Value> {
    let files = input.files();
    diagnostics
        .iter()
        .map(|d| {
            let file = files.get(d.file).copied();
            let (line, column) = file.map_or((1, 1), |f| {
                check::line_col(&f.text, d.diagnostic.span.start)
            });
            serde_json::json!({
                "code": d.diagnostic.code,
                "severity": if d.diagnostic.is_error() { "error" } else { "warning" },
                "message": d.diagnostic.message,
                "path": d.path,
                "help": d.diagnostic.help,
                "file": file.map(|f| f.name.clone()),
                "line": line,
                "column": column,
            })
        })
        .collect()
}

/// A `qsync.yaml` with every connection the imports use, each once, credentials as
/// `${ENV}` placeholders, and the environment variables the specs read themselves
/// (`(variable, spec file)`), which the profile cannot set.
pub fn profile_stub<'a>(
    connections: impl IntoIterator<Item = &'a (String, String)>,
    env: &[(String, String)],
) -> String {
    let unique: BTreeMap<&str, &str> = connections
        .into_iter()
        .map(|(name, entry)| (name.as_str(), entry.as_str()))
        .collect();
    let mut out = String::from(
        "# Written by `qsync import`: one entry per connection the imported specs use.\n\
         # Set the environment variables (or replace the ${...}) before `qsync run`.\n",
    );
    if !env.is_empty() {
        let mut readers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (var, spec) in env {
            readers.entry(var).or_default().push(spec);
        }
        out.push_str("# The specs also read these environment variables (credentials that were\n# request fields of the scheme); set them where qsync runs:\n");
        for (var, specs) in readers {
            out.push_str(&format!("#   {var}  (read by {})\n", specs.join(", ")));
        }
    }
    out.push_str("timezone: Asia/Shanghai\nconnections:\n");
    for entry in unique.values() {
        out.push_str(entry);
    }
    out
}

/// `check`'s diagnostics of an imported spec (errors and warnings), exactly what
/// `qsync check` reports for the same text and profile.
pub fn check_spec(file: &str, text: &str, profile: Option<&LoadedProfile>) -> Vec<CheckDiagnostic> {
    let ctx = CheckContext {
        profile,
        sample: None,
    };
    match check::check(file, text, ctx) {
        Ok(checked) => checked.warnings,
        Err(failure) => failure.diagnostics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import_text(text: &str) -> Imported {
        let input = SchemeInput::Whole(SchemeFile::new("scheme.json", text));
        import(
            &input,
            &ImportOptions {
                default_title: "scheme".into(),
                ..ImportOptions::default()
            },
        )
    }

    fn codes_of(imported: &Imported) -> Vec<&'static str> {
        imported
            .diagnostics
            .iter()
            .map(|d| d.diagnostic.code)
            .collect()
    }

    fn assert_checks(imported: &Imported) {
        let found = check_spec("scheme.qsync", &imported.spec, None);
        assert!(
            !found.iter().any(CheckDiagnostic::is_error),
            "{}\n{found:#?}",
            imported.spec
        );
    }

    #[test]
    fn a_minimal_scheme_translates_completely() {
        let imported = import_text(
            r#"{"name": "仓库", "source": {"api": "erp.warehouse.get", "id": "warehouseId", "idCheck": true,
                "number": "warehouseCode",
                "pagination": {"pageSize": 50},
                "request": [{"field": "pageIndex", "value": "{PAGINATION_START_PAGE}"},
                            {"field": "pageSize", "value": "{PAGINATION_PAGE_SIZE}"},
                            {"field": "gmtModifiedStart", "label": "起始", "value": "{{LAST_SYNC_TIME|datetime}}"},
                            {"field": "gmtModifiedEnd", "value": "{{CURRENT_TIME|datetime}}"}],
                "crontab": "*/30 * * * *"},
               "target": {"api": "execute", "idCheck": true,
                "request": [{"field": "main_params", "type": "object", "children": [
                    {"field": "code", "label": "编码", "type": "string", "value": "{warehouseCode}"},
                    {"field": "n", "type": "int", "value": "3"}]}],
                "otherRequest": [{"field": "main_sql", "value": "REPLACE INTO w (code, n) VALUES (:code, :n)"},
                                 {"field": "limit", "value": "500"}]}}"#,
        );
        assert!(imported.is_complete(), "{:#?}", imported.diagnostics);
        let spec = &imported.spec;
        assert!(spec.contains("sync \"仓库\""), "{spec}");
        assert!(
            spec.contains("source jikeyun \"erp.warehouse.get\" {"),
            "{spec}"
        );
        assert!(
            spec.contains(
                "    param gmtModifiedStart = \"{{ LAST_SYNC_TIME | datetime }}\"  # 起始"
            ),
            "{spec}"
        );
        assert!(spec.contains("    @paginate pageIndex size 50\n"), "{spec}");
        assert!(spec.contains("    id warehouseId"), "{spec}");
        assert!(spec.contains("@schedule \"*/30 * * * *\""), "{spec}");
        assert!(spec.contains("    mode replace"), "{spec}");
        assert!(spec.contains("    batch 500"), "{spec}");
        assert!(
            spec.contains("    code = warehouseCode : string  # 编码"),
            "{spec}"
        );
        assert!(spec.contains("    n    = 3 : int"), "{spec}");
        assert_checks(&imported);
    }

    #[test]
    fn what_cannot_be_translated_is_named_with_its_path() {
        let imported = import_text(
            r#"{"source": {"api": "erp.warehouse.get", "delay": 5,
                "request": [{"field": "a", "value": "{{ NOPE }}"}], "crontab": "every day"},
               "target": {"api": "execute",
                "request": [{"field": "x"}],
                "otherRequest": [{"field": "main_sql", "value": "UPDATE t SET x = 1"}]}}"#,
        );
        assert!(!imported.is_complete());
        let paths: Vec<(&str, &str)> = imported
            .diagnostics
            .iter()
            .map(|d| (d.diagnostic.code, d.path.as_str()))
            .collect();
        assert_eq!(
            paths,
            vec![
                (codes::UNKNOWN_KEY, "$.source.delay"),
                (codes::BAD_TEMPLATE, "$.source.request[0].value"),
                (codes::BAD_CRON, "$.source.crontab"),
                (codes::NO_VALUE, "$.target.request[0]"),
                (codes::MAIN_SQL_NOT_INSERT, "$.target.otherRequest[0].value"),
            ]
        );
        assert!(
            imported.spec.contains("# TODO(qsync::import::no_value)"),
            "{}",
            imported.spec
        );
        assert_checks(&imported);
    }

    #[test]
    fn not_json_still_gives_a_spec_that_checks() {
        let imported = import_text("{\"source\": ");
        assert_eq!(codes_of(&imported), vec![codes::NOT_JSON]);
        assert_checks(&imported);
    }
}
