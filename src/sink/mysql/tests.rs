//! Sink tests: statement text, cell encoding, error classes and key hashing as examples;
//! the writer against a real MariaDB/MySQL is in `writer`.

use std::hash::Hasher as _;

use serde_json::json;

use super::sql::Staging;
use super::*;
use crate::plan::{ColumnPlan, ColumnType, Expr, FieldPath, TargetPlan, WriteMode};
use crate::sink::testing::fresh_database;

fn target(table: &str, mode: WriteMode, sql: Option<&str>) -> TargetPlan {
    TargetPlan {
        connection: "bi".into(),
        table: table.split('.').map(str::to_owned).collect(),
        mode,
        key: vec!["id".into()],
        batch: 1000,
        create: true,
        sql: sql.map(str::to_owned),
    }
}

fn columns() -> Vec<ColumnPlan> {
    let col = |name: &str, ty, expr| ColumnPlan {
        name: name.into(),
        ty,
        expr,
    };
    let field = |name: &str| Expr::Field(FieldPath::new(vec![name.into()]));
    vec![
        col("id", ColumnType::String { length: Some(32) }, field("id")),
        col("qty", ColumnType::Int, field("qty")),
        col(
            "refund",
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            field("refund"),
        ),
        col(
            "note",
            ColumnType::String { length: Some(8) },
            field("note"),
        ),
        col("at", ColumnType::Datetime, field("at")),
        col("created", ColumnType::Datetime, Expr::Sql("NOW()".into())),
        col("extra", ColumnType::Json, field("extra")),
    ]
}

fn spec(mode: WriteMode) -> TableSpec {
    TableSpec::new(&target("refunds", mode, None), &columns()).expect("valid spec")
}

fn row(id: &str, qty: i64, note: &str) -> Vec<Cell> {
    vec![
        Cell::Text(id.into()),
        Cell::Int(qty),
        Cell::Decimal("12.34".into()),
        Cell::Text(note.into()),
        Cell::DateTime(
            chrono::NaiveDate::from_ymd_opt(2024, 4, 27)
                .and_then(|d| d.and_hms_opt(15, 56, 1))
                .expect("valid"),
        ),
        Cell::Json(json!({"k": [1, "\t\n\\"]}).to_string().into()),
    ]
}

#[test]
fn identifier_examples() {
    let long = "x".repeat(65);
    let examples = [
        ("refund_list", Some("`refund_list`")),
        ("售后表", Some("`售后表`")),
        ("a b", Some("`a b`")),
        ("", None),
        ("a`b", None),
        ("a\0b", None),
        ("trailing ", None),
        (long.as_str(), None),
    ];
    for (name, expected) in examples {
        assert_eq!(quote_identifier(name).ok().as_deref(), expected, "{name:?}");
    }
}

#[test]
fn create_table_text() {
    assert_eq!(
        create_table_sql(&spec(WriteMode::Replace), "utf8mb4_nopad_bin"),
        "CREATE TABLE IF NOT EXISTS `refunds` (\n  `id` VARCHAR(32) CHARACTER SET utf8mb4 \
         COLLATE utf8mb4_nopad_bin NOT NULL,\n  `qty` INT NULL,\n  \
         `refund` DECIMAL(12,2) NULL,\n  `note` VARCHAR(8) NULL,\n  `at` DATETIME NULL,\n  \
         `created` DATETIME NULL,\n  `extra` JSON NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB \
         DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
    );
}

