//! Keys that differ from a known key only in case, `_` or `-` (`beatflat`, `id_check`) are
//! read as that key, each with a warning: the alternative, reporting them as unknown,
//! drops the setting and leaves a spec that no longer checks (a map reading `items_*`
//! fields without the `@flatten items` the misspelt `beatFlat` meant).
//!
//! Only the scheme's own keys are folded, at the places the importer reads them (the
//! halves, request fields, `pagination`, `omissionRemedy`, `formatResponse`); request
//! values are the vendor's names and are never touched.

use super::codes;
use super::json::{Node, Value};
use super::translate::{
    FIELD_KEYS, FORMAT_KEYS, REMEDY_KEYS, SCHEME_KEYS, SOURCE_KEYS, TARGET_KEYS,
};
use super::ImportDiagnostic;
use crate::check::CheckDiagnostic;

/// Folds the keys of a whole scheme (`{"name", "source", "target"}`).
pub(crate) fn scheme(root: &mut Node, file: usize, out: &mut Vec<ImportDiagnostic>) {
    fold(root, SCHEME_KEYS, file, out);
    if let Some(source) = root.get_mut("source") {
        self::source(source, file, out);
    }
    if let Some(target) = root.get_mut("target") {
        self::target(target, file, out);
    }
}

/// Folds the keys of a source half.
pub(crate) fn source(source: &mut Node, file: usize, out: &mut Vec<ImportDiagnostic>) {
    fold(source, SOURCE_KEYS, file, out);
    if let Some(paging) = source.get_mut("pagination") {
        fold(paging, &["pageSize"], file, out);
    }
    if let Some(request) = source.get_mut("request") {
        fields(request, file, out);
    }
    if let Some(remedy) = source.get_mut("omissionRemedy") {
        fold(remedy, REMEDY_KEYS, file, out);
        if let Some(over) = remedy.get_mut("takeOverRequest") {
            fields(over, file, out);
        }
    }
    if let Some(Value::Array(entries)) = source.get_mut("formatResponse").map(|f| &mut f.value) {
        for entry in entries {
            fold(entry, FORMAT_KEYS, file, out);
        }
    }
}

/// Folds the keys of a target half.
pub(crate) fn target(target: &mut Node, file: usize, out: &mut Vec<ImportDiagnostic>) {
    fold(target, TARGET_KEYS, file, out);
    for list in ["request", "otherRequest"] {
        if let Some(request) = target.get_mut(list) {
            fields(request, file, out);
        }
    }
}

/// An array of request fields, with their `children`.
fn fields(list: &mut Node, file: usize, out: &mut Vec<ImportDiagnostic>) {
    let Value::Array(items) = &mut list.value else {
        return;
    };
    for item in items {
        fold(item, FIELD_KEYS, file, out);
        if let Some(children) = item.get_mut("children") {
            fields(children, file, out);
        }
    }
}

/// `beatFlat` and `beatflat`, `idCheck` and `id_check` are the same.
fn normal(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn fold(node: &mut Node, known: &[&str], file: usize, out: &mut Vec<ImportDiagnostic>) {
    let Value::Object(members) = &mut node.value else {
        return;
    };
    let present: Vec<String> = members.iter().map(|m| m.key.clone()).collect();
    for member in members.iter_mut() {
        if known.contains(&member.key.as_str()) {
            continue;
        }
        let wanted = normal(&member.key);
        let matches: Vec<&str> = known
            .iter()
            .copied()
            .filter(|k| normal(k) == wanted)
            .collect();
        let [key] = matches.as_slice() else { continue };
        if present.iter().any(|p| p == key) {
            continue;
        }
        out.push(ImportDiagnostic {
            file,
            path: member.node.path.clone(),
            diagnostic: CheckDiagnostic::warning(
                codes::KEY_CASE,
                member.node.span,
                format!(
                    "`{}` is read as `{key}`: the two differ only in case, `_` or `-`",
                    member.key
                ),
            )
            .label(member.node.path.clone())
            .help(format!(
                "write `{key}` in the scheme: the platform itself may not read `{}`",
                member.key
            )),
        });
        member.key = (*key).to_owned();
    }
}
