//! What `check` knows of vendors' records (which fields are nested arrays) and name
//! suggestions.

use crate::plan::ConnectorKind;

/// Record fields that hold arrays of nested rows, per endpoint: using `items_x` in a map
/// without `@flatten items` is then a sure mistake.
pub(crate) fn known_arrays(kind: ConnectorKind, endpoint: &str) -> &'static [&'static str] {
    let e = endpoint.to_ascii_lowercase();
    let wdt = kind == ConnectorKind::Wdt || (kind == ConnectorKind::Qimen && e.starts_with("wdt."));
    let jst = kind == ConnectorKind::Jushuitan
        || (kind == ConnectorKind::Qimen && e.starts_with("jushuitan."));
    if wdt && e.contains("refund") {
        &["detail_list", "amount_detail_list"]
    } else if wdt && e.contains("trade") {
        &["detail_list"]
    } else if jst && e.contains("refund") {
        &["items", "batchs", "sns", "images", "order_labels"]
    } else if jst && (e.contains("order") || e.contains("saleout")) {
        &["items", "batchs", "sns", "cluster_infos"]
    } else if kind == ConnectorKind::DingtalkYida {
        &["actionExecutor"]
    } else {
        &[]
    }
}

pub(crate) use crate::plan::closest;

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("jushuitna", &["jushuitan", "wdt"]),
            Some("jushuitan")
        );
        assert_eq!(closest("xyz", &["jushuitan", "wdt"]), None);
        assert_eq!(closest("REPLACE", &["replace", "insert"]), Some("replace"));
    }
}