#[test]
fn statement_text_examples() {
    let tuple = "(?, ?, ?, ?, ?, NOW(), ?)";
    let cols = "(`id`, `qty`, `refund`, `note`, `at`, `created`, `extra`)";
    let examples = [
        (
            WriteMode::Insert,
            format!("INSERT INTO `refunds` {cols} VALUES {tuple}, {tuple}"),
        ),
        (
            WriteMode::Replace,
            format!("REPLACE INTO `refunds` {cols} VALUES {tuple}, {tuple}"),
        ),
        (
            WriteMode::Ignore,
            format!("INSERT IGNORE INTO `refunds` {cols} VALUES {tuple}, {tuple}"),
        ),
        (
            WriteMode::Upsert,
            format!(
                "INSERT INTO `refunds` {cols} VALUES {tuple}, {tuple} ON DUPLICATE KEY UPDATE \
                 `qty` = VALUES(`qty`), `refund` = VALUES(`refund`), `note` = VALUES(`note`), \
                 `at` = VALUES(`at`), `created` = VALUES(`created`), `extra` = VALUES(`extra`)"
            ),
        ),
    ];
    for (mode, expected) in examples {
        assert_eq!(statement_sql(&spec(mode), 2).expect("renders"), expected);
    }
    let custom = TableSpec::new(
        &target(
            "bi.refunds",
            WriteMode::Replace,
            Some("REPLACE DELAYED INTO {{ table }} ({{ columns }}) VALUES"),
        ),
        &columns(),
    )
    .expect("valid");
    assert_eq!(
        statement_sql(&custom, 1).expect("renders"),
        format!("REPLACE DELAYED INTO `bi`.`refunds` {cols} VALUES {tuple}")
    );
    let broken = TableSpec::new(
        &target("t", WriteMode::Replace, Some("INSERT INTO {{ table")),
        &columns(),
    )
    .expect("valid");
    assert!(matches!(
        statement_sql(&broken, 1),
        Err(SinkError::Template { .. })
    ));
}

#[test]
fn load_data_text() {
    assert_eq!(
        load_data_sql(&spec(WriteMode::Replace)).expect("replace loads"),
        "LOAD DATA LOCAL INFILE 'qsync' REPLACE INTO TABLE `refunds` CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
         (`id`, `qty`, `refund`, `note`, `at`, `extra`) SET `created` = NOW()"
    );
    assert!(load_data_sql(&spec(WriteMode::Upsert))
        .expect("upsert loads a stage")
        .starts_with("LOAD DATA LOCAL INFILE 'qsync' REPLACE INTO TABLE `_qsync_stage` "));
    let staging = Staging::of(&spec(WriteMode::Upsert)).expect("upsert stages");
    assert_eq!(
        staging.merge,
        "INSERT INTO `refunds` (`id`, `qty`, `refund`, `note`, `at`, `created`, `extra`) \
         SELECT `id`, `qty`, `refund`, `note`, `at`, `created`, `extra` FROM `_qsync_stage` \
         ON DUPLICATE KEY UPDATE `qty` = VALUES(`qty`), `refund` = VALUES(`refund`), \
         `note` = VALUES(`note`), `at` = VALUES(`at`), `created` = VALUES(`created`), \
         `extra` = VALUES(`extra`)"
    );
    assert!(Staging::of(&spec(WriteMode::Replace)).is_none());
}

/// The upsert statement and staged merge each server gets, from its `SELECT VERSION()`:
/// `VALUES()` on MariaDB and MySQL before 8.0.19, the row alias from 8.0.19 on.
#[test]
fn upsert_text_per_server() {
    let tuple = "(?, ?, ?, ?, ?, NOW(), ?)";
    let cols = "`id`, `qty`, `refund`, `note`, `at`, `created`, `extra`";
    let updated = ["qty", "refund", "note", "at", "created", "extra"];
    let values: Vec<String> = updated
        .iter()
        .map(|c| format!("`{c}` = VALUES(`{c}`)"))
        .collect();
    let values = format!(" ON DUPLICATE KEY UPDATE {}", values.join(", "));
    let alias: Vec<String> = updated
        .iter()
        .map(|c| format!("`{c}` = `_qsync_new`.`{c}`"))
        .collect();
    let alias = format!(
        " AS `_qsync_new` ON DUPLICATE KEY UPDATE {}",
        alias.join(", ")
    );
    let servers = [
        ("10.11.6-MariaDB-0+deb12u1", &values),
        ("11.4.2-MariaDB-log", &values),
        ("5.7.44-log", &values),
        ("8.0.18", &values),
        ("8.0.19", &alias),
        ("8.4.3", &alias),
    ];
    for (version, tail) in servers {
        let upsert = ServerVersion::parse(version).upsert_syntax();
        let table = spec(WriteMode::Upsert).for_server(upsert);
        assert_eq!(
            statement_sql(&table, 1).expect("renders"),
            format!("INSERT INTO `refunds` ({cols}) VALUES {tuple}{tail}"),
            "{version}"
        );
        let staging = Staging::of(&table).expect("upsert stages");
        assert_eq!(
            staging.merge,
            format!("INSERT INTO `refunds` ({cols}) SELECT {cols} FROM `_qsync_stage`{tail}"),
            "{version}"
        );
        // Modes without an update clause read the same on every server.
        for mode in [WriteMode::Insert, WriteMode::Replace, WriteMode::Ignore] {
            assert_eq!(
                statement_sql(&spec(mode).for_server(upsert), 1).expect("renders"),
                statement_sql(&spec(mode), 1).expect("renders"),
                "{version} {mode:?}"
            );
        }
    }
    // A table of key columns only updates the key to itself, in either form.
    let keys_only =
        TableSpec::new(&target("links", WriteMode::Upsert, None), &columns()[..1]).expect("valid");
    assert!(statement_sql(&keys_only, 1)
        .expect("renders")
        .ends_with(" ON DUPLICATE KEY UPDATE `id` = VALUES(`id`)"));
    assert!(
        statement_sql(&keys_only.for_server(UpsertSyntax::RowAlias), 1)
            .expect("renders")
            .ends_with(" AS `_qsync_new` ON DUPLICATE KEY UPDATE `id` = `_qsync_new`.`id`")
    );
}

