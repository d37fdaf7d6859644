//! WDT direct against the simulator: paging from 0 with `total_count`, rejected
//! signatures, timestamps and wide windows, and throttling with status 100.

use super::*;

#[tokio::test]
async fn wdt_pages_from_zero_with_total_count() {
    let sim = sim().await;
    let wdt = connector(&sim, ConnectorKind::Wdt, &[]);
    let (from, to) = window();
    let mut seen = Vec::new();
    let mut total = None;
    for page in 0..20 {
        let v = data(call(wdt.as_ref(), &wdt_call(page, 9, &from, &to), None).await);
        total = v["data"]["total_count"].as_u64();
        seen.extend(records(&v, "data.order"));
        if total.is_some_and(|t| seen.len() as u64 >= t) {
            break;
        }
    }
    assert_eq!(total, Some(RECORDS as u64));
    let mut got = seen.clone();
    got.sort_by_key(|r| r["refund_id"].as_u64());
    assert_eq!(got, sim.truth(Dataset::WdtRefunds));
    sim.shutdown().await;
}

#[tokio::test]
async fn wdt_rejects_bad_sign_stale_timestamp_and_wide_window() {
    let sim = sim().await;
    let (from, to) = window();
    let wrong = connector(&sim, ConnectorKind::Wdt, &[("secret", "nope")]);
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &wdt_call(0, 10, &from, &to), None).await),
        "1"
    );
    let good = connector(&sim, ConnectorKind::Wdt, &[]);
    let stale = Utc::now() - chrono::Duration::minutes(5);
    assert_eq!(
        fatal_code(&call_at(good.as_ref(), &wdt_call(0, 10, &from, &to), stale, None).await),
        "7"
    );
    let far = shanghai(Utc::now() - chrono::Duration::days(40));
    let outcome = call(good.as_ref(), &wdt_call(0, 10, &far, &to), None).await;
    assert_eq!(
        outcome,
        Outcome::Fatal {
            code: "100".to_owned(),
            message: "查询时间不能大于30天".to_owned()
        }
    );
    let no_window = api(
        "aftersales.refund.Refund.search",
        HttpMethod::Post,
        json!({"pager": {"page_size": 10, "page_no": 0}, "params": {}}),
    );
    let outcome = call(good.as_ref(), &no_window, None).await;
    assert!(
        matches!(&outcome, Outcome::Fatal { message, .. } if message == "参数中必须包含起止时间")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn wdt_throttles_with_status_100() {
    let limits = Limits {
        wdt: vec![(1, Duration::from_secs(5))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    let wdt = connector(&sim, ConnectorKind::Wdt, &[]);
    let (from, to) = window();
    data(call(wdt.as_ref(), &wdt_call(0, 5, &from, &to), None).await);
    let outcome = call(wdt.as_ref(), &wdt_call(0, 5, &from, &to), None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, retry_after: Some(d), .. } if code == "100" && d.as_secs() == 3),
        "{outcome:?}"
    );
    sim.shutdown().await;
}
