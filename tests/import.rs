//! `qsync import`: the five case-study schemes (`tests/import/schemes/`, reconstructed from
//! the fragments in `shared/seeds/`) import into specs that check, plan the example
//! samples into the same rows as the hand-written specs in `specs/`, and sync from the
//! simulator into MariaDB to the same table. Broken schemes (`tests/import/errors/`) get
//! golden diagnostics.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mysql_async::prelude::Queryable;

use crate::support::{repo, Test};

/// Per case study: the scheme / hand-written spec name, whether the import is complete,
/// the columns the import leaves as TODO (not compared), the hand-written spec's table and
/// the imported spec's table, and the key column both share.
struct Seed {
    name: &'static str,
    complete: bool,
    todo_columns: &'static [&'static str],
    hand_table: &'static str,
    import_table: &'static str,
    key: &'static str,
}

const SEEDS: &[Seed] = &[
    Seed {
        name: "jst-refunds",
        complete: true,
        todo_columns: &[],
        hand_table: "refund_list_query",
        import_table: "refund_list_query",
        key: "id",
    },
    Seed {
        name: "jikeyun-warehouses",
        complete: false,
        todo_columns: &["reconciliation_type"],
        hand_table: "warehouse",
        import_table: "warehouse",
        key: "warehouse_code",
    },
    Seed {
        name: "wdt-refunds",
        complete: true,
        todo_columns: &[],
        hand_table: "aftersales_refund_refund_search",
        import_table: "aftersales_refund_refund_search",
        key: "id",
    },
    Seed {
        name: "jst-orders",
        complete: false,
        todo_columns: &[],
        hand_table: "jst_orders_out",
        import_table: "orders_out_simple_query",
        key: "o_id",
    },
    Seed {
        name: "yida-receipts",
        complete: false,
        todo_columns: &["status"],
        hand_table: "hc_dd_skd",
        import_table: "hc_dd_skd",
        key: "extend_processInstanceId",
    },
];

/// The example profile plus the connection the Jikeyun scheme's `main_sql` names
/// (`lhhy_srm_development`), all pointed at `url` (the simulator and MySQL by default).
fn profile(sim: Option<&str>, mysql: &str) -> String {
    let mut text = std::fs::read_to_string(repo().join("specs/qsync.yaml")).unwrap();
    if let Some(sim) = sim {
        text = text.replace("${QSYNC_SIM_URL:-http://127.0.0.1:8700}", sim);
    }
    text = text.replace(
        "${QSYNC_MYSQL_URL:-mysql://root@127.0.0.1:3306/qsync_demo}",
        mysql,
    );
    text.push_str(&format!(
        "  lhhy_srm_development:\n    kind: mysql\n    url: {mysql}\n"
    ));
    text
}

/// Imports one seed into `dir` (with the given profile beside it).
fn import_seed(seed: &Seed, dir: &Path) -> String {
    let scheme = repo().join(format!("tests/import/schemes/{}.json", seed.name));
    Test::new()
        .args(&[
            "import",
            scheme.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
            "--check",
        ])
        .status(i32::from(!seed.complete))
        .run();
    std::fs::read_to_string(dir.join(format!("{}.qsync", seed.name))).unwrap()
}

/// The rows `qsync plan` prints: column → value, per row.
fn planned_rows(spec: &Path, sample: &Path, profile: &Path) -> Vec<BTreeMap<String, String>> {
    let out = Test::new()
        .args(&[
            "plan",
            spec.to_str().unwrap(),
            "--sample",
            sample.to_str().unwrap(),
            "--profile",
            profile.to_str().unwrap(),
            "--at",
            "2024-03-10 12:00:00",
            "--rows",
            "1000",
        ])
        .env("DINGTALK_SYSTEM_TOKEN", "sim-system-token")
        .run();
    assert!(out.stdout.contains(", 0 rejected)"), "{}", out.stdout);
    let mut rows = Vec::new();
    for line in out.stdout.lines() {
        if line.starts_with("  row ") {
            rows.push(BTreeMap::new());
        } else if let (Some(row), Some(cell)) = (rows.last_mut(), line.strip_prefix("    ")) {
            if line.starts_with("  ") && !cell.starts_with(' ') {
                let (name, value) = cell.split_once(' ').unwrap_or((cell, ""));
                row.insert(name.to_owned(), value.trim().to_owned());
            }
        } else if !line.starts_with("  ") && !rows.is_empty() {
            break;
        }
    }
    rows
}

