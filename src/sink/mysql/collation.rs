//! How a table's key columns compare text, and what the server says a statement wrote.
//!
//! Vendor ids are exact strings: `ABC` and `abc`, `x` and `x `, `😀` and `🎉` are different
//! records. Under `utf8mb4_unicode_ci` they are one key, and a `REPLACE` of the second
//! silently overwrites the first. Tables made by `create` therefore get a binary, no-pad
//! collation on their text key columns ([`binary_collation`] names it per server), and the
//! writer reads the live key columns' collation ([`KeyCompare::of`]) so that its lane
//! routing never splits two rows the server sees as one key (the later version must win).

/// The binary, no-pad collation `plan` prints (MariaDB's name; MySQL 8 calls it
/// `utf8mb4_0900_bin`, and the sink asks the server which one it has).
pub const BINARY_KEY_COLLATION: &str = "utf8mb4_nopad_bin";

/// The collations that compare utf8mb4 text byte for byte, trailing spaces included, best
/// first: MariaDB ≥ 10.2 and MySQL ≥ 8.0 each have one of them.
pub(super) const NO_PAD_BINARY: [&str; 2] = ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"];

/// What the server falls back to when it has no no-pad binary collation (MySQL 5.7): exact
/// on case and accents, but `x` and `x ` are one key.
pub(super) const PAD_BINARY: &str = "utf8mb4_bin";

/// How a table's key compares text, the loosest of its key columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyCompare {
    /// Byte for byte (binary no-pad collations, and keys without text).
    Exact,
    /// Byte for byte after trailing spaces are dropped (`utf8mb4_bin` and other PAD SPACE
    /// binary collations).
    PadSpace,
    /// By a linguistic collation (`_ci`, `_ai`, or any non-binary one): keys that differ in
    /// case, accents, or (under the old UCA 4.0 collations) between any two emoji are one.
    Folding,
}

impl KeyCompare {
    /// How a column with collation `name` (`None`: not a text column) compares keys.
    pub fn of(name: Option<&str>) -> KeyCompare {
        let Some(name) = name else {
            return KeyCompare::Exact;
        };
        let name = name.to_ascii_lowercase();
        if name == "binary" || name.ends_with("_nopad_bin") || name.ends_with("_0900_bin") {
            KeyCompare::Exact
        } else if name.ends_with("_bin") {
            KeyCompare::PadSpace
        } else {
            KeyCompare::Folding
        }
    }

    /// What two keys that the server takes for one may differ in, for messages.
    pub fn merges(self) -> &'static str {
        match self {
            KeyCompare::Exact => "nothing",
            KeyCompare::PadSpace => "trailing spaces",
            KeyCompare::Folding => "case, accents or (under older collations) emoji",
        }
    }
}

/// The live table's key comparison and, when it is not exact, the loosest key column and
/// its collation (for the warning).
#[derive(Debug, Clone)]
pub(super) struct LiveKey {
    pub(super) compare: KeyCompare,
    pub(super) column: String,
    pub(super) collation: String,
}

impl super::MysqlSink {
    /// The server's binary no-pad utf8mb4 collation ([`NO_PAD_BINARY`]), else
    /// `utf8mb4_bin`; asked once per sink.
    ///
    /// # Errors
    /// [`SinkError::Query`](super::SinkError::Query) when `information_schema` cannot be read.
    pub async fn binary_collation(&self) -> Result<String, super::SinkError> {
        use mysql_async::prelude::Queryable as _;
        self.inner
            .binary_collation
            .get_or_try_init(|| async {
                let mut conn = self.connection().await?;
                let found: Vec<String> = conn
                    .exec(
                        "SELECT COLLATION_NAME FROM information_schema.COLLATIONS \
                         WHERE COLLATION_NAME IN (?, ?)",
                        (NO_PAD_BINARY[0], NO_PAD_BINARY[1]),
                    )
                    .await
                    .map_err(|e| self.query_error("information_schema.COLLATIONS", &e))?;
                Ok(NO_PAD_BINARY
                    .iter()
                    .find(|name| found.iter().any(|f| f.eq_ignore_ascii_case(name)))
                    .map_or(PAD_BINARY, |name| *name)
                    .to_owned())
            })
            .await
            .cloned()
    }

    /// How `table`'s live key columns compare text, read from the server once per sink and
    /// table, and warned about then when it is not exact. A table that cannot be found
    /// counts as [`KeyCompare::Folding`]: its windows go on one connection, which is right
    /// under any collation.
    pub(super) async fn key_compare(
        &self,
        table: &super::TableSpec,
    ) -> Result<KeyCompare, super::SinkError> {
        let known = self
            .inner
            .key_compare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&table.name)
            .copied();
        if let Some(known) = known {
            return Ok(known);
        }
        let live = self.describe(&table.name).await?;
        let key = match &live {
            None => None,
            Some(live) => table
                .columns
                .iter()
                .filter(|c| c.key)
                .filter_map(|c| {
                    let found = live
                        .columns
                        .iter()
                        .find(|l| l.name.eq_ignore_ascii_case(&c.name))?;
                    Some(LiveKey {
                        compare: KeyCompare::of(found.collation.as_deref()),
                        column: c.name.clone(),
                        collation: found.collation.clone().unwrap_or_default(),
                    })
                })
                .max_by_key(|k| k.compare),
        };
        let compare = match (&live, &key) {
            (None, _) => KeyCompare::Folding,
            (Some(_), None) => KeyCompare::Exact,
            (Some(_), Some(key)) => key.compare,
        };
        if let Some(key) = key.filter(|k| k.compare != KeyCompare::Exact) {
            let name = &table.display;
            tracing::warn!(table = %name,
                "key column `{}` of `{name}` compares with collation {}: vendor ids that differ \
                 only in {} are one row there (the newest version wins; its windows are \
                 written on one connection). To keep them apart: ALTER TABLE {} MODIFY {} \
                 ... CHARACTER SET utf8mb4 COLLATE {}",
                key.column, key.collation, key.compare.merges(), table.quoted,
                super::quote_identifier(&key.column).unwrap_or_default(),
                self.binary_collation().await.unwrap_or_else(|_| BINARY_KEY_COLLATION.to_owned()));
        }
        self.inner
            .key_compare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(table.name.clone(), compare);
        Ok(compare)
    }
}

