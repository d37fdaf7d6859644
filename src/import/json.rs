//! The scheme JSON as a tree whose every node knows its byte span and its JSON path, so a
//! finding can point into the file (miette) and name the key (`$.source.request[3].value`).
//!
//! Reading is jsonc-parser's: it gives spans, and it accepts what people paste from the
//! platform's editor (`// 更多字段...` comments, trailing commas). Nothing of it leaves this
//! file.

use crate::syntax::Span;

/// One JSON value, where it stands and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) span: Span,
    /// `$.source.request[3].value`
    pub(crate) path: String,
    pub(crate) value: Value,
}

/// The value of a [`Node`]. Numbers keep their text (`"50"`, `1.50`), never a float.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Members in file order; a repeated key is kept twice (the reader reports it).
    Object(Vec<Member>),
}

/// `"key": value` inside an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    pub(crate) key: String,
    pub(crate) node: Node,
}

/// Why the text is not JSON: a message and where.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonError {
    pub(crate) message: String,
    pub(crate) span: Span,
}

/// Parses `text` into a [`Node`] tree rooted at path `$`.
pub(crate) fn parse(text: &str) -> Result<Node, JsonError> {
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_loose_object_property_names: true,
        allow_trailing_commas: true,
        ..jsonc_parser::ParseOptions::default()
    };
    let parsed =
        jsonc_parser::parse_to_ast(text, &jsonc_parser::CollectOptions::default(), &options)
            .map_err(|e| JsonError {
                message: e.kind().to_string(),
                span: Span::new(e.range().start, e.range().end.max(e.range().start)),
            })?;
    let value = parsed.value.ok_or(JsonError {
        message: "the file holds no JSON value".to_owned(),
        span: Span::new(0, 0),
    })?;
    Ok(lower(&value, "$".to_owned()))
}

fn lower(value: &jsonc_parser::ast::Value<'_>, path: String) -> Node {
    use jsonc_parser::ast::Value as V;
    let (range, value) = match value {
        V::NullKeyword(n) => (n.range, Value::Null),
        V::BooleanLit(b) => (b.range, Value::Bool(b.value)),
        V::NumberLit(n) => (n.range, Value::Number(n.value.to_owned())),
        V::StringLit(s) => (s.range, Value::String(s.value.clone().into_owned())),
        V::Array(a) => (
            a.range,
            Value::Array(
                a.elements
                    .iter()
                    .enumerate()
                    .map(|(i, e)| lower(e, format!("{path}[{i}]")))
                    .collect(),
            ),
        ),
        V::Object(o) => (
            o.range,
            Value::Object(
                o.properties
                    .iter()
                    .map(|p| {
                        let key = p.name.as_str().to_owned();
                        let child = child_path(&path, &key);
                        Member {
                            node: lower(&p.value, child),
                            key,
                        }
                    })
                    .collect(),
            ),
        ),
    };
    Node {
        span: Span::new(range.start, range.end),
        path,
        value,
    }
}

/// `$.a` for plain keys, `$["a b"]` for the others.
fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", serde_json::Value::String(key.to_owned()))
    }
}

impl Node {
    /// The member `key` of an object (the first, when repeated).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.members()
            .iter()
            .find(|m| m.key == key)
            .map(|m| &m.node)
    }

    /// The member `key` of an object, to change (the first, when repeated).
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Object(members) => members
                .iter_mut()
                .find(|m| m.key == key)
                .map(|m| &mut m.node),
            _ => None,
        }
    }

    /// The members of an object; none for other values.
    pub(crate) fn members(&self) -> &[Member] {
        match &self.value {
            Value::Object(members) => members,
            _ => &[],
        }
    }

    /// The text of a string, or of a number or boolean (the platform writes `"50"` and
    /// `50` alike).
    pub(crate) fn text(&self) -> Option<String> {
        match &self.value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.clone()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// What kind of value this is, in words, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// The elements of an array; none for other values.
    pub(crate) fn elements(&self) -> &[Node] {
        match &self.value {
            Value::Array(items) => items,
            _ => &[],
        }
    }

    /// Plain JSON, for values copied into the spec as they are.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => {
                serde_json::from_str(n).unwrap_or_else(|_| serde_json::Value::String(n.clone()))
            }
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(items) => items.iter().map(Node::to_json).collect(),
            Value::Object(members) => members
                .iter()
                .map(|m| (m.key.clone(), m.node.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_bytes_and_paths_name_keys() {
        let text = r#"{"名称": "售后", "request": [{"field": "a"}, // 更多字段...
        ], "odd key": 1.50}"#;
        let root = parse(text).unwrap();
        let name = root.get("名称").unwrap();
        assert_eq!(name.path, "$.名称");
        assert_eq!(&text[name.span.start..name.span.end], "\"售后\"");
        let field = root.get("request").unwrap().elements()[0]
            .get("field")
            .unwrap();
        assert_eq!(field.path, "$.request[0].field");
        assert_eq!(field.text().as_deref(), Some("a"));
        let odd = root.get("odd key").unwrap();
        assert_eq!(odd.path, "$[\"odd key\"]");
        assert_eq!(odd.value, Value::Number("1.50".to_owned()));
    }

    #[test]
    fn errors_point_at_the_place() {
        let text = "{\"a\": [1, 2}";
        let e = parse(text).unwrap_err();
        assert!(e.span.start >= 10, "{e:?}");
        assert!(parse("").is_err());
    }
}