/// Values equal as the table holds them: `12.50` is `12.5`, `"1"` is `1`.
fn same(a: &str, b: &str) -> bool {
    use qsync::plan::number::ExactNumber;
    if a == b {
        return true;
    }
    match (ExactNumber::parse(a.trim()), ExactNumber::parse(b.trim())) {
        (Some(x), Some(y)) => x.cmp(&y).is_eq(),
        _ => false,
    }
}

#[test]
fn seeds_import_check_and_plan_the_samples_like_the_examples() {
    let dir = tempfile::tempdir().unwrap();
    let profile_path = dir.path().join("qsync.yaml");
    std::fs::write(
        &profile_path,
        profile(None, "mysql://root@127.0.0.1:3306/x"),
    )
    .unwrap();
    for seed in SEEDS {
        let spec = import_seed(seed, dir.path());
        insta::assert_snapshot!(format!("seed_{}", seed.name), spec);
        let sample = repo().join(format!("specs/samples/{}.json", seed.name));
        let imported = planned_rows(
            &dir.path().join(format!("{}.qsync", seed.name)),
            &sample,
            &profile_path,
        );
        let hand = planned_rows(
            &repo().join(format!("specs/{}.qsync", seed.name)),
            &sample,
            &profile_path,
        );
        assert!(!hand.is_empty(), "{}: no rows", seed.name);
        assert_eq!(imported.len(), hand.len(), "{}: row counts", seed.name);
        let shared: Vec<&String> = hand[0]
            .keys()
            .filter(|c| imported[0].contains_key(*c) && !seed.todo_columns.contains(&c.as_str()))
            .collect();
        assert!(
            shared.contains(&&seed.key.to_owned()),
            "{}: {shared:?}",
            seed.name
        );
        for (i, (a, b)) in imported.iter().zip(&hand).enumerate() {
            for column in &shared {
                assert!(
                    same(&a[*column], &b[*column]),
                    "{} row {}: `{column}` is {:?} imported, {:?} by hand",
                    seed.name,
                    i + 1,
                    a[*column],
                    b[*column]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_seeds_sync_from_the_simulator_to_the_same_tables() {
    let config = qsync::sim::SimConfig {
        seed: 11,
        records: 60,
        span_days: 1,
        ..qsync::sim::SimConfig::default()
    };
    let sim = qsync::sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sim_url = format!("http://{}", sim.addr());
    let (hand_url, _hand_guard) = qsync::sink::testing::fresh_database().await;
    let (import_url, _import_guard) = qsync::sink::testing::fresh_database().await;
    let hand_dir = tempfile::tempdir().unwrap();
    let import_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        hand_dir.path().join("qsync.yaml"),
        profile(Some(&sim_url), &hand_url),
    )
    .unwrap();
    std::fs::write(
        import_dir.path().join("qsync.yaml"),
        profile(Some(&sim_url), &import_url),
    )
    .unwrap();
    for seed in SEEDS {
        import_seed(seed, import_dir.path());
        std::fs::copy(
            repo().join(format!("specs/{}.qsync", seed.name)),
            hand_dir.path().join(format!("{}.qsync", seed.name)),
        )
        .unwrap();
    }
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let since = (now - chrono::Duration::days(2))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let until = (now + chrono::Duration::minutes(5))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let (hand_path, import_path) = (hand_dir.path().to_owned(), import_dir.path().to_owned());
    tokio::task::spawn_blocking(move || {
        for seed in SEEDS {
            let file = format!("{}.qsync", seed.name);
            for dir in [&hand_path, &import_path] {
                Test::new()
                    .current_dir(dir)
                    .env("DINGTALK_SYSTEM_TOKEN", "sim-system-token")
                    .args(&["run", &file, "--since", &since, "--until", &until])
                    .run();
            }
        }
    })
    .await
    .unwrap();
    let mut hand = mysql_async::Conn::from_url(&hand_url).await.unwrap();
    let mut imported = mysql_async::Conn::from_url(&import_url).await.unwrap();
    for seed in SEEDS {
        let hand_columns: BTreeSet<String> = table_columns(&mut hand, seed.hand_table)
            .await
            .into_iter()
            .collect();
        let shared: Vec<String> = table_columns(&mut imported, seed.import_table)
            .await
            .into_iter()
            .filter(|c| hand_columns.contains(c) && !seed.todo_columns.contains(&c.as_str()))
            .collect();
        assert!(
            shared.contains(&seed.key.to_owned()),
            "{}: {shared:?}",
            seed.name
        );
        let select = |table: &str| {
            let cells: Vec<String> = shared
                .iter()
                .map(|c| format!("COALESCE(CAST(`{c}` AS CHAR), '<null>')"))
                .collect();
            format!(
                "SELECT CONCAT_WS('\\t', {}) FROM `{table}` ORDER BY CAST(`{}` AS CHAR)",
                cells.join(", "),
                seed.key
            )
        };
        let want: Vec<String> = hand.query(select(seed.hand_table)).await.unwrap();
        let got: Vec<String> = imported.query(select(seed.import_table)).await.unwrap();
        assert!(
            !want.is_empty(),
            "{}: the hand-written spec synced nothing",
            seed.name
        );
        assert_eq!(got.len(), want.len(), "{}: row counts", seed.name);
        for (g, w) in got.iter().zip(&want) {
            let equal = g.split('\t').zip(w.split('\t')).all(|(a, b)| same(a, b));
            assert!(
                equal,
                "{} ({shared:?}):\n imported {g}\n by hand  {w}",
                seed.name
            );
        }
    }
    hand.disconnect().await.unwrap();
    imported.disconnect().await.unwrap();
    sim.shutdown().await;
}

async fn table_columns(conn: &mut mysql_async::Conn, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    );
    conn.query(sql).await.unwrap()
}

#[test]
fn broken_schemes_report_their_diagnostics() {
    let dir = repo().join("tests/import/errors");
    insta::glob!("import/errors/*.json", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let out = Test::new()
            .args(&["import", name])
            .current_dir(&dir)
            .status(1)
            .run();
        insta::assert_snapshot!(format!("{}\n--- spec\n{}", out.stderr, out.stdout));
        // The README's promise: even an incomplete spec passes `qsync check` as written,
        // unless the import says it does not.
        let says_not = out
            .stdout
            .contains("# TODO(qsync::import::spec_does_not_check)");
        Test::new()
            .file("imported.qsync", &out.stdout)
            .args(&["check", "imported.qsync"])
            .status(i32::from(says_not))
            .run();
    });
}

#[test]
fn every_import_code_has_a_golden_scheme() {
    let snapshots: String = std::fs::read_dir(repo().join("tests/snapshots"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    let missing: Vec<&&str> = qsync::import::codes::ALL
        .iter()
        .filter(|c| !snapshots.contains(**c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a golden scheme: {missing:?}"
    );
}

#[test]
fn two_half_files_import_as_one_scheme() {
    let out = Test::new()
        .file(
            "source.json",
            r#"{"api": "erp.warehouse.get", "id": "warehouseId",
                "request": [{"field": "pageIndex", "value": "{PAGINATION_START_PAGE}"}],
                "pagination": {"pageSize": 20}}"#,
        )
        .file(
            "target.json",
            r#"{"target": {"api": "execute", "request": [{"field": "id", "type": "bigint", "value": "{warehouseId}"}],
                "otherRequest": [{"field": "main_sql", "value": "REPLACE INTO w (id) VALUES"}]}}"#,
        )
        .args(&["import", "--source", "source.json", "--target", "target.json", "--check"])
        .run();
    assert!(
        out.stdout.contains("@paginate pageIndex size 20\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("    key id  # the column of the source's id `warehouseId`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("source.json + target.json → stdout: complete, check ok"),
        "{}",
        out.stderr
    );
}

#[test]
fn json_findings_name_code_path_and_place() {
    let scheme = repo().join("tests/import/schemes/yida-receipts.json");
    let out = Test::new()
        .args(&["import", scheme.to_str().unwrap(), "--format", "json"])
        .status(1)
        .run();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let scheme = &doc["schemes"][0];
    assert_eq!(scheme["complete"], false);
    assert!(scheme["spec"]
        .as_str()
        .unwrap()
        .starts_with("# Imported by `qsync import`"));
    let todo = scheme["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["severity"] == "error")
        .unwrap();
    assert_eq!(todo["code"], "qsync::import::no_value");
    assert_eq!(todo["path"], "$.target.request[0].children[5]");
    assert_eq!(todo["line"], 48);
    assert_eq!(todo["column"], 11);
}

#[test]
fn usage_errors() {
    let out = Test::new()
        .args(&["import", "nowhere.json"])
        .status(2)
        .run();
    assert!(
        out.stderr
            .contains("`nowhere.json`: no such file or folder"),
        "{}",
        out.stderr
    );
    let schemes = repo().join("tests/import/schemes");
    let out = Test::new()
        .args(&["import", schemes.to_str().unwrap()])
        .status(2)
        .run();
    assert!(
        out.stderr.contains("5 schemes need --out <folder>"),
        "{}",
        out.stderr
    );
    let out = Test::new()
        .args(&["import", "--connector", "sap", "x.json"])
        .status(2)
        .run();
    assert!(
        out.stderr.contains("`sap` is not a connector"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_existing_profile_is_left_alone() {
    let schemes = repo().join("tests/import/schemes/jst-refunds.json");
    let test = Test::new().file("out/qsync.yaml", "# mine\n");
    let dir = test.path().to_owned();
    test.args(&["import", schemes.to_str().unwrap(), "--out", "out"])
        .run();
    assert_eq!(
        std::fs::read_to_string(dir.join("out/qsync.yaml")).unwrap(),
        "# mine\n"
    );
    let stub = std::fs::read_to_string(dir.join("out/qsync.import.yaml")).unwrap();
    assert!(stub.contains("  jst_qimen:\n    kind: qimen\n"), "{stub}");
    assert!(stub.contains("app_secret: ${QIMEN_APP_SECRET}"), "{stub}");
}

/// The spec's `# TODO(` lines and the count the summary line gives.
fn todo_counts(spec: &str, stderr: &str) -> (usize, Option<usize>) {
    let lines = spec
        .lines()
        .filter(|l| l.trim_start().starts_with("# TODO("))
        .count();
    let said = stderr
        .split("incomplete, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok());
    (lines, said)
}

#[test]
fn the_connector_flag_maps_qimen_methods_to_open_api_paths() {
    let scheme = |api: &str| {
        format!(
            r#"{{"source": {{"api": "{api}", "id": "as_id",
                 "request": [{{"field": "page_index", "value": "{{PAGINATION_START_PAGE}}"}},
                             {{"field": "start_time", "value": "{{{{LAST_SYNC_TIME|datetime}}}}"}}]}},
                "target": {{"api": "execute", "request": [{{"field": "as_id", "value": "{{as_id}}"}}],
                 "otherRequest": [{{"field": "main_sql", "value": "REPLACE INTO r (as_id) VALUES"}}]}}}}"#
        )
    };
    let out = Test::new()
        .file("refunds.json", &scheme("jushuitan.refund.list.query"))
        .args(&["import", "refunds.json", "--connector", "jushuitan"])
        .run();
    assert!(
        out.stdout
            .contains("source jushuitan \"/open/refund/single/query\" {"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "    param modified_begin = \"{{ LAST_SYNC_TIME | datetime }}\"  # the scheme's `start_time`, as this endpoint names it\n"
        ),
        "{}",
        out.stdout
    );
    let out = Test::new()
        .file("orders.json", &scheme("jushuitan.order.list.query"))
        .args(&["import", "orders.json", "--connector", "jushuitan"])
        .status(1)
        .run();
    insta::assert_snapshot!(format!("{}\n--- spec\n{}", out.stderr, out.stdout));
}

#[test]
fn a_folder_imports_every_file_it_can_read() {
    let good = std::fs::read_to_string(repo().join("tests/import/schemes/jikeyun-warehouses.json"))
        .unwrap();
    let test = Test::new()
        .file("in/a-good.json", &good)
        .file("in/nested/c-plain.json", &good);
    let dir = test.path().to_owned();
    // A UTF-8 byte order mark, a GBK file (the platform's Chinese Windows users) and
    // bytes that are no text.
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(good.as_bytes());
    std::fs::write(dir.join("in/b-bom.json"), bom).unwrap();
    let (gbk, _, _) = encoding_rs::GBK.encode(&good);
    std::fs::write(dir.join("in/d-gbk.json"), &*gbk).unwrap();
    std::fs::write(dir.join("in/e-binary.json"), b"{\"name\": \"\xff\xfe\"}").unwrap();
    let out = test.args(&["import", "in", "--out", "out"]).status(1).run();
    for stem in ["a-good", "b-bom", "c-plain", "d-gbk"] {
        let spec = std::fs::read_to_string(dir.join(format!("out/{stem}.qsync"))).unwrap();
        assert!(
            spec.contains("sync \"对账系统--仓库信息\""),
            "{stem}:\n{spec}"
        );
        assert!(spec.contains("# 仓库编码"), "{stem}:\n{spec}");
    }
    assert!(
        out.stderr
            .contains("the file is not UTF-8: it was read as GB18030 (GBK)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("qsync::import::unreadable"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("e-binary.json → out/e-binary.qsync: incomplete"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches(" → out/").count(),
        5,
        "one summary line per file: {}",
        out.stderr
    );
}

#[test]
fn existing_specs_are_not_overwritten_without_force() {
    let scheme = repo().join("tests/import/schemes/jst-refunds.json");
    let scheme = scheme.to_str().unwrap();
    let test = Test::new().file("out/jst-refunds.qsync", "# mine\n");
    let dir = test.path().to_owned();
    let out = test
        .args(&["import", scheme, "--out", "out"])
        .status(1)
        .run();
    assert!(
        out.stderr.contains(
            "error: `out/jst-refunds.qsync` already exists; nothing was written (pass --force to overwrite)"
        ),
        "{}",
        out.stderr
    );
    let spec = dir.join("out/jst-refunds.qsync");
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), "# mine\n");
    assert!(!dir.join("out/qsync.yaml").exists());
    Test::new()
        .current_dir(&dir)
        .args(&["import", scheme, "--out", "out", "--force"])
        .run();
    assert!(std::fs::read_to_string(&spec)
        .unwrap()
        .starts_with("# Imported by `qsync import`"));
}

#[test]
fn credentials_moved_to_the_environment_are_listed_and_named_when_unset() {
    let scheme = repo().join("tests/import/schemes/yida-receipts.json");
    let test = Test::new();
    let dir = test.path().to_owned();
    let out = test
        .args(&["import", scheme.to_str().unwrap(), "--out", "out"])
        .status(1)
        .run();
    assert!(
        out.stderr
            .contains("  needs the environment variable DINGTALK_SYSTEM_TOKEN where qsync runs"),
        "{}",
        out.stderr
    );
    let stub = std::fs::read_to_string(dir.join("out/qsync.yaml")).unwrap();
    assert!(
        stub.contains("#   DINGTALK_SYSTEM_TOKEN  (read by yida-receipts.qsync)\n"),
        "{stub}"
    );
    std::fs::write(
        dir.join("out/qsync.yaml"),
        profile(None, "mysql://root@127.0.0.1:3306/x"),
    )
    .unwrap();
    let out = Test::new()
        .current_dir(&dir.join("out"))
        .args(&[
            "plan",
            "yida-receipts.qsync",
            "--sample",
            repo()
                .join("specs/samples/yida-receipts.json")
                .to_str()
                .unwrap(),
        ])
        .status(1)
        .run();
    assert!(
        out.stderr.contains(
            "error: cannot render parameter `systemToken`: the environment variable `DINGTALK_SYSTEM_TOKEN` is not set"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_half_that_is_not_json_leaves_the_other_half_translated() {
    // `"type": int` is how the case study prints a field (seed 001): not JSON.
    let out = Test::new()
        .file(
            "source.json",
            r#"{"api": "warehouse.list", "id": "warehouseId", "pagination": {"pageSize": 20},
                "request": [{"field": "pageIndex", "value": "{PAGINATION_START_PAGE}"},
                            {"field": "since", "value": "{{LAST_SYNC_TIME|datetime}}"}]}"#,
        )
        .file(
            "target.json",
            r#"{"api": "execute", "request": [{"field": "n", "type": int, "value": "{n}"}]}"#,
        )
        .args(&[
            "import",
            "--source",
            "source.json",
            "--target",
            "target.json",
            "--connector",
            "jikeyun",
        ])
        .status(1)
        .run();
    assert!(
        out.stdout.contains("source jikeyun \"warehouse.list\" {"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("    @paginate pageIndex size 20\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("# TODO(qsync::import::not_json): target.json is not JSON"),
        "{}",
        out.stdout
    );
    let (lines, said) = todo_counts(&out.stdout, &out.stderr);
    assert_eq!(Some(lines), said, "{}\n{}", out.stderr, out.stdout);
}

#[test]
fn a_wrapped_half_gives_its_name_as_the_title_and_check_names_its_profile() {
    let test = Test::new()
        .file(
            "source.json",
            r#"{"name": "吉客云-仓库", "source": {"api": "erp.warehouse.get", "id": "warehouseId"}}"#,
        )
        .file(
            "target.json",
            r#"{"api": "execute", "name": "id", "request": [{"field": "id", "type": "bigint", "value": "{warehouseId}"}],
                "otherRequest": [{"field": "main_sql", "value": "REPLACE INTO w (id) VALUES"}]}"#,
        )
        .file("qsync.yaml", &profile(None, "mysql://root@127.0.0.1:3306/x"));
    let out = test
        .args(&[
            "import",
            "--source",
            "source.json",
            "--target",
            "target.json",
            "--check",
        ])
        .run();
    assert!(
        out.stdout.contains("sync \"吉客云-仓库\"\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(
            "source.json + target.json → stdout: complete, check ok (profile qsync.yaml)"
        ),
        "{}",
        out.stderr
    );
}