/// What one statement (or load) reported it wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Written {
    /// Rows the server stored: new rows plus rows that replaced or updated a row of the
    /// same key. Rows `ignore` skipped and upserts that changed nothing are not counted.
    pub(super) rows: u64,
    /// Of `rows`, those that met an existing row of the same key.
    pub(super) replaced: u64,
}

/// `Records: N  Duplicates: D  Warnings: W` (multi-row statements) or `Records: N  Deleted:
/// D  Skipped: S  Warnings: W` (`LOAD DATA`), as numbers; absent fields are `None`.
fn info_field(info: &str, field: &str) -> Option<u64> {
    let at = info.find(field)? + field.len();
    info[at..]
        .trim_start_matches([':', ' '])
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// What a statement of `mode` that carried `sent` rows wrote, from the server's affected
/// rows and info string. REPLACE counts a replaced row as 2 affected (delete, insert); an
/// upsert counts an updated row as 2 and an unchanged one as 0 (no `CLIENT_FOUND_ROWS`).
pub(super) fn written(
    mode: crate::plan::WriteMode,
    sent: u64,
    affected: u64,
    info: &str,
) -> Written {
    use crate::plan::WriteMode;
    let records = info_field(info, "Records").unwrap_or(sent);
    let duplicates = info_field(info, "Duplicates").or_else(|| info_field(info, "Deleted"));
    match mode {
        WriteMode::Insert | WriteMode::Ignore => Written {
            rows: affected,
            replaced: 0,
        },
        WriteMode::Replace => {
            let replaced = duplicates.unwrap_or_else(|| affected.saturating_sub(records));
            Written {
                rows: records,
                replaced: replaced.min(records),
            }
        }
        WriteMode::Upsert => {
            // new + 2 × updated = affected, new = records − duplicates.
            // One row, no info string: 0 unchanged, 1 new, 2 updated.
            let duplicates = duplicates.unwrap_or(if affected == 1 { 0 } else { records });
            let new = records.saturating_sub(duplicates);
            let updated = (affected.saturating_sub(new) / 2).min(duplicates);
            Written {
                rows: new + updated,
                replaced: updated,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::WriteMode;

    #[test]
    fn collations_by_name() {
        let examples = [
            (None, KeyCompare::Exact),
            (Some("utf8mb4_nopad_bin"), KeyCompare::Exact),
            (Some("utf8mb4_0900_bin"), KeyCompare::Exact),
            (Some("binary"), KeyCompare::Exact),
            (Some("utf8mb4_bin"), KeyCompare::PadSpace),
            (Some("latin1_bin"), KeyCompare::PadSpace),
            (Some("utf8mb4_unicode_ci"), KeyCompare::Folding),
            (Some("utf8mb4_general_ci"), KeyCompare::Folding),
            (Some("utf8mb4_0900_ai_ci"), KeyCompare::Folding),
            (Some("utf8mb4_0900_as_cs"), KeyCompare::Folding),
        ];
        for (name, compare) in examples {
            assert_eq!(KeyCompare::of(name), compare, "{name:?}");
        }
    }

    #[test]
    fn written_from_affected_rows_and_info() {
        let w = |rows, replaced| Written { rows, replaced };
        // 6 rows, 3 of them over an existing key: REPLACE affects 9.
        let replace = written(
            WriteMode::Replace,
            6,
            9,
            "Records: 6  Duplicates: 3  Warnings: 0",
        );
        assert_eq!(replace, w(6, 3));
        let load = written(
            WriteMode::Replace,
            6,
            9,
            "Records: 6  Deleted: 3  Skipped: 0  Warnings: 0",
        );
        assert_eq!(load, w(6, 3));
        assert_eq!(written(WriteMode::Replace, 1, 2, ""), w(1, 1));
        assert_eq!(written(WriteMode::Replace, 1, 1, ""), w(1, 0));
        // Upsert: 2 new, 1 updated, 1 unchanged: affected 2 + 2 + 0.
        let upsert = written(
            WriteMode::Upsert,
            4,
            4,
            "Records: 4  Duplicates: 2  Warnings: 0",
        );
        assert_eq!(upsert, w(3, 1));
        assert_eq!(written(WriteMode::Upsert, 1, 0, ""), w(0, 0));
        assert_eq!(written(WriteMode::Upsert, 1, 2, ""), w(1, 1));
        assert_eq!(written(WriteMode::Insert, 5, 5, "Records: 5"), w(5, 0));
        assert_eq!(
            written(
                WriteMode::Ignore,
                5,
                3,
                "Records: 5  Duplicates: 2  Warnings: 0"
            ),
            w(3, 0)
        );
    }
}
