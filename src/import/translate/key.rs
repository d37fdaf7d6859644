//! The target's write mode and key: the mode from `main_sql`'s verb and `idCheck`, the key
//! from the target's `id`, else the source's `id` or `number` — and, when `beatFlat`
//! expands the records, the element's own id, so that elements do not overwrite each
//! other under their parent's id.

use super::{codes, Block, Column, Line, Node, Translator};
use crate::import::sql::{MainSql, Verb};
use crate::import::vendor;

/// A key and how it was found (the spec's comment).
struct Key {
    columns: Vec<String>,
    how: String,
}

impl Translator {
    pub(super) fn mode_and_key(
        &mut self,
        target: &Node,
        sql: Option<&MainSql>,
        columns: &mut Vec<Column>,
        writes: bool,
    ) {
        let id_check = self.flag(target.get("idCheck"), "`idCheck`", Block::Target);
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
        let key = match key {
            Some(key) => self.unique_key(target, key, columns),
            None => Ok(None),
        };
        let key = match key {
            Ok(key) => key,
            Err(line) => {
                // A key that is not unique loses rows: neither it nor a mode that needs
                // it is written.
                self.draft.target.push(line);
                if mode == "insert" {
                    self.draft
                        .target
                        .push(Line::stmt_with("mode insert", Some(why.to_owned())));
                }
                return;
            }
        };
        if mode.is_empty() {
            // `main_sql` was not understood: the mode is left to the user, the key is not.
            if let Some(key) = key {
                self.draft.target.push(Line::stmt_with(
                    format!("key {}", key.columns.join(", ")),
                    Some(format!("{}; the write mode is left to you (with a key and no mode, rows replace those of the same key)", key.how)),
                ));
            }
            return;
        }
        match (key, mode) {
            (Some(key), _) => {
                if id_check && mode == "ignore" && sql.is_none_or(|s| s.verb == Verb::Insert) {
                    self.ignores_updates(target);
                }
                self.draft.target.push(Line::stmt_with(
                    format!("mode {mode}"),
                    Some(why.to_owned()),
                ));
                self.draft.target.push(Line::stmt_with(
                    format!("key {}", key.columns.join(", ")),
                    Some(key.how),
                ));
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

    /// The platform's idCheck skips an id it has written before (the case studies:
    /// "保证每条记录的唯一性,防止重复"), so a vendor's later change of the record is never
    /// written. qsync keeps that, and says so.
    fn ignores_updates(&mut self, target: &Node) {
        let node = target.get("idCheck").unwrap_or(target);
        self.warn(
            node,
            codes::IGNORES_UPDATES,
            "`idCheck` keeps the first version of each record (`mode ignore`, as the platform does): updates the vendor makes to a record already written are not written".to_owned(),
            "to write updates, change the spec's `mode ignore` to `mode upsert` (every column set to the newest version)",
        );
    }

    /// The key column: the target's `id` when it is a column with a value, else the
    /// column that holds the source's `id`, else its `number`.
    fn key(&mut self, target: &Node, columns: &[Column]) -> Option<Key> {
        let bound = |c: &Column| c.todo.is_empty() && !c.expr.starts_with("sql(");
        let mut passed_over = None;
        if let Some(node) = target.get("id") {
            if let Some(id) = node
                .text()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
            {
                match columns.iter().find(|c| c.name == id) {
                    Some(c) if bound(c) => {
                        return Some(Key {
                            columns: vec![id],
                            how: "the target's id".to_owned(),
                        })
                    }
                    Some(_) => passed_over = Some((node, format!("the target's id `{id}` is a column without a translated value (it would be NULL)"))),
                    None => passed_over = Some((node, format!("the target's id `{id}` is no column of the map"))),
                }
            }
        }
        let mut found = None;
        for (field, what) in [(&self.source_id, "id"), (&self.source_number, "number")] {
            let Some(field) = field else { continue };
            let wanted = self.field_ref(field);
            if let Some(c) = columns.iter().find(|c| c.expr == wanted && bound(c)) {
                found = Some(Key {
                    columns: vec![c.name.clone()],
                    how: format!("the column of the source's {what} `{field}`"),
                });
                break;
            }
        }
        if let Some((node, why)) = passed_over {
            let instead = found.as_ref().map_or_else(
                || "no key is written".to_owned(),
                |k| format!("the key is {} instead", k.how),
            );
            self.warn(
                node,
                codes::KEY_FALLBACK,
                format!("{why}: {instead}"),
                "check that the key is unique per row; fix the id column and set `key` to it",
            );
        }
        found
    }

    /// With `@flatten`, a key whose columns read no field of a flattened element is the
    /// parent's alone: every element of one record would land on the same row. The key
    /// then gains the column of the element's id when the vendor's element has one the
    /// importer knows (added to the map if missing); otherwise it is an error.
    fn unique_key(
        &mut self,
        target: &Node,
        key: Key,
        columns: &mut Vec<Column>,
    ) -> Result<Option<Key>, Line> {
        if self.flattened.is_empty() {
            return Ok(Some(key));
        }
        let per_element = key.columns.iter().any(|k| {
            columns
                .iter()
                .find(|c| &c.name == k)
                .is_some_and(|c| self.flattened.iter().any(|a| reads_element(&c.expr, a)))
        });
        if per_element {
            return Ok(Some(key));
        }
        let kind = self.vendor.as_ref().map(|v| (v.kind, v.endpoint.clone()));
        let element_id = kind.and_then(|(kind, endpoint)| {
            self.flattened.iter().find_map(|array| {
                vendor::element_id(kind, &endpoint, array).map(|id| {
                    (
                        array.clone(),
                        format!("{}_{id}", array.replace('.', "_")),
                        id,
                    )
                })
            })
        });
        let parents = key.columns.join(", ");
        let arrays = self.flattened.join(", ");
        let Some((array, field, id)) = element_id else {
            return Err(self.error(
                target,
                codes::KEY_NOT_UNIQUE,
                format!("the records are flattened over `{arrays}`, and the key `{parents}` ({}) is the same for every element of a record: elements would overwrite each other; no key or mode is written", key.how),
                "add the element's id column to the map and write `key <parent id>, <element id>` and the mode by hand",
            ));
        };
        let column = match columns.iter().find(|c| c.expr == field) {
            Some(c) => c.name.clone(),
            None => {
                columns.push(Column {
                    name: field.clone(),
                    expr: field.clone(),
                    ty: None,
                    label: Some(format!(
                        "added: the id of each `{array}` element, for the key"
                    )),
                    todo: Vec::new(),
                });
                field.clone()
            }
        };
        self.warn(
            target,
            codes::KEY_WIDENED,
            format!("the records are flattened over `{array}` and the key `{parents}` ({}) is the same for every element of a record: the key is `{parents}, {column}` (each element's `{id}`) so that every element keeps its row", key.how),
            "check that the table's unique key matches",
        );
        let mut columns_of_key = key.columns;
        columns_of_key.push(column);
        Ok(Some(Key {
            columns: columns_of_key,
            how: format!("{} and each `{array}` element's `{id}`", key.how),
        }))
    }
}

/// Whether a map expression reads a field of the flattened `array`'s elements
/// (`items_asi_id` for `items`).
fn reads_element(expr: &str, array: &str) -> bool {
    let prefix = format!("{}_", array.replace('.', "_"));
    expr.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .any(|word| word.starts_with(&prefix))
}
