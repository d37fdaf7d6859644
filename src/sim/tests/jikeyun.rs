//! Jackyun against the simulator: paging from 0 until a short page, and its throttle
//! `subCode`.

use super::*;

#[tokio::test]
async fn jikeyun_pages_from_zero_until_short_page() {
    let sim = sim().await;
    let jky = connector(&sim, ConnectorKind::Jikeyun, &[]);
    let mut seen = Vec::new();
    for page in 0..20 {
        let v = data(
            call(
                jky.as_ref(),
                &api(
                    "erp.warehouse.get",
                    HttpMethod::Post,
                    json!({"pageIndex": page, "pageSize": 8}),
                ),
                None,
            )
            .await,
        );
        let page_records = records(&v, "result.data.warehouseInfo");
        let short = page_records.len() < 8;
        seen.extend(page_records);
        if short {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "warehouseId").into_iter().collect();
    assert_eq!(seen.len(), RECORDS);
    assert_eq!(got, truth_ids(&sim, Dataset::JikeyunWarehouses));
    let wrong = connector(&sim, ConnectorKind::Jikeyun, &[("app_secret", "nope")]);
    let one = api(
        "erp.warehouse.get",
        HttpMethod::Post,
        json!({"pageIndex": 0}),
    );
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &one, None).await),
        "0858030801"
    );
    let other = api("erp.goods.get", HttpMethod::Post, json!({}));
    assert_eq!(
        fatal_code(&call(jky.as_ref(), &other, None).await),
        "0130020310"
    );
    let stale = Utc::now() - chrono::Duration::hours(2);
    assert_eq!(
        fatal_code(&call_at(jky.as_ref(), &one, stale, None).await),
        "0050030002"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn jikeyun_throttles_with_0859999999() {
    let limits = Limits {
        jikeyun: vec![(1, Duration::from_secs(5))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    let jky = connector(&sim, ConnectorKind::Jikeyun, &[]);
    let one = api(
        "erp.warehouse.get",
        HttpMethod::Post,
        json!({"pageIndex": 0}),
    );
    data(call(jky.as_ref(), &one, None).await);
    let outcome = call(jky.as_ref(), &one, None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code == "0859999999"),
        "{outcome:?}"
    );
    sim.shutdown().await;
}
