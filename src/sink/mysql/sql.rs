//! Statement text: identifier checks, the validated target ([`TableSpec`]), its DDL, the
//! multi-row statement, the `LOAD DATA` statement and the upsert staging table.
//!
//! Pure text, no connection: `qsync plan` prints what these build. Values never appear in
//! it; the only unparameterized text is a column's `sql("...")` and the custom head, both
//! written by the spec author.

use std::fmt::Write as _;

use super::dialect::UpsertSyntax;
use super::SinkError;
use crate::plan::{sql_fault, ColumnPlan, ColumnType, Expr, TargetPlan, WriteMode};

/// Longest identifier MySQL accepts.
const MAX_IDENTIFIER: usize = 64;

/// Checks an identifier part and returns it backtick-quoted.
pub fn quote_identifier(name: &str) -> Result<String, SinkError> {
    let bad = |reason| SinkError::Identifier {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.chars().count() > MAX_IDENTIFIER {
        return Err(bad("longer than 64 characters"));
    }
    if name.contains('`') {
        return Err(bad("contains a backtick"));
    }
    if name.contains('\0') {
        return Err(bad("contains a NUL character"));
    }
    if name.ends_with(' ') {
        return Err(bad("ends with a space"));
    }
    Ok(format!("`{name}`"))
}

/// One column of the target table.
#[derive(Debug, Clone)]
pub(super) struct SinkColumn {
    pub(super) name: String,
    pub(super) quoted: String,
    pub(super) ty: ColumnType,
    /// `sql("...")`: written into the statement, no cell in the row.
    pub(super) raw: Option<String>,
    pub(super) key: bool,
}

/// The validated target: table, columns, key and write mode.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// `[table]` or `[schema, table]` as written.
    pub(super) name: Vec<String>,
    /// `schema.table` as written, for messages.
    pub(super) display: String,
    /// Quoted, dotted name.
    pub(super) quoted: String,
    pub(super) columns: Vec<SinkColumn>,
    pub(super) mode: WriteMode,
    /// The custom statement head template.
    pub(super) head: Option<String>,
    /// How upserts name the inserted row: `VALUES()` until the sink that writes the table
    /// settles it for its server ([`TableSpec::for_server`]).
    pub(super) upsert: UpsertSyntax,
}

impl TableSpec {
    /// Validates the target and its columns (identifiers, key columns).
    pub fn new(target: &TargetPlan, columns: &[ColumnPlan]) -> Result<TableSpec, SinkError> {
        let display = target.table.join(".");
        if target.table.is_empty() || target.table.len() > 2 {
            return Err(SinkError::Spec {
                table: display,
                reason: "expected `table` or `schema.table`".into(),
            });
        }
        let quoted = target
            .table
            .iter()
            .map(|part| quote_identifier(part))
            .collect::<Result<Vec<_>, _>>()?
            .join(".");
        let spec_error = |reason: String| SinkError::Spec {
            table: display.clone(),
            reason,
        };
        let mut sink_columns = Vec::with_capacity(columns.len());
        let mut names = std::collections::HashSet::with_capacity(columns.len());
        for column in columns {
            if !names.insert(column.name.as_str()) {
                return Err(spec_error(format!(
                    "column `{}` is mapped twice",
                    column.name
                )));
            }
            let key = target.key.contains(&column.name);
            if key && matches!(column.ty, ColumnType::Text | ColumnType::Json) {
                return Err(spec_error(format!(
                    "key column `{}` cannot be {}; use string(n)",
                    column.name, column.ty
                )));
            }
            sink_columns.push(SinkColumn {
                quoted: quote_identifier(&column.name)?,
                name: column.name.clone(),
                ty: column.ty,
                raw: match &column.expr {
                    Expr::Sql(sql) => {
                        // `check` refuses these; a plan built any other way must not
                        // reach a text statement with them either.
                        if let Some(fault) = sql_fault(sql) {
                            return Err(spec_error(format!(
                                "`sql(...)` of column `{}` is not one SQL expression: {fault}",
                                column.name
                            )));
                        }
                        Some(sql.clone())
                    }
                    _ => None,
                },
                key,
            });
        }
        if let Some(missing) = target
            .key
            .iter()
            .find(|k| !sink_columns.iter().any(|c| &c.name == *k))
        {
            return Err(spec_error(format!(
                "key `{missing}` is not a mapped column"
            )));
        }
        if let Some(fault) = target.sql.as_deref().and_then(sql_fault) {
            return Err(spec_error(format!(
                "the `sql` head is not one statement head: {fault}"
            )));
        }
        if sink_columns.iter().all(|c| c.raw.is_some()) {
            return Err(spec_error("no bound column to write".into()));
        }
        Ok(TableSpec {
            name: target.table.clone(),
            display,
            quoted,
            columns: sink_columns,
            mode: target.mode,
            head: target.sql.clone(),
            upsert: UpsertSyntax::Values,
        })
    }

