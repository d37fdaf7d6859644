//! Every example spec in `specs/` syncs from the simulator into MariaDB and matches the
//! simulator's ground truth, with every fault knob on (HTTP 5xx, vendor errors, throttle
//! bursts with Retry-After, hangs, torn bodies, duplicates across pages, expiring tokens,
//! drift) followed by the remedy run.

use std::collections::BTreeSet;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use qsync::sim::{Dataset, Faults, SimConfig, SimHandle, ThrottleBurst};
use serde_json::Value;

use crate::support::{repo, Test};

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The keys the target table must hold, from the simulator's ground truth.
fn expected(sim: &SimHandle, spec: &str) -> BTreeSet<String> {
    let flat = |dataset, parent: &str, array: &str, child: &str| -> BTreeSet<String> {
        sim.truth(dataset)
            .iter()
            .flat_map(|r| {
                let p = text(&r[parent]);
                r[array]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |item| format!("{p}-{}", text(&item[child])))
            })
            .collect()
    };
    let single = |dataset, field: &str| -> BTreeSet<String> {
        sim.truth(dataset).iter().map(|r| text(&r[field])).collect()
    };
    match spec {
        "jst-refunds" => flat(Dataset::JstRefunds, "as_id", "items", "asi_id"),
        "wdt-refunds" => flat(Dataset::WdtRefunds, "refund_id", "detail_list", "rec_id"),
        "jikeyun-warehouses" => single(Dataset::JikeyunWarehouses, "warehouseCode"),
        "jst-orders" => single(Dataset::JstOrders, "o_id"),
        "yida-receipts" => single(Dataset::YidaInstances, "processInstanceId"),
        "http-orders" => sim
            .truth(Dataset::HttpOrders)
            .iter()
            .filter(|r| r["status"] != "refunded")
            .flat_map(|r| {
                let id = text(&r["order_id"]);
                r["lines"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |l| format!("{id}-{}", text(&l["line_no"])))
            })
            .collect(),
        other => panic!("no ground truth for {other}"),
    }
}

/// The table and the SQL expression of its key, per spec.
fn key_query(spec: &str) -> &'static str {
    match spec {
        "jst-refunds" => "SELECT id FROM refund_list_query",
        "wdt-refunds" => "SELECT id FROM aftersales_refund_refund_search",
        "jikeyun-warehouses" => "SELECT warehouse_code FROM warehouse",
        "jst-orders" => "SELECT CAST(o_id AS CHAR) FROM jst_orders_out",
        "yida-receipts" => "SELECT extend_processInstanceId FROM hc_dd_skd",
        "http-orders" => "SELECT CONCAT(order_id, '-', lines_line_no) FROM shop_order_lines",
        other => panic!("no table for {other}"),
    }
}

fn every_fault() -> Faults {
    Faults {
        latency: Duration::from_millis(2),
        error_rate: 0.08,
        vendor_error_rate: 0.05,
        throttle_burst: Some(ThrottleBurst {
            every: 25,
            len: 2,
            retry_after_secs: 1,
        }),
        timeout_rate: 0.02,
        hang: Duration::from_millis(1500),
        truncate_rate: 0.04,
        drift: true,
        duplicate_rate: 0.1,
        token_ttl: Some(Duration::from_secs(3)),
    }
}

fn shanghai(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_specs_match_the_ground_truth_under_faults() {
    let config = SimConfig {
        seed: 7,
        records: 150,
        span_days: 1,
        faults: every_fault(),
        ..SimConfig::default()
    };
    let sim = qsync::sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (url, _guard) = qsync::sink::testing::fresh_database().await;
    let profile = std::fs::read_to_string(repo().join("specs/qsync.yaml"))
        .unwrap()
        .replace(
            "${QSYNC_SIM_URL:-http://127.0.0.1:8700}",
            &format!("http://{}", sim.addr()),
        )
        .replace(
            "${QSYNC_MYSQL_URL:-mysql://root@127.0.0.1:3306/qsync_demo}",
            &url,
        );
    let now = chrono::Utc::now();
    // Drift moves records to "now": the range reaches past it so the remedy sees them.
    let since = shanghai(now - chrono::Duration::days(2));
    let until = shanghai(now + chrono::Duration::minutes(30));
    let specs = [
        "jst-refunds",
        "jikeyun-warehouses",
        "wdt-refunds",
        "jst-orders",
        "yida-receipts",
        "http-orders",
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("qsync.yaml"), &profile).unwrap();
    for spec in specs {
        let text = std::fs::read_to_string(repo().join(format!("specs/{spec}.qsync"))).unwrap();
        // Fast retries keep the test short; the fault mix is what matters.
        let text = text.replace("@rate 1/s", "@rate 20/s")
            + "\n@retry 12 backoff 50ms max 1s\n@timeout 1s\n";
        std::fs::write(dir.path().join(format!("{spec}.qsync")), text).unwrap();
    }
    let path = dir.path().to_path_buf();
    let (since2, until2) = (since.clone(), until.clone());
    let outputs = tokio::task::spawn_blocking(move || {
        let mut outputs = Vec::new();
        for spec in specs {
            let file = format!("{spec}.qsync");
            // A run under every fault, then the omission remedy (the spec's own lookback
            // where it has one, else a re-read of the range), with the faults still on.
            let first = Test::new()
                .current_dir(&path)
                .args(&["run", &file, "--since", &since2, "--until", &until2])
                .run();
            let has_remedy = std::fs::read_to_string(path.join(&file))
                .unwrap()
                .contains("@remedy");
            let second = if has_remedy {
                Test::new()
                    .current_dir(&path)
                    .args(&["run", &file, "--remedy", "--until", &until2])
                    .run()
            } else {
                Test::new()
                    .current_dir(&path)
                    .args(&["run", &file, "--since", &since2, "--until", &until2])
                    .run()
            };
            outputs.push((spec, first.stdout, second.stdout));
        }
        outputs
    })
    .await
    .unwrap();
    let stats = sim.stats();
    let mut conn = mysql_async::Conn::from_url(&url).await.unwrap();
    for (spec, first, second) in &outputs {
        let rows: Vec<String> = conn.query(key_query(spec)).await.unwrap();
        let got: BTreeSet<String> = rows.iter().cloned().collect();
        assert_eq!(rows.len(), got.len(), "{spec}: duplicate keys");
        let want = expected(&sim, spec);
        let missing: Vec<&String> = want.difference(&got).take(5).collect();
        let extra: Vec<&String> = got.difference(&want).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{spec}: {} rows, truth {}; missing {missing:?}, extra {extra:?}\n{first}\n{second}",
            got.len(),
            want.len()
        );
    }
    let rejects: Vec<u64> = conn
        .query("SELECT COUNT(*) FROM _qsync_rejects")
        .await
        .unwrap();
    assert_eq!(rejects, vec![0]);
    conn.disconnect().await.unwrap();
    // The faults really happened.
    let stats = serde_json::to_value(&stats).unwrap();
    eprintln!("simulator stats: {stats}");
    sim.shutdown().await;
}