/// The sink reads its server once; the test server is a MariaDB, which gets `VALUES()`.
/// MariaDB has no row alias on `INSERT ... VALUES`, but the row-alias merge names the
/// staging table's alias, which it runs: the merge MySQL 8.0.19+ gets, on a real server.
#[tokio::test]
async fn the_sink_knows_its_server_and_the_row_alias_merge_runs() {
    let (url, _guard) = fresh_database().await;
    let sink = MysqlSink::connect(&url).await.expect("connects");
    let server = sink.server().clone();
    assert_eq!(server.flavor, Flavor::MariaDb, "{server:?}");
    assert!(server.version >= (10, 0, 0), "{server:?}");
    assert_eq!(server.upsert_syntax(), UpsertSyntax::Values);

    for upsert in [UpsertSyntax::Values, UpsertSyntax::RowAlias] {
        let table = spec(WriteMode::Upsert).for_server(upsert);
        sink.ensure_table(&table, true).await.expect("creates");
        let staging = Staging::of(&table).expect("upsert stages");
        let mut conn = sink.dedicated_connection().await.expect("connects");
        conn.query_drop("DELETE FROM refunds")
            .await
            .expect("empties");
        conn.query_drop(
            "INSERT INTO refunds (id, qty, note) VALUES ('a', 1, 'old'), ('b', 2, 'old')",
        )
        .await
        .expect("seeds");
        for sql in &staging.reset {
            conn.query_drop(sql).await.expect("stage reset");
        }
        conn.query_drop(
            "INSERT INTO `_qsync_stage` (id, qty, note, created) \
             VALUES ('b', 20, 'new', NOW()), ('c', 30, 'new', NOW())",
        )
        .await
        .expect("stages");
        conn.query_drop(&staging.merge).await.expect("merges");
        let rows: Vec<(String, i64, String)> = conn
            .query("SELECT id, qty, note FROM refunds ORDER BY id")
            .await
            .expect("reads");
        assert_eq!(
            rows,
            [
                ("a".into(), 1, "old".into()),
                ("b".into(), 20, "new".into()),
                ("c".into(), 30, "new".into())
            ],
            "{upsert:?}"
        );
        let _ = conn.disconnect().await;
    }
    sink.disconnect().await;
}

#[test]
fn spec_errors() {
    let mut bad_key = target("t", WriteMode::Replace, None);
    bad_key.key = vec!["nope".into()];
    let err = TableSpec::new(&bad_key, &columns()).expect_err("unknown key");
    assert_eq!(
        err.to_string(),
        "invalid target `t`: key `nope` is not a mapped column"
    );
    let err =
        TableSpec::new(&target("a`b", WriteMode::Replace, None), &columns()).expect_err("backtick");
    assert_eq!(
        err.to_string(),
        "invalid identifier `a`b`: contains a backtick"
    );
}

