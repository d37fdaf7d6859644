//! [`FieldPath`]: a dotted path into a JSON value, and the one walker every module uses to
//! follow it (records in a response, fields of a record, paging values, vendor envelopes).

use std::fmt;
use std::ops::Deref;

use serde::Serialize;
use serde_json::Value;

/// A dotted path split into its segments: `data.datas` → `["data", "datas"]`. A segment
/// names an object key, or, in an array, an index (`items.0.sku_id`). The empty path
/// denotes the whole value.
///
/// Serializes as the list of its segments (the plan's stored hash depends on it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    /// A path of these segments.
    pub fn new(segments: Vec<String>) -> FieldPath {
        FieldPath(segments)
    }

    /// `data.datas` → `["data", "datas"]`; every `.` separates two segments.
    pub fn parse(dotted: &str) -> FieldPath {
        FieldPath(dotted.split('.').map(str::to_owned).collect())
    }

    /// The dotted form for messages and the dry run, `(the whole response)` when empty.
    pub fn label(&self) -> String {
        if self.0.is_empty() {
            "(the whole response)".to_owned()
        } else {
            self.to_string()
        }
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// The value at this path inside `value`; `None` when a segment is missing, indexes past
    /// an array's end, or meets a scalar.
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        walk(value, &self.0)
    }

    /// Moves the value at this path out of `value`, leaving `null` in its place.
    pub fn take(&self, value: &mut Value) -> Option<Value> {
        let mut node = value;
        for segment in &self.0 {
            node = match node {
                Value::Object(map) => map.get_mut(segment.as_str())?,
                Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node.take())
    }

    /// The value at this path inside an owned `value`, moved out of it (the rest is
    /// dropped).
    pub fn into_found(&self, value: Value) -> Option<Value> {
        let mut value = value;
        for segment in &self.0 {
            value = match value {
                Value::Object(mut map) => map.swap_remove(segment.as_str())?,
                Value::Array(mut items) => {
                    let index = segment.parse::<usize>().ok()?;
                    if index >= items.len() {
                        return None;
                    }
                    items.swap_remove(index)
                }
                _ => return None,
            };
        }
        Some(value)
    }
}

/// Follows `segments` inside `value`, as [`FieldPath::get`] does; for fixed paths written
/// in code (`walk(&body, &["data", "datas"])`).
pub fn walk<'v, S: AsRef<str>>(value: &'v Value, segments: &[S]) -> Option<&'v Value> {
    segments
        .iter()
        .try_fold(value, |current, segment| match current {
            Value::Object(map) => map.get(segment.as_ref()),
            Value::Array(items) => segment
                .as_ref()
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i)),
            _ => None,
        })
}

impl Deref for FieldPath {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for FieldPath {
    fn from(segments: Vec<String>) -> FieldPath {
        FieldPath(segments)
    }
}

impl PartialEq<[&str]> for FieldPath {
    fn eq(&self, other: &[&str]) -> bool {
        self.0.len() == other.len() && self.0.iter().zip(other).all(|(a, b)| a == b)
    }
}

/// The dotted form, as a spec writes it: `data.datas`; empty for the whole value.
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(segment)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_walks_objects_and_array_indices() {
        let v = json!({"data": {"datas": [{"id": 1}]}});
        assert_eq!(FieldPath::parse("data.datas.0.id").get(&v), Some(&json!(1)));
        assert_eq!(FieldPath::parse("data.nope").get(&v), None);
        assert_eq!(FieldPath::parse("data.datas.1").get(&v), None);
        assert_eq!(FieldPath::parse("data.datas.x").get(&v), None);
        assert_eq!(FieldPath::parse("data.datas.0.id.deeper").get(&v), None);
        assert_eq!(FieldPath::default().get(&v), Some(&v));
        assert_eq!(walk(&v, &["data", "datas", "0", "id"]), Some(&json!(1)));
    }

    #[test]
    fn take_moves_the_value_out_and_leaves_null() {
        let mut v = json!({"data": {"datas": [1, 2], "total": 2}});
        let path = FieldPath::parse("data.datas");
        assert_eq!(path.take(&mut v), Some(json!([1, 2])));
        assert_eq!(v, json!({"data": {"datas": null, "total": 2}}));
        assert_eq!(FieldPath::parse("data.nope").take(&mut v), None);
        assert_eq!(
            FieldPath::parse("items.1").into_found(json!({"items": [1, 2, 3]})),
            Some(json!(2))
        );
        assert_eq!(
            FieldPath::parse("items.3").into_found(json!({"items": [1]})),
            None
        );
    }

    #[test]
    fn display_is_dotted_and_serde_is_the_segment_list() {
        let path = FieldPath::parse("extend.processInstanceId");
        assert_eq!(path.to_string(), "extend.processInstanceId");
        assert_eq!(FieldPath::default().to_string(), "");
        assert_eq!(FieldPath::default().label(), "(the whole response)");
        assert_eq!(path.label(), "extend.processInstanceId");
        assert_eq!(
            serde_json::to_string(&path).expect("serializes"),
            r#"["extend","processInstanceId"]"#
        );
        assert!(path == ["extend", "processInstanceId"][..]);
    }
}
