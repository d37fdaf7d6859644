//! Rows of one window that collapse onto one target key (`key trade_no, goods_no` and a
//! gift line carrying the goods number of a real line): MySQL keeps one of them, so each is
//! counted and the first few keys are named (summary, window ledger, log), or, under
//! `@on_duplicate_key fail`, the first one fails the window.
//!
//! A row's owner is the record it came from: by `id` when the source names one, else by the
//! record's own key set (without an id, records with the same keys are taken as versions of
//! one record, as the writer does). A record read again, or a newer version of it, owns its
//! keys still; a key taken by another record, or twice by one record, is a collision.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::transform::Cell;

/// Keys named at most, per window and per run.
pub(super) const SHOWN: usize = 5;

/// The keys one window wrote so far, with their owners, and the collisions found.
#[derive(Debug, Default)]
pub(super) struct KeyOwners {
    /// Hash of a row's key cells → hash of the record that wrote it.
    owners: HashMap<u64, u64>,
    /// Rows that collapsed onto a key another row of the window has.
    pub(super) count: u64,
    /// The first [`SHOWN`] colliding keys, `trade_no=T1, goods_no=G1`.
    pub(super) first: Vec<String>,
}

impl KeyOwners {
    /// Notes the rows record `owner` made; returns the text of the first key among them that
    /// another row of the window already has.
    pub(super) fn note(
        &mut self,
        owner: u64,
        rows: &[Vec<Cell>],
        key_cells: &[usize],
        names: &[String],
    ) -> Option<String> {
        let mut mine = HashSet::new();
        let mut found = None;
        for row in rows {
            let key = key_hash(row, key_cells);
            let twice_here = !mine.insert(key);
            let taken = match self.owners.entry(key) {
                Entry::Vacant(entry) => {
                    entry.insert(owner);
                    false
                }
                Entry::Occupied(mut entry) => {
                    let other = *entry.get() != owner;
                    entry.insert(owner);
                    other
                }
            };
            if twice_here || taken {
                self.count += 1;
                let text = key_text(row, key_cells, names);
                if self.first.len() < SHOWN && !self.first.contains(&text) {
                    self.first.push(text.clone());
                }
                found.get_or_insert(text);
            }
        }
        found
    }
}

/// A hash of the owner's identity text (an id, or a record fingerprint).
pub(super) fn owner_of(identity: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    identity.hash(&mut hasher);
    hasher.finish()
}

fn key_hash(row: &[Cell], key_cells: &[usize]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for &index in key_cells {
        if let Some(cell) = row.get(index) {
            cell.render().hash(&mut hasher);
        }
        0xffu8.hash(&mut hasher);
    }
    hasher.finish()
}

/// `trade_no=T1, goods_no=G1`.
fn key_text(row: &[Cell], key_cells: &[usize], names: &[String]) -> String {
    key_cells
        .iter()
        .map(|&index| {
            let name = names.get(index).map_or("?", String::as_str);
            let value = row.get(index).map_or_else(String::new, Cell::render);
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(trade: &str, goods: &str) -> Vec<Cell> {
        vec![Cell::Text(trade.into()), Cell::Text(goods.into())]
    }

    #[test]
    fn a_key_taken_twice_by_a_record_or_by_another_record_is_a_collision() {
        let names = ["trade_no".to_owned(), "goods_no".to_owned()];
        let mut owners = KeyOwners::default();
        let t1 = owner_of("T1");
        // A gift line with the goods number of the real line: one collision.
        let found = owners.note(t1, &[row("T1", "G1"), row("T1", "G1")], &[0, 1], &names);
        assert_eq!(found.as_deref(), Some("trade_no=T1, goods_no=G1"));
        // The same record read again (a second pass, a newer version): none.
        assert_eq!(owners.note(t1, &[row("T1", "G1")], &[0, 1], &names), None);
        // Another record with the same key: one more.
        let t2 = owner_of("T2");
        assert!(owners
            .note(t2, &[row("T1", "G1")], &[0, 1], &names)
            .is_some());
        assert_eq!(owners.note(t2, &[row("T2", "G1")], &[0, 1], &names), None);
        assert_eq!(owners.count, 2);
        assert_eq!(owners.first, vec!["trade_no=T1, goods_no=G1".to_owned()]);
    }
}
