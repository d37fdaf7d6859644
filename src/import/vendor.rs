//! Which qsync connector speaks a scheme's API, told by the API name, and the profile
//! entry a connection of that connector needs.
//!
//! The platform names APIs the way each vendor does (PROTOCOLS.md): Qimen-routed methods
//! carry the vendor's prefix (`jushuitan.refund.list.query`, `wdt.aftersales...`), Jikeyun
//! methods start with their domain (`erp.`, `oms.`, `wms.`), DingTalk v1.0 APIs are paths
//! (`v1.0/yida/processes/instances`), and the Jushuitan open API is a path under `/open/`
//! that the platform also writes as its method name (`orders.out.simple.query`).

use crate::plan::ConnectorKind;

/// The connector, endpoint and connection name of a scheme's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vendor {
    pub(crate) kind: ConnectorKind,
    /// What the spec's `source` line names: a method name or a path.
    pub(crate) endpoint: String,
    /// The profile entry the spec uses, e.g. `jst_qimen`; the names of `specs/qsync.yaml`.
    pub(crate) connection: &'static str,
    /// Said in the spec's comment: how the vendor was told.
    pub(crate) reason: &'static str,
    /// Set when the endpoint is a guess: why it may be wrong (a diagnostic).
    pub(crate) doubt: Option<String>,
    /// Request parameters the chosen endpoint names differently from the scheme's API
    /// (`(scheme's name, endpoint's name)`).
    pub(crate) renamed_params: &'static [(&'static str, &'static str)],
}

/// Jushuitan open-API methods the platform writes as dotted names (PROTOCOLS.md §1: their
/// paths are `/open/` + the name with `/` for `.`).
const JST_OPEN_METHODS: &[&str] = &[
    "orders.out.simple.query",
    "refund.single.query",
    "shops.query",
];

/// Jushuitan methods through Qimen and the open-API path of the same list (PROTOCOLS.md
/// §1: the Qimen refund list is the open API's `refund/single/query`, the sales-outbound
/// list its `orders/out/simple/query`). `jushuitan.order.list.query` has no known path.
const JST_QIMEN_TO_OPEN: &[(&str, &str)] = &[
    ("jushuitan.refund.list.query", "/open/refund/single/query"),
    (
        "jushuitan.saleout.list.query",
        "/open/orders/out/simple/query",
    ),
];

/// The Qimen methods bound the time range with `start_time`/`end_time`, the open API with
/// `modified_begin`/`modified_end` (PROTOCOLS.md §1).
const JST_QIMEN_TO_OPEN_PARAMS: &[(&str, &str)] = &[
    ("start_time", "modified_begin"),
    ("end_time", "modified_end"),
];

/// The field that identifies one element of a nested array the records carry, per
/// vendor list (PROTOCOLS.md: Jushuitan refund `items[].asi_id`, outbound
/// `items[].ioi_id`; WDT refund `detail_list[].rec_id`): with `@flatten` over that array,
/// the key needs it.
pub(crate) fn element_id(kind: ConnectorKind, endpoint: &str, array: &str) -> Option<&'static str> {
    let e = endpoint.to_ascii_lowercase();
    let jst = kind == ConnectorKind::Jushuitan
        || (kind == ConnectorKind::Qimen && e.starts_with("jushuitan."));
    let wdt = kind == ConnectorKind::Wdt || (kind == ConnectorKind::Qimen && e.starts_with("wdt."));
    match array {
        "items" if jst && e.contains("refund") => Some("asi_id"),
        "items" if jst && (e.contains("orders/out") || e.contains("saleout")) => Some("ioi_id"),
        "detail_list" if wdt && e.contains("refund") => Some("rec_id"),
        _ => None,
    }
}

