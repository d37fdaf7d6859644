//! A server that refuses `LOAD DATA LOCAL` (`local_infile=0`, MySQL 8's default), played by
//! a MariaDB of the tests' own: a full sync falls back to multi-row statements, says so
//! once, and writes exactly the source's rows in every mode, again identically on a re-run.

use std::collections::BTreeSet;
use std::path::Path;

use mysql_async::prelude::Queryable;
use qsync::sink::testing::{ServerKind, TestServer};

/// A Jushuitan refunds spec into `table` in `mode`.
fn refunds_spec(table: &str, mode: &str, initial: &str) -> String {
    format!(
        r#"sync "jst refunds -> {table}"

source jushuitan "/open/refund/single/query" {{
    connection jst
    window max 12h lag 0s overlap 5m initial "{initial}"
    param modified_begin = "{{{{ window.start | datetime }}}}"
    param modified_end = "{{{{ window.end | datetime }}}}"
    @paginate page_index size 50
    @rate 500/s
    records data.datas
    id as_id
    modified modified
}}

@flatten items

target mysql "{table}" {{
    connection bi
    mode {mode}
    key id
    create
}}

map {{
    id = "<as_id>-<items_asi_id>"
    as_id = as_id : bigint
    items_qty = items_qty : int
    shop_name = shop_name : string(64)
}}
"#
    )
}

/// Runs the real binary in `dir`; returns stderr, asserting exit status 0.
fn qsync(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(crate::support::BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("qsync runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "qsync {args:?}: {}\n{}\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_without_local_infile_writes_statements_in_every_mode() {
    let server = TestServer::shared(ServerKind::NoLocalInfile).await;
    let db = server.fresh_database().await;
    let sim = qsync::sim::start(
        qsync::sim::SimConfig {
            seed: 8,
            records: 300,
            span_days: 2,
            ..qsync::sim::SimConfig::default()
        },
        "127.0.0.1:0".parse().expect("literal address"),
    )
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let c = qsync::sim::SimCredentials::default();
    std::fs::write(
        dir.path().join("qsync.yaml"),
        format!(
            "connections:\n  jst:\n    kind: jushuitan\n    base_url: {}\n    app_key: {}\n    \
             app_secret: {}\n    access_token: {}\n  bi:\n    kind: mysql\n    url: \"{}\"\n",
            sim.base_url(qsync::plan::ConnectorKind::Jushuitan),
            c.app_key,
            c.app_secret,
            c.jst_access_token,
            server.url(&db, ""),
        ),
    )
    .expect("profile written");
    let initial = (chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai)
        - chrono::Duration::days(3))
    .format("%Y-%m-%d %H:%M:%S")
    .to_string();
    let expected: BTreeSet<(String, i64)> = sim
        .truth(qsync::sim::Dataset::JstRefunds)
        .iter()
        .flat_map(|record| {
            let as_id = record["as_id"].clone();
            record["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |item| {
                    (
                        format!("{as_id}-{}", item["asi_id"]),
                        item["qty"].as_i64().expect("an item's qty is a number"),
                    )
                })
        })
        .collect();
    assert!(expected.len() > 300, "{}", expected.len());

    let mut admin = server.admin().await;
    for (mode, counter) in [
        ("upsert", "Com_insert"),
        ("replace", "Com_replace"),
        ("insert", "Com_insert"),
    ] {
        std::fs::write(
            dir.path().join(format!("{mode}.qsync")),
            refunds_spec(mode, mode, &initial),
        )
        .expect("spec written");
        let before = server.status(counter).await;
        let stderr = qsync(dir.path(), &["run", &format!("{mode}.qsync")]);
        assert!(
            server.status(counter).await > before,
            "{mode} wrote by {counter}"
        );
        // One run is one sink: told once, however many windows and connections refused.
        assert_eq!(
            stderr.matches("refuses LOAD DATA LOCAL INFILE").count(),
            1,
            "{mode}: {stderr}"
        );
        assert!(stderr.contains("SET GLOBAL local_infile = 1"), "{stderr}");
        let rows: Vec<(String, i64)> = admin
            .query(format!("SELECT id, items_qty FROM `{db}`.`{mode}`"))
            .await
            .expect("reads the table");
        let rows: BTreeSet<(String, i64)> = rows.into_iter().collect();
        assert_eq!(rows, expected, "{mode}");
        if mode == "insert" {
            // `insert` is not idempotent: a re-run is refused by key, not repeated.
            continue;
        }
        // Every window again (the cursor back to the start): the table is unchanged.
        qsync(dir.path(), &["run", &format!("{mode}.qsync"), "--full"]);
        let again: Vec<(String, i64)> = admin
            .query(format!("SELECT id, items_qty FROM `{db}`.`{mode}`"))
            .await
            .expect("reads the table");
        assert_eq!(
            again.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{mode}"
        );
    }
    let _ = admin.disconnect().await;
    sim.shutdown().await;
}
