//! Wangdiantong 旗舰版 (WDT QJB) direct open API: system params and paging in the URL,
//! positional args as a JSON-array body, the md5 sign over both, the `{status, data}`
//! envelope. Also owns [`classify_envelope`] (reused by Qimen for `wdt.*` methods) and
//! [`sign`] (reused by the simulator).
//!
//! Profile settings (connection `kind: wdt`):
//! - `base_url`: the gateway, e.g. `http://wdt.wangdian.cn/openapi`.
//! - `sid`: the seller id; `app_key`: the app key (sent as `key`).
//! - `app_secret`: `"<secret>:<salt>"` as WDT issues it; or `secret` and `salt` separately.
//!
//! Params: the spec's shape `{"pager": {"page_size", "page_no"}, "params": {...}}` maps
//! `pager` to the URL (`page_size`, `page_no`, `calc_total=1`) and `params` to the body
//! `[params]` (an array `params` is sent as the positional list itself). Flat params are
//! accepted too: `page_size` / `page_no` go to the URL, everything else to the body.
//! `page_no` starts at 0. Status 100 with a frequency/concurrency message is throttling
//! (retried after 3 s, as go-marvis does; the vendor suggests minutes); every other
//! non-zero status is fatal, 7 (timestamp) included: it is our clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::wire::{self, Settings};
use super::{ApiCall, Connector, ConnectorError, EndpointInfo, Outcome, PreparedRequest, Token};
use crate::config::Connection;
use crate::plan::{ConnectorKind, FieldPath};

const VENDOR: &str = "wdt";

/// Every profile key a `kind: wdt` connection takes (besides `kind`); `check` refuses others.
pub(super) const PROFILE_KEYS: &[&str] =
    &["base_url", "sid", "app_key", "app_secret", "secret", "salt"];
/// WDT timestamps count seconds from 2012-01-01 00:00:00 UTC+0.
pub const EPOCH_OFFSET: i64 = 1_325_347_200;

/// `lower(md5(secret + concat(k + v for sorted k != "sign") + secret))`; `fields` include
/// the raw body under the key `body`.
pub fn sign(secret: &str, fields: &[(String, String)]) -> String {
    let body = wire::concat_sorted(
        fields
            .iter()
            .filter(|(k, _)| k != "sign")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    wire::md5_hex(format!("{secret}{body}{secret}").as_bytes())
}

/// The WDT direct open-API connector.
#[derive(Debug, Clone)]
pub struct Wdt {
    base_url: String,
    sid: String,
    app_key: String,
    secret: String,
    salt: String,
}

impl Wdt {
    pub fn new(name: &str, connection: &Connection) -> Result<Self, ConnectorError> {
        let s = Settings::new(name, VENDOR, connection);
        let (secret, salt) = match (s.optional("secret"), s.optional("salt")) {
            (Some(secret), Some(salt)) => (secret, salt),
            _ => {
                let combined = s.required("app_secret")?;
                let (secret, salt) = combined.split_once(':').ok_or_else(|| {
                    s.bad("`app_secret` must be `<secret>:<salt>` as WDT issues it".to_owned())
                })?;
                (secret.to_owned(), salt.to_owned())
            }
        };
        Ok(Wdt {
            base_url: s.base_url()?,
            sid: s.required("sid")?,
            app_key: s.required("app_key")?,
            secret,
            salt,
        })
    }
}

/// Splits spec params into (pager, body args): see the module doc.
pub fn split_params(params: &Map<String, Value>) -> (Map<String, Value>, Value) {
    let mut pager = Map::new();
    if let Some(Value::Object(p)) = params.get("pager") {
        pager = p.clone();
    }
    if let Some(args) = params.get("params") {
        let body = match args {
            Value::Array(_) => args.clone(),
            other => Value::Array(vec![other.clone()]),
        };
        return (pager, body);
    }
    let mut flat = Map::new();
    for (k, v) in params {
        match k.as_str() {
            "pager" => {}
            "page_size" | "page_no" => {
                pager.insert(k.clone(), v.clone());
            }
            _ => {
                flat.insert(k.clone(), v.clone());
            }
        }
    }
    (pager, Value::Array(vec![Value::Object(flat)]))
}

impl Connector for Wdt {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Wdt
    }

    fn prepare(
        &self,
        call: &ApiCall,
        now: DateTime<Utc>,
        _token: Option<&Token>,
    ) -> Result<PreparedRequest, ConnectorError> {
        let (pager, args) = split_params(&call.params);
        let body = args.to_string();
        let mut query: Vec<(String, String)> = vec![
            ("sid".to_owned(), self.sid.clone()),
            ("key".to_owned(), self.app_key.clone()),
            ("salt".to_owned(), self.salt.clone()),
            ("method".to_owned(), call.endpoint.clone()),
            ("v".to_owned(), "1.0".to_owned()),
            (
                "timestamp".to_owned(),
                (now.timestamp() - EPOCH_OFFSET).to_string(),
            ),
        ];
        for key in ["page_size", "page_no"] {
            if let Some(v) = pager.get(key) {
                query.push((key.to_owned(), wire::scalar_text(v)));
            }
        }
        if !pager.is_empty() {
            query.push(("calc_total".to_owned(), "1".to_owned()));
        }
        query.extend(call.query.iter().cloned());
        let mut signed = query.clone();
        signed.push(("body".to_owned(), body.clone()));
        query.push(("sign".to_owned(), sign(&self.secret, &signed)));
        Ok(PreparedRequest::post(
            "application/json",
            wire::with_query(&self.base_url, &query),
            body,
            &call.headers,
        ))
    }

    fn classify(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
        match wire::decode(status, headers, body) {
            Ok(value) => classify_envelope(value),
            Err(outcome) => outcome,
        }
    }

    fn endpoint_info(&self, endpoint: &str) -> EndpointInfo {
        endpoint_info(endpoint)
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.secret.clone(), self.salt.clone()]
    }
}

