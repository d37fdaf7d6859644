//! DingTalk / Yida against the simulator: paging by `totalCount`, tokens refreshed when
//! they expire mid-run, and the QPS limit.

use super::*;

fn yida_call(page: i64, size: i64) -> ApiCall {
    let c = SimCredentials::default();
    api(
        "/v1.0/yida/processes/instances",
        HttpMethod::Post,
        json!({"appType": c.yida_app_type, "systemToken": c.yida_system_token,
               "formUuid": c.yida_form_uuid, "userId": "manager01", "language": "zh_CN",
               "searchFieldJson": {}, "pageNumber": page, "pageSize": size}),
    )
}

#[tokio::test]
async fn yida_pages_by_total_count_and_refreshes_expired_tokens() {
    let sim = sim().await;
    let yida = connector(&sim, ConnectorKind::DingtalkYida, &[]);
    let token = fetch_token(yida.as_ref(), None).await;
    let mut seen = Vec::new();
    for page in 1..=20 {
        let v = data(call(yida.as_ref(), &yida_call(page, 10), Some(&token)).await);
        seen.extend(records(&v, "data"));
        let total = v["totalCount"].as_i64().expect("totalCount");
        if total <= page * 10 {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "processInstanceId").into_iter().collect();
    assert_eq!(seen.len(), RECORDS);
    assert_eq!(got, truth_ids(&sim, Dataset::YidaInstances));
    sim.expire_tokens();
    let outcome = call(yida.as_ref(), &yida_call(1, 10), Some(&token)).await;
    assert!(
        matches!(&outcome, Outcome::AuthExpired { code, .. } if code == "InvalidAuthentication"),
        "{outcome:?}"
    );
    let fresh = fetch_token(yida.as_ref(), Some(&token)).await;
    data(call(yida.as_ref(), &yida_call(1, 10), Some(&fresh)).await);
    let wrong = connector(&sim, ConnectorKind::DingtalkYida, &[("app_secret", "nope")]);
    let req = wrong
        .token_request(Utc::now(), None)
        .expect("ok")
        .expect("some");
    let (status, _, body) = send(&req).await;
    assert_eq!(status, 400);
    assert!(wrong.parse_token(Utc::now(), &body).is_err());
    let outcome = call(yida.as_ref(), &yida_call(1, 101), Some(&fresh)).await;
    assert_eq!(fatal_code(&outcome), "InvalidParameter");
    sim.shutdown().await;
}

#[tokio::test]
async fn yida_token_ttl_expires_mid_run_and_qps_limit_throttles() {
    let limits = Limits {
        dingtalk: vec![(2, Duration::from_secs(5))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    sim.set_faults(Faults {
        token_ttl: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    let yida = connector(&sim, ConnectorKind::DingtalkYida, &[]);
    let token = fetch_token(yida.as_ref(), None).await;
    data(call(yida.as_ref(), &yida_call(1, 10), Some(&token)).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let outcome = call(yida.as_ref(), &yida_call(1, 10), Some(&token)).await;
    assert!(
        matches!(outcome, Outcome::AuthExpired { .. }),
        "{outcome:?}"
    );
    let fresh = fetch_token(yida.as_ref(), None).await;
    data(call(yida.as_ref(), &yida_call(1, 10), Some(&fresh)).await);
    let outcome = call(yida.as_ref(), &yida_call(1, 10), Some(&fresh)).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code.contains("QpsLimitForAppkeyAndApi")),
        "{outcome:?}"
    );
    sim.shutdown().await;
}
