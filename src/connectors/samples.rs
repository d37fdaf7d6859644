//! Published vendor bodies (copied from `shared/vendor-samples`, sources in the
//! `.source.txt` files there), compiled into the test build so every connector's tests
//! decode the real thing.

/// A `kind: vendor` profile connection with `settings` (tests only).
pub(crate) fn connection(vendor: &str, settings: &[(&str, &str)]) -> crate::config::Connection {
    crate::config::Connection {
        kind: vendor.to_owned(),
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_yaml::Value::String((*v).to_owned())))
            .collect(),
    }
}

/// The sample file `name`, or a panic naming it (tests only).
pub(crate) fn get(name: &str) -> &'static [u8] {
    SAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no vendor sample `{name}`"))
}

macro_rules! samples {
    ($($name:literal),* $(,)?) => {
        const SAMPLES: &[(&str, &[u8])] = &[$(($name, include_bytes!(concat!("samples/", $name)))),*];
    };
}

samples!(
    "dingtalk_ip_throttle_block.json",
    "dingtalk_oauth2_access_token.json",
    "dingtalk_robot_send_errors.json",
    "jikeyun_error_api_not_subscribed.json",
    "jushuitan_auth_token.json",
    "jushuitan_refund_list_TEMPLATE_yonbip_wrapper.json",
    "jushuitan_shops_query.json",
    "jushuitan_shops_query_general.json",
    "taobao_top_error_response_code15_throttle.json",
    "wdt_sales_tradequery_querywithdetail.json",
    "wdt_sales_tradequery_querywithdetail_error.json",
    "wdt_setting_warehouse_query.json",
    "wdt_setting_warehouse_query_error.json",
);