/// True when a WDT status-100 message is about call frequency or concurrency.
pub fn is_throttle_message(message: &str) -> bool {
    ["频率", "并发", "频繁", "限流"]
        .iter()
        .any(|word| message.contains(word))
}

/// Classifies a decoded `{status, message, data}` envelope.
pub fn classify_envelope(value: Value) -> Outcome {
    let code = wire::code_text(value.get("status"));
    let message = wire::message_of(&value, &["message", "msg"]);
    match code.as_str() {
        "0" => Outcome::Data(value),
        "" => Outcome::Fatal {
            code: "missing_status".to_owned(),
            message: format!(
                "wdt envelope has no `status`: {}",
                wire::snippet(value.to_string().as_bytes())
            ),
        },
        "100" if is_throttle_message(&message) => Outcome::Throttled {
            code,
            message,
            retry_after: Some(Duration::from_secs(3)),
        },
        _ => Outcome::Fatal { code, message },
    }
}

/// What WDT publishes for `endpoint` (a method name).
pub fn endpoint_info(endpoint: &str) -> EndpointInfo {
    let mut info = EndpointInfo {
        page_base: Some(0),
        max_page_size: Some(200),
        total_path: Some(FieldPath::parse("data.total_count")),
        ..EndpointInfo::default()
    };
    match endpoint {
        "aftersales.refund.Refund.search" => {
            info.max_window = Some(Duration::from_secs(30 * 86_400));
            info.records_path = Some(FieldPath::parse("data.order"));
        }
        "sales.TradeQuery.queryWithDetail" => {
            info.max_window = Some(Duration::from_secs(3_600));
            info.records_path = Some(FieldPath::parse("data.order"));
        }
        "setting.Warehouse.queryWarehouse" => {
            info.records_path = Some(FieldPath::parse("data.details"));
        }
        _ => {}
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::samples;
    use crate::plan::walk;
    use crate::plan::HttpMethod;
    use chrono::TimeZone;

    fn connection(settings: &[(&str, &str)]) -> Connection {
        samples::connection(VENDOR, settings)
    }

    fn wdt() -> Wdt {
        Wdt::new(
            "wdt",
            &connection(&[
                ("base_url", "http://wdt.wangdian.cn/openapi"),
                ("sid", "sid1"),
                ("app_key", "key1"),
                ("app_secret", "sec:salty"),
            ]),
        )
        .unwrap()
    }

    #[test]
    fn nested_params_go_to_url_and_body() {
        let params: Map<String, Value> = serde_json::from_str(
            r#"{"pager":{"page_size":50,"page_no":0},
                "params":{"modified_from":"2023-06-01 00:00:00","modified_to":"2023-06-14 00:00:00"}}"#,
        )
        .unwrap();
        let call = ApiCall {
            endpoint: "aftersales.refund.Refund.search".to_owned(),
            http_method: HttpMethod::Post,
            params,
            query: vec![],
            headers: vec![],
        };
        let now = Utc.timestamp_opt(EPOCH_OFFSET + 1000, 0).unwrap();
        let req = wdt().prepare(&call, now, None).unwrap();
        let body = req.body.clone().unwrap();
        assert_eq!(
            body,
            r#"[{"modified_from":"2023-06-01 00:00:00","modified_to":"2023-06-14 00:00:00"}]"#
        );
        let url = url::Url::parse(&req.url).unwrap();
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| {
            query
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("timestamp").as_deref(), Some("1000"));
        assert_eq!(get("page_no").as_deref(), Some("0"));
        assert_eq!(get("calc_total").as_deref(), Some("1"));
        assert_eq!(get("salt").as_deref(), Some("salty"));
        let mut signed: Vec<(String, String)> =
            query.iter().filter(|(k, _)| k != "sign").cloned().collect();
        signed.push(("body".to_owned(), body));
        // Recomputed by hand: secret + sorted k+v + secret.
        let text = format!(
            "sec{}sec",
            wire::concat_sorted(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        );
        assert_eq!(get("sign"), Some(wire::md5_hex(text.as_bytes())));
    }

    #[test]
    fn flat_params_are_accepted() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"page_no":1,"page_size":20,"status":30}"#).unwrap();
        let (pager, body) = split_params(&params);
        assert_eq!(pager.get("page_no"), Some(&Value::from(1)));
        assert_eq!(body.to_string(), r#"[{"status":30}]"#);
    }

    #[test]
    fn bad_app_secret_is_reported() {
        let err = Wdt::new(
            "w",
            &connection(&[
                ("base_url", "http://x"),
                ("sid", "s"),
                ("app_key", "k"),
                ("app_secret", "nosalt"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("<secret>:<salt>"), "{err}");
    }

    #[test]
    fn decodes_vendor_samples() {
        let w = wdt();
        match w.classify(
            200,
            &[],
            samples::get("wdt_sales_tradequery_querywithdetail.json"),
        ) {
            Outcome::Data(v) => {
                assert_eq!(walk(&v, &["data", "total_count"]), Some(&Value::from(1)));
                assert_eq!(
                    walk(&v, &["data", "order", "0", "trade_no"]),
                    Some(&Value::from("JY202301110027"))
                );
            }
            other => panic!("{other:?}"),
        }
        match w.classify(200, &[], samples::get("wdt_setting_warehouse_query.json")) {
            Outcome::Data(v) => {
                assert_eq!(
                    walk(&v, &["data", "details", "0", "warehouse_id"]),
                    Some(&Value::from(624))
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            w.classify(
                200,
                &[],
                samples::get("wdt_sales_tradequery_querywithdetail_error.json")
            ),
            Outcome::Fatal {
                code: "100".to_owned(),
                message: "您的查询时间过宽,查询时间不能大于60分钟".to_owned()
            }
        );
        assert_eq!(
            w.classify(
                200,
                &[],
                samples::get("wdt_setting_warehouse_query_error.json")
            ),
            Outcome::Fatal {
                code: "100".to_owned(),
                message: "参数中必须包含起止时间".to_owned()
            }
        );
    }

    #[test]
    fn frequency_messages_throttle() {
        let body = r#"{"status":100,"message":"超过每分钟最大调用频率限制，请稍后重试"}"#;
        assert!(matches!(
            wdt().classify(200, &[], body.as_bytes()),
            Outcome::Throttled { retry_after: Some(d), .. } if d.as_secs() == 3
        ));
        assert!(matches!(
            wdt().classify(200, &[], br#"{"status":7,"message":"timestamp"}"#),
            Outcome::Fatal { ref code, .. } if code == "7"
        ));
    }
}