    /// The same target, its statements written in `upsert`'s form.
    pub(super) fn for_server(&self, upsert: UpsertSyntax) -> TableSpec {
        TableSpec {
            upsert,
            ..self.clone()
        }
    }

    /// The table as written in the spec.
    pub fn name(&self) -> &str {
        &self.display
    }

    /// Number of cells per row (bound columns).
    pub fn bound_columns(&self) -> usize {
        self.columns.iter().filter(|c| c.raw.is_none()).count()
    }

    /// Positions of the key columns among the bound cells.
    pub(super) fn key_cells(&self) -> Vec<usize> {
        self.columns
            .iter()
            .filter(|c| c.raw.is_none())
            .enumerate()
            .filter(|(_, c)| c.key)
            .map(|(i, _)| i)
            .collect()
    }

    pub(super) fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.key)
    }
}

/// The statement that adds a column the map writes to a table that lacks it:
/// `ALTER TABLE `refunds` ADD COLUMN `seller_memo` VARCHAR(255)`. The one spelling of the
/// fix, given by `check --db` and by a run the server refused.
pub fn add_column_sql(table: &str, column: &str, ty: ColumnType) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        quote_dotted(table),
        quote_identifier(column).unwrap_or_else(|_| format!("`{column}`")),
        column_sql(ty)
    )
}

/// `schema.table` quoted part by part.
fn quote_dotted(table: &str) -> String {
    table
        .split('.')
        .map(|part| quote_identifier(part).unwrap_or_else(|_| format!("`{part}`")))
        .collect::<Vec<_>>()
        .join(".")
}

impl TableSpec {
    /// `error` with the fix spelt out when the server refused a column this table lacks
    /// (MySQL 1054, "Unknown column 'seller_memo' in 'SELECT'", puzzling for a spec that
    /// wrote no SELECT): the `ALTER TABLE ... ADD COLUMN` line, as `check --db` gives it.
    #[must_use]
    pub fn explain(&self, error: SinkError) -> SinkError {
        const ER_BAD_FIELD_ERROR: u16 = 1054;
        match error {
            SinkError::Query {
                table,
                host,
                code: ER_BAD_FIELD_ERROR,
                message,
                class,
            } => {
                let named = message.split('\'').nth(1).unwrap_or_default();
                let message = match self
                    .columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(named))
                {
                    Some(column) => format!(
                        "{message}: table `{}` has no column `{}`, which the map writes; add \
                         it: {} (`qsync check --db` compares the map with the table)",
                        self.display,
                        column.name,
                        add_column_sql(&self.display, &column.name, column.ty)
                    ),
                    None => message,
                };
                SinkError::Query {
                    table,
                    host,
                    code: ER_BAD_FIELD_ERROR,
                    message,
                    class,
                }
            }
            other => other,
        }
    }
}