/// The vendor of `api`, or `None` when the name says nothing (then `--connector` decides).
pub(crate) fn infer(api: &str) -> Option<Vendor> {
    let api = api.trim();
    let vendor = |kind, endpoint: String, connection, reason| Vendor {
        kind,
        endpoint,
        connection,
        reason,
        doubt: None,
        renamed_params: &[],
    };
    if api.starts_with("jushuitan.") {
        return Some(vendor(
            ConnectorKind::Qimen,
            api.to_owned(),
            "jst_qimen",
            "`jushuitan.*`: Jushuitan through the Qimen gateway",
        ));
    }
    if api.starts_with("wdt.") {
        return Some(vendor(
            ConnectorKind::Qimen,
            api.to_owned(),
            "wdt_qimen",
            "`wdt.*`: Wangdiantong 旗舰版 through the Qimen gateway",
        ));
    }
    if ["erp.", "oms.", "wms."].iter().any(|p| api.starts_with(p)) {
        return Some(vendor(
            ConnectorKind::Jikeyun,
            api.to_owned(),
            "jky",
            "`erp.*`/`oms.*`/`wms.*`: Jikeyun (吉客云)",
        ));
    }
    let path = api.trim_start_matches('/');
    if path.starts_with("v1.0/yida/") {
        return Some(vendor(
            ConnectorKind::DingtalkYida,
            format!("/{path}"),
            "dingtalk",
            "`v1.0/yida/...`: DingTalk Yida",
        ));
    }
    if api.starts_with("/open/") {
        return Some(vendor(
            ConnectorKind::Jushuitan,
            api.to_owned(),
            "jst",
            "`/open/...`: the Jushuitan open API",
        ));
    }
    if JST_OPEN_METHODS.contains(&api) {
        return Some(vendor(
            ConnectorKind::Jushuitan,
            format!("/open/{}", api.replace('.', "/")),
            "jst",
            "a Jushuitan open-API method: its path is /open/ + the name",
        ));
    }
    None
}

/// The vendor when `--connector` names the connector: the endpoint in that connector's
/// form (`orders.out.simple.query` → `/open/orders/out/simple/query` for `jushuitan`).
pub(crate) fn chosen(kind: ConnectorKind, api: &str) -> Vendor {
    let api = api.trim();
    let inferred = infer(api).filter(|v| v.kind == kind);
    if let Some(mut v) = inferred {
        v.reason = "--connector";
        return v;
    }
    let mut doubt = None;
    let mut renamed_params: &'static [(&'static str, &'static str)] = &[];
    let (endpoint, connection) = match kind {
        ConnectorKind::Jushuitan if api.starts_with("jushuitan.") => {
            match JST_QIMEN_TO_OPEN.iter().find(|(qimen, _)| *qimen == api) {
                Some((_, open)) => {
                    renamed_params = JST_QIMEN_TO_OPEN_PARAMS;
                    ((*open).to_owned(), "jst")
                }
                None => {
                    let guess = format!(
                        "/open/{}",
                        api.trim_start_matches("jushuitan.").replace('.', "/")
                    );
                    doubt = Some(format!("`{api}` is a Jushuitan method through Qimen, and its open-API path is not known: the spec guesses `{guess}`"));
                    (guess, "jst")
                }
            }
        }
        ConnectorKind::Jushuitan if !api.starts_with('/') => {
            (format!("/open/{}", api.replace('.', "/")), "jst")
        }
        ConnectorKind::Jushuitan => (api.to_owned(), "jst"),
        ConnectorKind::Qimen => (api.to_owned(), "qimen"),
        ConnectorKind::Jikeyun => (api.to_owned(), "jky"),
        ConnectorKind::Wdt => (api.to_owned(), "wdt"),
        ConnectorKind::DingtalkYida => (format!("/{}", api.trim_start_matches('/')), "dingtalk"),
        ConnectorKind::Http => (api.to_owned(), "api"),
    };
    Vendor {
        kind,
        endpoint,
        connection,
        reason: "--connector",
        doubt,
        renamed_params,
    }
}