#[test]
fn numbers_encode_as_display_writes_them() {
    // Decimal cells are already MySQL's text (`plan::number` made them); 38 digits too.
    for text in ["0.00", "-12.30", "12345678901234567890123456789012345678"] {
        let mut out = Vec::new();
        encode_row(&[Cell::Decimal(text.into())], &mut out);
        assert_eq!(String::from_utf8(out).expect("utf8"), format!("{text}\n"));
        assert_eq!(
            to_sql_value(&Cell::Decimal(text.into())),
            mysql_async::Value::Bytes(text.as_bytes().to_vec())
        );
    }
    for n in [0, 7, -7, i64::MAX, i64::MIN] {
        let mut out = Vec::new();
        encode_row(&[Cell::Int(n)], &mut out);
        assert_eq!(String::from_utf8(out).expect("utf8"), format!("{n}\n"));
    }
}

#[test]
fn dates_and_times_encode_as_mysql_reads_them() {
    let samples = [
        (2024, 4, 7, 5, 6, 9),
        (2024, 12, 31, 23, 59, 59),
        (1, 1, 1, 0, 0, 0),
        (999, 10, 20, 10, 0, 1),
        (9999, 12, 31, 0, 0, 0),
    ];
    for (y, mo, d, h, mi, s) in samples {
        let date = chrono::NaiveDate::from_ymd_opt(y, mo, d).expect("valid date");
        let at = date.and_hms_opt(h, mi, s).expect("valid time");
        let mut out = Vec::new();
        encode_row(&[Cell::Date(date), Cell::DateTime(at)], &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            format!(
                "{}\t{}\n",
                date.format("%Y-%m-%d"),
                at.format("%Y-%m-%d %H:%M:%S")
            )
        );
    }
    // Years past 9999 are written whole (MySQL then refuses them as out of range).
    let far = chrono::NaiveDate::from_ymd_opt(12345, 1, 2).expect("valid date");
    let mut out = Vec::new();
    encode_row(&[Cell::Date(far)], &mut out);
    assert_eq!(String::from_utf8(out).expect("utf8"), "12345-01-02\n");
}

#[test]
fn encoding_escapes_and_reads_back() {
    let cells = vec![
        Cell::Text("a\tb\nc\\d\0".into()),
        Cell::Null,
        Cell::Int(-5),
        Cell::Bool(true),
        Cell::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 2).expect("valid")),
    ];
    let mut out = Vec::new();
    encode_row(&cells, &mut out);
    assert_eq!(out, b"a\\tb\\nc\\\\d\\0\t\\N\t-5\t1\t2024-01-02\n");
    let back = decode_chunk(&out, &spec(WriteMode::Replace)).expect("decodes");
    assert_eq!(back[0][0], Cell::Text("a\tb\nc\\d\0".into()));
    assert_eq!(back[0][1], Cell::Null);
}

#[test]
fn classification_examples() {
    let examples = [
        (1213, ErrorClass::Retriable),
        (1205, ErrorClass::Retriable),
        (2013, ErrorClass::Retriable),
        (1406, ErrorClass::Data),
        (1062, ErrorClass::Data),
        (1146, ErrorClass::Fatal),
        (1045, ErrorClass::Fatal),
    ];
    for (code, class) in examples {
        assert_eq!(classify_code(code), class, "{code}");
    }
}

#[test]
fn keys_hash_as_their_column_compares_them() {
    let hash = |text: &str, trim: bool| {
        let mut hasher = key_hasher();
        hash_cell(&Cell::Text(text.into()), trim, &mut hasher);
        hasher.finish()
    };
    // Binary no-pad: every difference counts.
    for (a, b) in [
        ("ABC", "abc"),
        ("x", "x "),
        ("\u{1F600}", "\u{1F389}"),
        ("e", "\u{e9}"),
    ] {
        assert_ne!(hash(a, false), hash(b, false), "{a:?} {b:?}");
    }
    assert_eq!(hash("AS-123", false), hash("AS-123", false));
    // PAD SPACE: trailing spaces do not.
    assert_eq!(hash("x", true), hash("x  ", true));
    assert_ne!(hash("x", true), hash(" x", true));
    assert_ne!(hash("ABC", true), hash("abc", true));
    let int = |n: i64| {
        let mut hasher = key_hasher();
        hash_cell(&Cell::Int(n), false, &mut hasher);
        hasher.finish()
    };
    assert_ne!(int(1), int(2));
    assert_ne!(int(1), hash("1", false), "the kind of cell is hashed too");
}

mod keys;
mod writer;
