//! The generic `http` connector against the simulator: a template signature and paging
//! to the truth.

use super::*;

#[tokio::test]
async fn http_connector_signs_with_a_template_and_pages_to_truth() {
    let sim = sim().await;
    let http = connector(
        &sim,
        ConnectorKind::Http,
        &[("error_path", "code"), ("success_value", "0")],
    );
    let mut seen = Vec::new();
    for page in 1..=20 {
        let v = data(call(http.as_ref(), &http_call(page, 10), None).await);
        let page_records = records(&v, "data.items");
        let short = page_records.len() < 10;
        seen.extend(page_records);
        if short {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "order_id").into_iter().collect();
    assert_eq!(got, truth_ids(&sim, Dataset::HttpOrders));
    assert_eq!(seen.len(), RECORDS);
    let wrong = connector(&sim, ConnectorKind::Http, &[("secret", "nope")]);
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &http_call(1, 10), None).await),
        "http_401"
    );
    sim.shutdown().await;
}