/// The MySQL DDL type of a spec column type: `decimal(12,2)` → `DECIMAL(12,2)`, `string` →
/// `VARCHAR(255)`, `bool` → `TINYINT(1)`.
pub fn column_sql(ty: ColumnType) -> String {
    match ty {
        ColumnType::Int => "INT".to_owned(),
        ColumnType::Bigint => "BIGINT".to_owned(),
        ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        ColumnType::String { length } => format!("VARCHAR({})", length.unwrap_or(255)),
        ColumnType::Text => "TEXT".to_owned(),
        ColumnType::Datetime => "DATETIME".to_owned(),
        ColumnType::Date => "DATE".to_owned(),
        ColumnType::Bool => "TINYINT(1)".to_owned(),
        ColumnType::Json => "JSON".to_owned(),
        ColumnType::Double => "DOUBLE".to_owned(),
    }
}

/// `CREATE TABLE IF NOT EXISTS` for the spec's columns: utf8mb4, primary key on `key`.
/// Text key columns get `key_collation`, a binary no-pad collation such as
/// [`BINARY_KEY_COLLATION`](super::collation::BINARY_KEY_COLLATION), so that vendor ids
/// differing only in case, accents, trailing spaces or emoji stay distinct rows.
pub fn create_table_sql(table: &TableSpec, key_collation: &str) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {} (\n", table.quoted);
    for column in &table.columns {
        let null = if column.key { "NOT NULL" } else { "NULL" };
        let collate = if column.key && matches!(column.ty, ColumnType::String { .. }) {
            format!(" CHARACTER SET utf8mb4 COLLATE {key_collation}")
        } else {
            String::new()
        };
        let _ = writeln!(
            sql,
            "  {} {}{collate} {null},",
            column.quoted,
            column_sql(column.ty)
        );
    }
    let key: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| c.key)
        .map(|c| c.quoted.as_str())
        .collect();
    if key.is_empty() {
        // No trailing comma before the closing parenthesis.
        sql.truncate(sql.len() - 2);
        sql.push('\n');
    } else {
        let _ = writeln!(sql, "  PRIMARY KEY ({})", key.join(", "));
    }
    sql.push_str(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci");
    sql
}

/// The statement head: `REPLACE INTO t (cols) VALUES`, or the rendered custom template.
pub(in crate::sink) fn statement_head(table: &TableSpec) -> Result<String, SinkError> {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.quoted.as_str()).collect();
    let columns = columns.join(", ");
    if let Some(template) = &table.head {
        let env = minijinja::Environment::new();
        let context = minijinja::context! { table => table.quoted, columns => columns };
        return env
            .render_str(template, context)
            .map(|head| head.trim_end().to_owned())
            .map_err(|error| SinkError::Template {
                table: table.display.clone(),
                reason: error.to_string(),
            });
    }
    let verb = match table.mode {
        WriteMode::Insert | WriteMode::Upsert => "INSERT INTO",
        WriteMode::Replace => "REPLACE INTO",
        WriteMode::Ignore => "INSERT IGNORE INTO",
    };
    Ok(format!("{verb} {} ({columns}) VALUES", table.quoted))
}

/// `ON DUPLICATE KEY UPDATE` for upsert: every non-key column takes the new value, named
/// as the table's [`UpsertSyntax`] says (after the rows of a `VALUES` statement, or after the
/// `FROM` table of the staged merge, where the row alias is that table's alias).
pub(in crate::sink) fn statement_tail(table: &TableSpec) -> String {
    if table.mode != WriteMode::Upsert || table.head.is_some() {
        return String::new();
    }
    let mut updates: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| !c.key)
        .map(|c| c.quoted.as_str())
        .collect();
    if updates.is_empty() {
        // Only key columns (a link or tag table): nothing to update, but a duplicate must not
        // fail. The key takes the inserted value (the same), named through `VALUES()` or the
        // alias: a bare column would be ambiguous in the staged merge (`INSERT ... SELECT`
        // from a table with the same columns).
        updates.extend(
            table
                .columns
                .iter()
                .find(|c| c.key)
                .map(|c| c.quoted.as_str()),
        );
    }
    table.upsert.update_clause(&updates)
}

