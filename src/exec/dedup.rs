//! Telling records apart within a window, across pages and passes: the first version of
//! an id is written and a newer one (by `modified`, else any changed one) replaces it;
//! without an id, the rows' target keys tell records apart. What the reads of a window
//! produced so far is [`Streamed`].

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::connectors::wire;
use crate::plan::{SourcePlan, ValueOrder};
use crate::state::Reject;

/// Whether `record` should be written: the first version of its id, or a newer one (by
/// `modified` when the spec names it, else any changed version, the later winning).
pub(super) fn is_newest(
    source: &SourcePlan,
    order: ValueOrder,
    record: &Value,
    seen: &mut HashMap<String, Seen>,
) -> bool {
    let Some(id_path) = &source.id else {
        return true;
    };
    let Some(id) = id_path.get(record).filter(|v| !v.is_null()) else {
        return true;
    };
    let fingerprint = fingerprint(record);
    let modified = source
        .modified
        .as_ref()
        .and_then(|path| path.get(record))
        .cloned();
    match seen.entry(wire::scalar_text(id)) {
        Entry::Vacant(entry) => {
            entry.insert(Seen {
                fingerprint,
                modified,
            });
            true
        }
        Entry::Occupied(mut entry) => {
            let old = entry.get();
            let newer = match (&modified, &old.modified) {
                (Some(new), Some(old)) => {
                    order.compare_times(new, old) == std::cmp::Ordering::Greater
                }
                _ => old.fingerprint != fingerprint,
            };
            if newer {
                entry.insert(Seen {
                    fingerprint,
                    modified,
                });
            }
            newer
        }
    }
}

/// What the reads of one window produced so far.
#[derive(Default)]
pub(super) struct Streamed {
    /// Rows handed to the writer.
    pub(super) rows: u64,
    pub(super) rejects: Vec<Reject>,
    /// By record id, when the source names one.
    pub(super) seen: HashMap<String, Seen>,
    /// Without an id: a hash of each record's row keys (of the record itself when it made
    /// no row) → the fingerprint of its last version.
    pub(super) keys: HashMap<u64, u64>,
    /// Target keys written, by owner, and the rows that collapsed onto another's key.
    pub(super) collisions: super::collisions::KeyOwners,
}

impl Streamed {
    /// How many distinct records the window has seen, when qsync can tell them apart.
    pub(super) fn distinct(&self) -> Option<u64> {
        if !self.seen.is_empty() {
            Some(self.seen.len() as u64)
        } else if !self.keys.is_empty() {
            Some(self.keys.len() as u64)
        } else {
            None
        }
    }
}

/// A hash of a record's JSON text: tells versions of a record apart.
pub(super) fn fingerprint(record: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    record.to_string().hash(&mut hasher);
    hasher.finish()
}

/// A hash of the key cells of a record's rows, in order.
pub(super) fn key_identity(rows: &[Vec<crate::transform::Cell>], key_cells: &[usize]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for row in rows {
        for &index in key_cells {
            if let Some(cell) = row.get(index) {
                cell.render().hash(&mut hasher);
            }
        }
        0xffu8.hash(&mut hasher);
    }
    hasher.finish()
}

/// What the window has seen of one id.
pub(super) struct Seen {
    fingerprint: u64,
    modified: Option<Value>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::FieldPath;
    use serde_json::json;

    fn source(modified: bool) -> SourcePlan {
        SourcePlan {
            kind: crate::plan::ConnectorKind::Http,
            endpoint: "/x".into(),
            http_method: crate::plan::HttpMethod::Get,
            connection: "x".into(),
            params: vec![],
            window: None,
            pagination: crate::plan::PaginationPlan::None,
            rates: vec![],
            rate_by_send: false,
            retry: crate::plan::RetryPlan::default(),
            records: FieldPath::default(),
            id: Some(FieldPath::parse("id")),
            modified: modified.then(|| FieldPath::parse("m")),
            total: None,
            timeout: Duration::from_secs(1),
            max_pages: 0,
        }
    }

    #[test]
    fn the_latest_version_of_an_id_wins() {
        let plan = source(true);
        let mut seen = HashMap::new();
        let order = ValueOrder::new(chrono_tz::Asia::Shanghai);
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 1, "m": "2024-01-01 10:00:00"}),
            &mut seen
        ));
        // A repeat across a page boundary, and an older version: skipped.
        assert!(!is_newest(
            &plan,
            order,
            &json!({"id": 1, "m": "2024-01-01 10:00:00"}),
            &mut seen
        ));
        assert!(!is_newest(
            &plan,
            order,
            &json!({"id": 1, "m": "2024-01-01 09:00:00", "x": 1}),
            &mut seen
        ));
        // A newer version: written (it replaces the row by key).
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 1, "m": "2024-01-01 11:00:00"}),
            &mut seen
        ));
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 2, "m": "2024-01-01 09:00:00"}),
            &mut seen
        ));
        assert_eq!(seen.len(), 2);
        // Times compare as instants whatever the vendor wrote: unpadded, with an offset.
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 3, "m": "2024-1-9 10:00:00"}),
            &mut seen
        ));
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 3, "m": "2024-01-10 09:00:00"}),
            &mut seen
        ));
        assert!(!is_newest(
            &plan,
            order,
            &json!({"id": 3, "m": "2024-01-10T00:30:00Z"}),
            &mut seen
        ));
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 3, "m": "2024-01-10T09:30:00+08:00"}),
            &mut seen
        ));
    }

    #[test]
    fn without_modified_a_changed_record_is_written_again() {
        let plan = source(false);
        let order = ValueOrder::new(chrono_tz::Asia::Shanghai);
        let mut seen = HashMap::new();
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": "a", "v": 1}),
            &mut seen
        ));
        assert!(!is_newest(
            &plan,
            order,
            &json!({"id": "a", "v": 1}),
            &mut seen
        ));
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": "a", "v": 2}),
            &mut seen
        ));
        // No id: never de-duplicated.
        assert!(is_newest(&plan, order, &json!({"v": 2}), &mut seen));
        assert!(is_newest(&plan, order, &json!({"v": 2}), &mut seen));
    }
}
