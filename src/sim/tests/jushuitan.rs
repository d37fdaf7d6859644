//! Jushuitan against the simulator: paging to the truth, both endpoints, rejected
//! signatures, timestamps and tokens, token fetching, and its two throttle codes.

use super::*;

#[tokio::test]
async fn jushuitan_pages_exactly_the_truth() {
    let sim = sim().await;
    let jst = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    let token = jst.profile_token(Utc::now());
    let mut seen = Vec::new();
    let mut pages = 0;
    for page in 1..=50 {
        let v = data(call(jst.as_ref(), &jst_call(page, 10), token.as_ref()).await);
        assert_eq!(v["data"]["data_count"], json!(RECORDS));
        seen.extend(records(&v, "data.datas"));
        pages += 1;
        if v["data"]["has_next"] != json!(true) {
            break;
        }
    }
    assert_eq!(pages, RECORDS.div_ceil(10));
    assert_eq!(seen.len(), RECORDS);
    let mut got = seen.clone();
    got.sort_by_key(|r| r["as_id"].as_u64());
    assert_eq!(got, sim.truth(Dataset::JstRefunds));
    // Sorted by modified ascending while paging.
    let modified: Vec<String> = seen
        .iter()
        .map(|r| wire::scalar_text(&r["modified"]))
        .collect();
    let mut sorted = modified.clone();
    sorted.sort();
    assert_eq!(modified, sorted);
    sim.shutdown().await;
}

#[tokio::test]
async fn jushuitan_orders_endpoint_serves_orders() {
    let sim = sim().await;
    let jst = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    let (from, to) = window();
    let v = data(
        call(
            jst.as_ref(),
            &api(
                "/open/orders/out/simple/query",
                HttpMethod::Post,
                json!({"modified_begin": from, "modified_end": to, "page_size": 50}),
            ),
            None,
        )
        .await,
    );
    let got: BTreeSet<String> = ids(&records(&v, "data.datas"), "io_id")
        .into_iter()
        .collect();
    assert_eq!(got, truth_ids(&sim, Dataset::JstOrders));
    sim.shutdown().await;
}

#[tokio::test]
async fn jushuitan_rejects_bad_sign_stale_timestamp_expired_token_and_limits() {
    let sim = sim().await;
    let good = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    let wrong = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[
            ("access_token", "sim-jst-access-token"),
            ("app_secret", "nope"),
        ],
    );
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &jst_call(1, 10), None).await),
        "10"
    );
    let stale = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        fatal_code(&call_at(good.as_ref(), &jst_call(1, 10), stale, None).await),
        "140"
    );
    assert_eq!(
        fatal_code(&call(good.as_ref(), &jst_call(1, 51), None).await),
        "170"
    );
    let (from, _) = window();
    let too_wide = api(
        "/open/refund/single/query",
        HttpMethod::Post,
        json!({"modified_begin": from, "modified_end": shanghai(Utc::now() + chrono::Duration::days(3))}),
    );
    let outcome = call(good.as_ref(), &too_wide, None).await;
    assert!(
        matches!(&outcome, Outcome::Fatal { code, message } if code == "170" && message.contains("7天")),
        "{outcome:?}"
    );
    // Expired profile token → AuthExpired → refresh through the connector's token request.
    sim.expire_tokens();
    let profile = good.profile_token(Utc::now()).expect("profile token");
    let outcome = call(good.as_ref(), &jst_call(1, 10), Some(&profile)).await;
    assert!(
        matches!(&outcome, Outcome::AuthExpired { code, .. } if code == "100"),
        "{outcome:?}"
    );
    let fresh = fetch_token(good.as_ref(), Some(&profile)).await;
    assert_ne!(fresh.access_token, profile.access_token);
    data(call(good.as_ref(), &jst_call(1, 10), Some(&fresh)).await);
    sim.shutdown().await;
}

#[tokio::test]
async fn jushuitan_without_profile_token_fetches_one() {
    let sim = sim().await;
    let jst = connector(&sim, ConnectorKind::Jushuitan, &[]);
    assert!(jst.profile_token(Utc::now()).is_none());
    assert!(jst.prepare(&jst_call(1, 10), Utc::now(), None).is_err());
    let token = fetch_token(jst.as_ref(), None).await;
    assert!(token.refresh_token.is_some());
    let v = data(call(jst.as_ref(), &jst_call(1, 10), Some(&token)).await);
    assert_eq!(records(&v, "data.datas").len(), 10);
    assert_eq!(sim.stats().vendors["jushuitan"].tokens_issued, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn jushuitan_rate_limits_answer_199_then_200() {
    let limits = Limits {
        jushuitan: vec![(2, Duration::from_secs(1)), (3, Duration::from_secs(60))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    let jst = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    data(call(jst.as_ref(), &jst_call(1, 5), None).await);
    data(call(jst.as_ref(), &jst_call(1, 5), None).await);
    let outcome = call(jst.as_ref(), &jst_call(1, 5), None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, retry_after: Some(d), .. } if code == "199" && d.as_secs() == 1),
        "{outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    data(call(jst.as_ref(), &jst_call(1, 5), None).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let outcome = call(jst.as_ref(), &jst_call(1, 5), None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code == "200"),
        "{outcome:?}"
    );
    assert!(sim.stats().vendors["jushuitan"].throttled >= 2);
    sim.shutdown().await;
}
