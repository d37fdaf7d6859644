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

/// The closest name within edit distance 2 (or a case-insensitive match).
pub(crate) fn closest<'n>(word: &str, names: &[&'n str]) -> Option<&'n str> {
    let lower = word.to_lowercase();
    names
        .iter()
        .map(|n| (distance(&lower, &n.to_lowercase()), *n))
        .filter(|(d, n)| {
            *d <= 2.min(n.chars().count().saturating_sub(1))
                || n.eq_ignore_ascii_case(word)
                || (word.len() >= 4 && n.to_lowercase().starts_with(&lower))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

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