/// The `qsync.yaml` entry of `vendor`'s connection, with `${ENV}` placeholders for every
/// credential (the vendors' production URLs from PROTOCOLS.md).
pub(crate) fn profile_entry(vendor: &Vendor) -> String {
    let name = vendor.connection;
    let lines: &[&str] = match (vendor.kind, name) {
        (ConnectorKind::Qimen, "wdt_qimen") => &[
            "kind: qimen",
            "base_url: http://qimen.api.taobao.com/router/qimen/service",
            "app_key: ${QIMEN_APP_KEY}",
            "app_secret: ${QIMEN_APP_SECRET}",
            "target_app_key: ${WDT_TARGET_APP_KEY}",
            "wdt_appkey: ${WDT_APPKEY}",
            "wdt_secret: ${WDT_SECRET}",
            "wdt_salt: ${WDT_SALT}",
            "wdt3_customer_id: ${WDT3_CUSTOMER_ID}",
        ],
        (ConnectorKind::Qimen, _) => &[
            "kind: qimen",
            "base_url: http://qimen.api.taobao.com/router/qimen/service",
            "app_key: ${QIMEN_APP_KEY}",
            "app_secret: ${QIMEN_APP_SECRET}",
            "target_app_key: \"23060081\"      # Jushuitan's Qimen app",
            "customer_id: ${JST_CUSTOMER_ID}",
        ],
        (ConnectorKind::Jushuitan, _) => &[
            "kind: jushuitan",
            "base_url: https://openapi.jushuitan.com",
            "app_key: ${JST_APP_KEY}",
            "app_secret: ${JST_APP_SECRET}",
            "access_token: ${JST_ACCESS_TOKEN}",
        ],
        (ConnectorKind::Jikeyun, _) => &[
            "kind: jikeyun",
            "base_url: https://open.jackyun.com/open/openapi/do",
            "app_key: ${JKY_APP_KEY}",
            "app_secret: ${JKY_APP_SECRET}",
        ],
        (ConnectorKind::Wdt, _) => &[
            "kind: wdt",
            "base_url: http://wdt.wangdian.cn/openapi",
            "sid: ${WDT_SID}",
            "app_key: ${WDT_APP_KEY}",
            "app_secret: ${WDT_APP_SECRET}",
        ],
        (ConnectorKind::DingtalkYida, _) => &[
            "kind: dingtalk_yida",
            "base_url: https://api.dingtalk.com",
            "app_key: ${DINGTALK_APP_KEY}",
            "app_secret: ${DINGTALK_APP_SECRET}",
        ],
        (ConnectorKind::Http, _) => &["kind: http", "base_url: ${API_BASE_URL}", "auth: none"],
    };
    entry(name, lines)
}

/// The `qsync.yaml` entry of a MySQL connection named `name` whose database is `database`.
pub(crate) fn mysql_entry(name: &str, database: Option<&str>) -> String {
    let url = format!(
        "url: mysql://${{MYSQL_USER}}:${{MYSQL_PASSWORD}}@${{MYSQL_HOST}}:3306/{}",
        database.unwrap_or("${MYSQL_DATABASE}")
    );
    entry(name, &["kind: mysql", &url])
}

fn entry(name: &str, lines: &[&str]) -> String {
    let mut out = format!("  {name}:\n");
    for line in lines {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_tell_the_vendor() {
        let kind = |api: &str| infer(api).map(|v| (v.kind, v.endpoint, v.connection));
        assert_eq!(
            kind("jushuitan.refund.list.query"),
            Some((
                ConnectorKind::Qimen,
                "jushuitan.refund.list.query".into(),
                "jst_qimen"
            ))
        );
        assert_eq!(
            kind("wdt.aftersales.refund.refund.search").map(|k| k.2),
            Some("wdt_qimen")
        );
        assert_eq!(
            kind("erp.warehouse.get").map(|k| k.0),
            Some(ConnectorKind::Jikeyun)
        );
        assert_eq!(
            kind("oms.trade.fullinfoget").map(|k| k.0),
            Some(ConnectorKind::Jikeyun)
        );
        assert_eq!(
            kind("v1.0/yida/processes/instances").map(|k| k.1),
            Some("/v1.0/yida/processes/instances".into())
        );
        assert_eq!(
            kind("/open/orders/out/simple/query").map(|k| k.0),
            Some(ConnectorKind::Jushuitan)
        );
        assert_eq!(
            kind("orders.out.simple.query").map(|k| k.1),
            Some("/open/orders/out/simple/query".into())
        );
        assert_eq!(kind("getOrders"), None);
        assert_eq!(kind("orders.list"), None);
    }

    #[test]
    fn the_connector_flag_puts_the_endpoint_in_its_form() {
        let v = chosen(ConnectorKind::Jushuitan, "orders.list");
        assert_eq!(v.endpoint, "/open/orders/list");
        let v = chosen(ConnectorKind::Jushuitan, "jushuitan.refund.list.query");
        assert_eq!(
            (v.endpoint.as_str(), v.doubt),
            ("/open/refund/single/query", None)
        );
        let v = chosen(ConnectorKind::Jushuitan, "jushuitan.order.list.query");
        assert_eq!(v.endpoint, "/open/order/list/query");
        assert!(v.doubt.is_some());
        let v = chosen(ConnectorKind::Qimen, "wdt.trade.query");
        assert_eq!(v.connection, "wdt_qimen");
        let v = chosen(ConnectorKind::Http, "/api/v1/orders");
        assert_eq!(
            (v.endpoint.as_str(), v.connection),
            ("/api/v1/orders", "api")
        );
    }
}
