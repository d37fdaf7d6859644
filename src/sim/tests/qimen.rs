//! Qimen against the simulator: its Jushuitan and WDT routes page to the truth, rejected
//! signatures, timestamps and `wdt_sign`, and throttling with code 7.

use super::*;

#[tokio::test]
async fn qimen_jushuitan_refunds_page_to_truth() {
    let sim = sim().await;
    let qm = connector(&sim, ConnectorKind::Qimen, &[]);
    let (from, to) = window();
    let mut seen = Vec::new();
    for page in 1..=20 {
        let v = data(
            call(
                qm.as_ref(),
                &api(
                    "jushuitan.refund.list.query",
                    HttpMethod::Post,
                    json!({"start_time": from, "end_time": to, "page_index": page, "page_size": 15}),
                ),
                None,
            )
            .await,
        );
        seen.extend(records(&v, "data.datas"));
        if v["data"]["has_next"] != json!(true) {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "as_id").into_iter().collect();
    assert_eq!(seen.len(), RECORDS);
    assert_eq!(got, truth_ids(&sim, Dataset::JstRefunds));
    sim.shutdown().await;
}

#[tokio::test]
async fn qimen_wdt_refunds_page_from_one_to_truth() {
    let sim = sim().await;
    let qm = connector(&sim, ConnectorKind::Qimen, &[]);
    let (from, to) = window();
    let mut seen = Vec::new();
    for page in 1..=20 {
        let v = data(
            call(
                qm.as_ref(),
                &api(
                    "wdt.aftersales.refund.refund.search",
                    HttpMethod::Post,
                    json!({"pager": {"page_size": 10, "page_no": page},
                           "params": {"modified_from": from, "modified_to": to}}),
                ),
                None,
            )
            .await,
        );
        assert_eq!(v["data"]["total_count"], json!(RECORDS));
        let page_records = records(&v, "data.order");
        let short = page_records.len() < 10;
        seen.extend(page_records);
        if short {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "refund_id").into_iter().collect();
    assert_eq!(got.len(), RECORDS);
    assert_eq!(got, truth_ids(&sim, Dataset::WdtRefunds));
    sim.shutdown().await;
}

#[tokio::test]
async fn qimen_rejects_bad_sign_stale_timestamp_and_bad_wdt_sign() {
    let sim = sim().await;
    let (from, to) = window();
    let refunds = api(
        "jushuitan.refund.list.query",
        HttpMethod::Post,
        json!({"start_time": from, "end_time": to}),
    );
    let wrong = connector(&sim, ConnectorKind::Qimen, &[("app_secret", "nope")]);
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &refunds, None).await),
        "25/isv.invalid-signature"
    );
    let good = connector(
        &sim,
        ConnectorKind::Qimen,
        &[("sign_method", "hmac-sha256")],
    );
    data(call(good.as_ref(), &refunds, None).await);
    let stale = Utc::now() - chrono::Duration::minutes(30);
    assert_eq!(
        fatal_code(&call_at(good.as_ref(), &refunds, stale, None).await),
        "31/isv.invalid-timestamp"
    );
    let wrong_wdt = connector(&sim, ConnectorKind::Qimen, &[("wdt_secret", "nope")]);
    let wdt_call = api(
        "wdt.aftersales.refund.refund.search",
        HttpMethod::Post,
        json!({"pager": {"page_size": 10, "page_no": 1}, "params": {"modified_from": from, "modified_to": to}}),
    );
    assert_eq!(
        fatal_code(&call(wrong_wdt.as_ref(), &wdt_call, None).await),
        "1"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn qimen_throttles_with_code_7() {
    let limits = Limits {
        qimen: vec![(1, Duration::from_secs(5))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    let qm = connector(&sim, ConnectorKind::Qimen, &[]);
    let (from, to) = window();
    let c = api(
        "jushuitan.refund.list.query",
        HttpMethod::Post,
        json!({"start_time": from, "end_time": to}),
    );
    data(call(qm.as_ref(), &c, None).await);
    let outcome = call(qm.as_ref(), &c, None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code.starts_with("7/accesscontrol")),
        "{outcome:?}"
    );
    sim.shutdown().await;
}
