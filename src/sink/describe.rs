//! Reading a live table's shape from `information_schema`, for `qsync check --db`: the
//! columns and unique keys ([`LiveTable`]) and whether parallel loads into it would queue;
//! [`MysqlSink::inspect_target`] reads both in one call, so the command touches no driver.

use mysql_async::prelude::Queryable;

use super::connect::Transport;
use super::mysql::{MysqlSink, SinkError};

/// One column of a live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    pub name: String,
    /// `int`, `varchar`, `decimal`, ... (lowercase `DATA_TYPE`).
    pub data_type: String,
    /// The full type as MySQL prints it (`decimal(12,2)`, `int(11) unsigned`).
    pub column_type: String,
    pub char_max: Option<u64>,
    pub precision: Option<u64>,
    pub scale: Option<u64>,
    /// `auto_increment`, `on update current_timestamp()`, ...
    pub extra: String,
    /// `utf8mb4_unicode_ci`, ...; `None` for columns without text.
    pub collation: Option<String>,
}

/// A live table: its columns and its unique keys (primary key first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    pub columns: Vec<LiveColumn>,
    pub unique_keys: Vec<Vec<String>>,
}

/// What `qsync check --db` compares a map with: the target table as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTarget {
    /// The table's columns and unique keys; `None` when it does not exist.
    pub table: Option<LiveTable>,
    /// Why `LOAD DATA` into it would run one statement at a time
    /// ([`MysqlSink::serialized_loads`]); `None` when loads run side by side or the table
    /// does not exist.
    pub serialized_loads: Option<String>,
    /// Where the table lives: `host:port/database`.
    pub database: String,
    /// How the connection to it travelled (TLS or not, and the `ssl-mode` asked for).
    pub transport: Transport,
    /// The collation that compares keys exactly on this server (`utf8mb4_nopad_bin` on
    /// MariaDB, `utf8mb4_0900_bin` on MySQL 8), for the fix `check --db` suggests.
    pub binary_collation: String,
}

type ColumnRow = (
    String,
    String,
    String,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    String,
    Option<String>,
);

impl MysqlSink {
    /// Connects to `url`, reads `table` (`[table]` or `[schema, table]`) as a [`LiveTarget`]
    /// and disconnects, writing nothing.
    ///
    /// # Errors
    /// [`SinkError::Connect`] when the server cannot be reached, [`SinkError::Query`] when
    /// `information_schema` cannot be read.
    pub async fn inspect_target(url: &str, table: &[String]) -> Result<LiveTarget, SinkError> {
        let sink = MysqlSink::connect(url).await?;
        let found = async {
            let live = sink.describe(table).await?;
            let serialized_loads = match live {
                Some(_) => sink.serialized_loads(table).await?,
                None => None,
            };
            Ok(LiveTarget {
                table: live,
                serialized_loads,
                database: format!("{}/{}", sink.host(), sink.database()),
                transport: sink.transport().clone(),
                binary_collation: sink.binary_collation().await?,
            })
        }
        .await;
        sink.disconnect().await;
        found
    }

    /// `[table]` or `[schema, table]` as `(schema, table)`, the schema defaulting to the
    /// connection's database.
    fn schema_and_name(&self, table: &[String]) -> Option<(String, String)> {
        match table {
            [schema, name] => Some((schema.clone(), name.clone())),
            [name] => Some((self.database().to_owned(), name.clone())),
            _ => None,
        }
    }

    /// The shape of `table` (`[table]` or `[schema, table]`), or `None` when it does not exist.
    pub async fn describe(&self, table: &[String]) -> Result<Option<LiveTable>, SinkError> {
        let Some((schema, name)) = self.schema_and_name(table) else {
            return Ok(None);
        };
        let display = table.join(".");
        let mut conn = self.connection().await?;
        let columns: Vec<ColumnRow> = conn
            .exec(
                "SELECT COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), CHARACTER_MAXIMUM_LENGTH, \
                 NUMERIC_PRECISION, NUMERIC_SCALE, LOWER(EXTRA), COLLATION_NAME \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (schema.clone(), name.clone()),
            )
            .await
            .map_err(|e| self.query_error(&display, &e))?;
        if columns.is_empty() {
            return Ok(None);
        }
        let index_rows: Vec<(String, String)> = conn
            .exec(
                "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                 ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
                (schema, name),
            )
            .await
            .map_err(|e| self.query_error(&display, &e))?;
        let mut unique_keys: Vec<(String, Vec<String>)> = Vec::new();
        for (index, column) in index_rows {
            match unique_keys.last_mut() {
                Some((last, cols)) if *last == index => cols.push(column),
                _ => unique_keys.push((index, vec![column])),
            }
        }
        Ok(Some(LiveTable {
            columns: columns
                .into_iter()
                .map(
                    |(
                        name,
                        data_type,
                        column_type,
                        char_max,
                        precision,
                        scale,
                        extra,
                        collation,
                    )| {
                        LiveColumn {
                            name,
                            data_type,
                            column_type,
                            char_max,
                            precision,
                            scale,
                            extra,
                            collation,
                        }
                    },
                )
                .collect(),
            unique_keys: unique_keys.into_iter().map(|(_, cols)| cols).collect(),
        }))
    }

    /// Why `LOAD DATA` statements into `table` from several connections would run one at a
    /// time, or `None` when they run side by side. Each such load holds a table lock until
    /// it ends: a table of another engine than InnoDB is locked whole, and an
    /// `AUTO_INCREMENT` column takes InnoDB's table-level AUTO-INC lock unless
    /// `innodb_autoinc_lock_mode` is 2 (interleaved).
    pub async fn serialized_loads(&self, table: &[String]) -> Result<Option<String>, SinkError> {
        let Some((schema, name)) = self.schema_and_name(table) else {
            return Ok(None);
        };
        let display = table.join(".");
        let mut conn = self.connection().await?;
        // Two lookups, each naming the schema and table as constants, which information_schema
        // answers by opening only this table. The single query this replaces matched COLUMNS
        // to TABLES through a correlated subquery, and MariaDB 10.11 crashed (signal 11)
        // inside it while other sessions dropped databases (seen in this project's tests).
        let engine: Option<Option<String>> = conn
            .exec_first(
                "SELECT ENGINE FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&schema, &name),
            )
            .await
            .map_err(|e| self.query_error(&display, &e))?;
        let Some(engine) = engine else {
            return Ok(None);
        };
        if let Some(engine) = engine.filter(|e| !e.eq_ignore_ascii_case("InnoDB")) {
            return Ok(Some(format!(
                "uses the {engine} engine, which locks the whole table for each statement"
            )));
        }
        let found: Option<(i64, i64)> = conn
            .exec_first(
                "SELECT @@innodb_autoinc_lock_mode, COUNT(*) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND EXTRA LIKE '%auto_increment%'",
                (&schema, &name),
            )
            .await
            .map_err(|e| self.query_error(&display, &e))?;
        Ok(match found {
            Some((lock_mode, auto_increment)) if auto_increment > 0 && lock_mode != 2 => {
                Some(format!(
                    "has an AUTO_INCREMENT column and innodb_autoinc_lock_mode is {lock_mode}, \
                     so each LOAD DATA holds the table's AUTO-INC lock until it ends \
                     (mode 2 lets loads run side by side)"
                ))
            }
            _ => None,
        })
    }
}