/// The multi-row statement for `rows` rows, with `?` for bound cells and raw SQL inline.
pub fn statement_sql(table: &TableSpec, rows: usize) -> Result<String, SinkError> {
    let head = statement_head(table)?;
    let tuple: Vec<&str> = table
        .columns
        .iter()
        .map(|c| c.raw.as_deref().unwrap_or("?"))
        .collect();
    let tuple = format!("({})", tuple.join(", "));
    let mut sql = String::with_capacity(head.len() + rows * (tuple.len() + 2) + 64);
    sql.push_str(&head);
    for i in 0..rows {
        sql.push_str(if i == 0 { " " } else { ", " });
        sql.push_str(&tuple);
    }
    sql.push_str(&statement_tail(table));
    Ok(sql)
}

/// A lane's staging table for upserts: temporary, so private to its connection.
const STAGE: &str = "`_qsync_stage`";

/// The `LOAD DATA LOCAL INFILE` statement, or `None` when the mode needs statements.
/// Upserts load into the staging table ([`Staging`]).
pub(in crate::sink) fn load_data_sql(table: &TableSpec) -> Option<String> {
    let (into, modifier) = match (table.head.is_some(), table.mode) {
        // A custom head has no LOAD DATA equivalent.
        (true, _) => return None,
        (false, WriteMode::Insert) => (table.quoted.as_str(), ""),
        (false, WriteMode::Replace) => (table.quoted.as_str(), " REPLACE"),
        (false, WriteMode::Ignore) => (table.quoted.as_str(), " IGNORE"),
        // The last version of a key in a chunk wins in the stage, as it would in the table.
        (false, WriteMode::Upsert) => (STAGE, " REPLACE"),
    };
    let mut fields = Vec::new();
    let mut sets = Vec::new();
    for column in &table.columns {
        match &column.raw {
            None => fields.push(column.quoted.as_str()),
            Some(sql) => sets.push(format!("{} = {sql}", column.quoted)),
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'qsync'{modifier} INTO TABLE {into} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        fields.join(", ")
    );
    if !sets.is_empty() {
        let _ = write!(sql, " SET {}", sets.join(", "));
    }
    Some(sql)
}

/// What a batch runs through `LOAD DATA` when the server allows local infile, as `plan`
/// shows it: the load, and for upserts the staging table's reset and the merge. `None`
/// when the mode always uses statements (a custom head).
pub fn load_statements(table: &TableSpec) -> Option<Vec<String>> {
    let load = load_data_sql(table)?;
    Some(match Staging::of(table) {
        Some(staging) => {
            let [drop, create] = staging.reset;
            vec![drop, create, load, staging.merge]
        }
        None => vec![load],
    })
}

/// How an upsert lane writes a `LOAD DATA` chunk: into a fresh temporary copy of the
/// target, then one `INSERT ... SELECT ... ON DUPLICATE KEY UPDATE` merges it, instead of
/// a statement parsed per 1000 rows. Temporary-table DDL does not end the transaction
/// (`TRUNCATE` would, hence drop and create). With the row alias (MySQL 8.0.19+) the merge
/// names the staged row by the staging table's alias (`FROM _qsync_stage AS _qsync_new`),
/// a reference to the `SELECT`'s table that every MySQL and MariaDB accepts.
#[derive(Debug, Clone)]
pub(crate) struct Staging {
    pub(super) reset: [String; 2],
    pub(super) merge: String,
}

impl Staging {
    pub(crate) fn of(table: &TableSpec) -> Option<Staging> {
        if table.mode != WriteMode::Upsert || table.head.is_some() {
            return None;
        }
        let columns: Vec<&str> = table.columns.iter().map(|c| c.quoted.as_str()).collect();
        let columns = columns.join(", ");
        Some(Staging {
            reset: [
                format!("DROP TEMPORARY TABLE IF EXISTS {STAGE}"),
                format!("CREATE TEMPORARY TABLE {STAGE} LIKE {}", table.quoted),
            ],
            merge: format!(
                "INSERT INTO {} ({columns}) SELECT {columns} FROM {STAGE}{}",
                table.quoted,
                statement_tail(table)
            ),
        })
    }
}
