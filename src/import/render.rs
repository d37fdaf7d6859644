//! The spec text of a translated scheme, in the house style of `specs/`: blocks in the
//! order sync, source, directives, target, map; `=` aligned within a block; the scheme's
//! labels as trailing comments; `# TODO(code): ...` where a setting could not be carried.

use std::fmt::Write as _;

/// A spec being written, block by block.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    /// Comment lines at the top of the file (without `# `).
    pub(crate) header: Vec<String>,
    pub(crate) title: String,
    /// `qimen "jushuitan.refund.list.query"`
    pub(crate) source_head: String,
    pub(crate) source: Vec<Line>,
    /// Top-level directives: `@flatten`, `@rename`, `@schedule`, `@remedy`.
    pub(crate) directives: Vec<Line>,
    /// `"refund_list_query"`
    pub(crate) target_table: String,
    pub(crate) target: Vec<Line>,
    pub(crate) map: Vec<Line>,
}

/// One line of a block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    /// `connection jst`, `@flatten items`, with an optional trailing comment.
    Stmt {
        text: String,
        comment: Option<String>,
    },
    /// `param name = value` (`keyword` "param") or `column = expr : type` (`keyword` "");
    /// names are aligned within their block.
    Assign {
        keyword: &'static str,
        name: String,
        value: String,
        comment: Option<String>,
    },
    /// A whole-line comment (without `# `).
    Comment(String),
    /// `# TODO(code): message`
    Todo { code: &'static str, message: String },
}

impl Line {
    pub(crate) fn stmt(text: impl Into<String>) -> Line {
        Line::Stmt {
            text: text.into(),
            comment: None,
        }
    }

    pub(crate) fn stmt_with(text: impl Into<String>, comment: Option<String>) -> Line {
        Line::Stmt {
            text: text.into(),
            comment,
        }
    }
}

/// The spec text.
pub(crate) fn render(draft: &Draft) -> String {
    let mut out = String::new();
    for line in &draft.header {
        let _ = writeln!(out, "# {line}");
    }
    let _ = writeln!(out, "sync {}\n", quote(&draft.title));
    let _ = writeln!(out, "source {} {{", draft.source_head);
    block(&mut out, &draft.source, "    ");
    let _ = writeln!(out, "}}\n");
    if !draft.directives.is_empty() {
        block(&mut out, &draft.directives, "");
        out.push('\n');
    }
    let _ = writeln!(out, "target mysql {} {{", quote(&draft.target_table));
    block(&mut out, &draft.target, "    ");
    let _ = writeln!(out, "}}\n");
    let _ = writeln!(out, "map {{");
    block(&mut out, &draft.map, "    ");
    let _ = writeln!(out, "}}");
    out
}

fn block(out: &mut String, lines: &[Line], indent: &str) {
    let width = lines
        .iter()
        .filter_map(|l| match l {
            Line::Assign { name, .. } => Some(name.chars().count()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut previous = None;
    for line in lines {
        if matches!(line, Line::Todo { .. }) && previous == Some(line) {
            continue;
        }
        previous = Some(line);
        let (text, comment) = match line {
            Line::Stmt { text, comment } => (text.clone(), comment.as_deref()),
            Line::Assign {
                keyword,
                name,
                value,
                comment,
            } => {
                let pad = " ".repeat(width - name.chars().count());
                let keyword = if keyword.is_empty() {
                    String::new()
                } else {
                    format!("{keyword} ")
                };
                (
                    format!("{keyword}{name}{pad} = {value}"),
                    comment.as_deref(),
                )
            }
            Line::Comment(text) => (format!("# {}", one_line(text)), None),
            Line::Todo { code, message } => {
                (format!("# TODO({code}): {}", one_line(message)), None)
            }
        };
        let _ = match comment {
            Some(c) if !c.trim().is_empty() => {
                writeln!(out, "{indent}{text}  # {}", one_line(c))
            }
            _ => writeln!(out, "{indent}{text}"),
        };
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` as a spec string literal (`"..."` with `\" \\ \n \t` escapes).
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value as a spec request value: strings quoted, objects `{ key: value }`,
/// arrays `[ ... ]`; keys that are not names are quoted.
pub(crate) fn value(json: &serde_json::Value) -> String {
    match json {
        serde_json::Value::String(s) => quote(s),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", items.join(", "))
        }
        serde_json::Value::Object(members) if members.is_empty() => "{}".to_owned(),
        serde_json::Value::Object(members) => {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}: {}", key(k), value(v)))
                .collect();
            format!("{{ {} }}", members.join(", "))
        }
        other => other.to_string(),
    }
}

/// An object key: bare when it is a name, else quoted.
fn key(text: &str) -> String {
    let mut chars = text.chars();
    let bare = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_');
    if bare {
        text.to_owned()
    } else {
        quote(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_and_values_nest() {
        assert_eq!(quote("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        let json = serde_json::json!({"modified_from": "{{ x }}", "n": 1, "odd key": [true, null]});
        assert_eq!(
            value(&json),
            r#"{ modified_from: "{{ x }}", n: 1, "odd key": [true, null] }"#
        );
    }

    #[test]
    fn names_align_within_a_block_and_comments_trail() {
        let draft = Draft {
            title: "t".into(),
            source_head: "jikeyun \"erp.warehouse.get\"".into(),
            source: vec![
                Line::stmt("connection jky"),
                Line::Assign {
                    keyword: "param",
                    name: "a".into(),
                    value: "1".into(),
                    comment: Some("页码".into()),
                },
                Line::Assign {
                    keyword: "param",
                    name: "long_name".into(),
                    value: "2".into(),
                    comment: None,
                },
                Line::Todo {
                    code: "qsync::import::x",
                    message: "two\nlines".into(),
                },
            ],
            target_table: "t".into(),
            map: vec![Line::Assign {
                keyword: "",
                name: "c".into(),
                value: "d".into(),
                comment: None,
            }],
            ..Draft::default()
        };
        let text = render(&draft);
        assert!(text.contains("    param a         = 1  # 页码\n"), "{text}");
        assert!(text.contains("    param long_name = 2\n"), "{text}");
        assert!(
            text.contains("    # TODO(qsync::import::x): two lines\n"),
            "{text}"
        );
        assert!(text.contains("map {\n    c = d\n}\n"), "{text}");
    }
}
