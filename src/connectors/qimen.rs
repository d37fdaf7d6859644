//! Taobao Qimen (奇门) gateway, custom-API flavour: every param form-urlencoded in a POST
//! body, the TOP sign (md5 / hmac / hmac-sha256), `error_response` and `response`
//! envelopes. Routes `jushuitan.*` methods (Jushuitan's envelope inside) and `wdt.*`
//! methods (WDT's `params` / `pager` JSON strings plus the inner `wdt_sign`).
//!
//! Profile settings (connection `kind: qimen`):
//! - `base_url`: the gateway URL, e.g. `http://qimen.api.taobao.com/router/qimen/service`.
//! - `app_key`, `app_secret`: the Qimen app; `target_app_key`: the routed ERP's app key
//!   (Jushuitan's is 23060081).
//! - `sign_method` (optional): `md5` (default), `hmac` or `hmac-sha256`.
//! - `customer_id` (optional): Jushuitan merchant link id, added to `jushuitan.*` calls.
//! - `session` (optional): a TOP session, sent when set.
//! - For `wdt.*` methods: `wdt_appkey`, `wdt_secret`, `wdt_salt`, `wdt3_customer_id`.
//!
//! Business params are top-level form fields; objects and arrays are sent as JSON strings.
//! For `wdt.*` the spec's `{"pager": {...}, "params": {...}}` become the `pager` and
//! `params` JSON-string fields (flat params are gathered into `params`, `page_no` /
//! `page_size` into `pager`). The Qimen WDT `page_no` is taken to start at 1 (the only
//! published client starts there; unverified). `jushuitan.*` responses may be wrapped in
//! `{"response": ...}` or not; `Data` is the inner Jushuitan/WDT envelope either way.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::wire::{self, Settings};
use super::{
    jushuitan, wdt, ApiCall, Connector, ConnectorError, EndpointInfo, Outcome, PreparedRequest,
    Token, FORM_UTF8,
};
use crate::config::Connection;
use crate::plan::{ConnectorKind, FieldPath};

const VENDOR: &str = "qimen";

/// Every profile key a `kind: qimen` connection takes (besides `kind`); `check` refuses others.
pub(super) const PROFILE_KEYS: &[&str] = &[
    "base_url",
    "app_key",
    "app_secret",
    "target_app_key",
    "customer_id",
    "session",
    "sign_method",
    "wdt_appkey",
    "wdt_secret",
    "wdt_salt",
    "wdt3_customer_id",
];

/// The TOP `sign_method`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMethod {
    Md5,
    Hmac,
    HmacSha256,
}

impl SignMethod {
    pub fn parse(text: &str) -> Option<SignMethod> {
        match text.to_ascii_lowercase().as_str() {
            "md5" => Some(SignMethod::Md5),
            "hmac" => Some(SignMethod::Hmac),
            "hmac-sha256" | "hmac_sha256" => Some(SignMethod::HmacSha256),
            _ => None,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            SignMethod::Md5 => "md5",
            SignMethod::Hmac => "hmac",
            SignMethod::HmacSha256 => "hmac-sha256",
        }
    }
}

/// The TOP sign over every field except `sign`, empty values skipped, upper-case hex.
pub fn sign(method: SignMethod, secret: &str, fields: &[(String, String)]) -> String {
    let q = wire::concat_sorted(
        fields
            .iter()
            .filter(|(k, v)| k != "sign" && !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let hex = match method {
        SignMethod::Md5 => wire::md5_hex(format!("{secret}{q}{secret}").as_bytes()),
        SignMethod::Hmac => wire::hmac_md5_hex(secret.as_bytes(), q.as_bytes()),
        SignMethod::HmacSha256 => wire::hmac_sha256_hex(secret.as_bytes(), q.as_bytes()),
    };
    hex.to_ascii_uppercase()
}

/// The recursive flatten F of the WDT-over-Qimen `wdt_sign`: object keys sorted (and
/// `wdt3_customer_id` / `wdt_sign` skipped at the top level), `key + F(value)`; arrays
/// concatenated; strings holding a JSON object or array parsed and flattened; bools as
/// `true` / `false`; null empty.
pub fn wdt_flatten(value: &Value, top: bool, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for key in keys {
                if top && (key == "wdt3_customer_id" || key == "wdt_sign") {
                    continue;
                }
                out.push_str(key);
                wdt_flatten(&map[key.as_str()], false, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| wdt_flatten(item, false, out)),
        Value::String(s) => {
            let trimmed = s.trim_start();
            let parsed = (trimmed.starts_with('{') || trimmed.starts_with('['))
                .then(|| serde_json::from_str::<Value>(s).ok())
                .flatten();
            match parsed {
                Some(inner) => wdt_flatten(&inner, false, out),
                None => out.push_str(s),
            }
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Null => {}
    }
}

/// `wdt_sign = lower(md5(wdt_secret + F(fields) + wdt_secret))`, where `fields` are the
/// business form fields plus `method`.
pub fn wdt_sign(wdt_secret: &str, fields: &[(String, String)]) -> String {
    let object: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut flat = String::new();
    wdt_flatten(&Value::Object(object), true, &mut flat);
    wire::md5_hex(format!("{wdt_secret}{flat}{wdt_secret}").as_bytes())
}

#[derive(Debug, Clone)]
struct WdtCredentials {
    appkey: String,
    secret: String,
    salt: String,
    customer_id: Option<String>,
}

/// The Qimen gateway connector.
#[derive(Debug, Clone)]
pub struct Qimen {
    name: String,
    base_url: String,
    app_key: String,
    app_secret: String,
    target_app_key: String,
    sign_method: SignMethod,
    customer_id: Option<String>,
    session: Option<String>,
    wdt: Option<WdtCredentials>,
}

impl Qimen {
    pub fn new(name: &str, connection: &Connection) -> Result<Self, ConnectorError> {
        let s = Settings::new(name, VENDOR, connection);
        let sign_method = match s.optional("sign_method") {
            None => SignMethod::Md5,
            Some(text) => SignMethod::parse(&text).ok_or_else(|| {
                s.bad(format!(
                    "`sign_method` is `{text}`; expected md5, hmac or hmac-sha256"
                ))
            })?,
        };
        let wdt = match s.optional("wdt_appkey") {
            None => None,
            Some(appkey) => Some(WdtCredentials {
                appkey,
                secret: s.required("wdt_secret")?,
                salt: s.required("wdt_salt")?,
                customer_id: s.optional("wdt3_customer_id"),
            }),
        };
        Ok(Qimen {
            name: name.to_owned(),
            base_url: s.base_url()?,
            app_key: s.required("app_key")?,
            app_secret: s.required("app_secret")?,
            target_app_key: s.required("target_app_key")?,
            sign_method,
            customer_id: s.optional("customer_id"),
            session: s.optional("session"),
            wdt,
        })
    }

    fn wdt_fields(
        &self,
        call: &ApiCall,
        datetime: &str,
    ) -> Result<Vec<(String, String)>, ConnectorError> {
        let creds = self
            .wdt
            .as_ref()
            .ok_or_else(|| ConnectorError::MissingSetting {
                connection: self.name.clone(),
                vendor: VENDOR,
                key: "wdt_appkey".to_owned(),
            })?;
        let mut pager = Map::new();
        let mut params = Map::new();
        let mut extra = Vec::new();
        if let Some(Value::Object(p)) = call.params.get("pager") {
            pager = p.clone();
        }
        match call.params.get("params") {
            Some(Value::Object(p)) => params = p.clone(),
            Some(other) => extra.push(("params".to_owned(), wire::scalar_text(other))),
            None => {}
        }
        let nested = call.params.contains_key("params");
        for (k, v) in &call.params {
            match k.as_str() {
                "pager" | "params" => {}
                "page_no" | "page_size" => {
                    pager.insert(k.clone(), v.clone());
                }
                _ if nested => extra.push((k.clone(), field_text(v))),
                _ => {
                    params.insert(k.clone(), v.clone());
                }
            }
        }
        let mut fields = vec![];
        let params_is_object = matches!(call.params.get("params"), Some(Value::Object(_)));
        if params_is_object || !nested {
            fields.push(("params".to_owned(), Value::Object(params).to_string()));
        }
        if !pager.is_empty() {
            fields.push(("pager".to_owned(), Value::Object(pager).to_string()));
        }
        fields.extend(extra);
        fields.push(("datetime".to_owned(), datetime.to_owned()));
        fields.push(("wdt_appkey".to_owned(), creds.appkey.clone()));
        fields.push(("wdt_salt".to_owned(), creds.salt.clone()));
        let mut signed = fields.clone();
        signed.push(("method".to_owned(), call.endpoint.clone()));
        fields.push(("wdt_sign".to_owned(), wdt_sign(&creds.secret, &signed)));
        if let Some(customer) = &creds.customer_id {
            fields.push(("wdt3_customer_id".to_owned(), customer.clone()));
        }
        Ok(fields)
    }
}

/// A business param as a form field: objects and arrays as JSON strings.
fn field_text(value: &Value) -> String {
    wire::scalar_text(value)
}

/// `yyyy-MM-dd HH:mm:ss` in GMT+8.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl Connector for Qimen {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Qimen
    }

    fn prepare(
        &self,
        call: &ApiCall,
        now: DateTime<Utc>,
        _token: Option<&Token>,
    ) -> Result<PreparedRequest, ConnectorError> {
        let ts = timestamp(now);
        let mut fields: Vec<(String, String)> = vec![
            ("method".to_owned(), call.endpoint.clone()),
            ("app_key".to_owned(), self.app_key.clone()),
            ("target_app_key".to_owned(), self.target_app_key.clone()),
            ("timestamp".to_owned(), ts.clone()),
            ("format".to_owned(), "json".to_owned()),
            ("v".to_owned(), "2.0".to_owned()),
            (
                "sign_method".to_owned(),
                self.sign_method.keyword().to_owned(),
            ),
        ];
        if let Some(session) = &self.session {
            fields.push(("session".to_owned(), session.clone()));
        }
        if call.endpoint.starts_with("wdt.") {
            fields.extend(self.wdt_fields(call, &ts)?);
        } else {
            if let Some(customer) = &self.customer_id {
                if call.endpoint.starts_with("jushuitan.")
                    && !call.params.contains_key("customer_id")
                {
                    fields.push(("customer_id".to_owned(), customer.clone()));
                }
            }
            for (k, v) in &call.params {
                if !v.is_null() {
                    fields.push((k.clone(), field_text(v)));
                }
            }
        }
        fields.retain(|(_, v)| !v.is_empty());
        let signature = sign(self.sign_method, &self.app_secret, &fields);
        fields.push(("sign".to_owned(), signature));
        Ok(PreparedRequest::post(
            FORM_UTF8,
            wire::with_query(&self.base_url, &call.query),
            wire::form_encode(&fields),
            &call.headers,
        ))
    }

    fn classify(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
        match wire::decode(status, headers, body) {
            Ok(value) => classify_value(value),
            Err(outcome) => outcome,
        }
    }

    fn endpoint_info(&self, endpoint: &str) -> EndpointInfo {
        endpoint_info(endpoint)
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.app_secret.clone()];
        secrets.extend(self.session.clone());
        if let Some(wdt) = &self.wdt {
            secrets.push(wdt.secret.clone());
            secrets.push(wdt.salt.clone());
        }
        secrets
    }
}

/// Classifies a TOP `error_response`.
fn classify_top_error(error: &Value) -> Outcome {
    let code = wire::code_text(error.get("code"));
    let sub_code = wire::code_text(error.get("sub_code"));
    let msg = wire::message_of(error, &["msg"]);
    let sub_msg = wire::message_of(error, &["sub_msg"]);
    let message = if sub_msg.is_empty() {
        msg.clone()
    } else {
        format!("{msg}: {sub_msg}")
    };
    let code = if sub_code.is_empty() {
        code
    } else {
        format!("{code}/{sub_code}")
    };
    let (top, sub) = code.split_once('/').unwrap_or((code.as_str(), ""));
    let throttled = top == "7"
        || sub.starts_with("accesscontrol.")
        || sub.contains("limited-by")
        || sub_msg.contains("限流")
        || sub_msg.contains("频");
    if throttled {
        let wait = ban_seconds(&sub_msg).unwrap_or(1);
        return Outcome::Throttled {
            code,
            message,
            retry_after: Some(Duration::from_secs(wait)),
        };
    }
    if sub.starts_with("isp.") || top == "10" {
        return Outcome::Transient { code, message };
    }
    if top == "27" || sub.contains("session") {
        return Outcome::AuthExpired { code, message };
    }
    Outcome::Fatal { code, message }
}

/// "This ban will last for N more seconds" → N.
fn ban_seconds(sub_msg: &str) -> Option<u64> {
    let rest = sub_msg.split("last for ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Classifies a decoded Qimen response body.
pub fn classify_value(value: Value) -> Outcome {
    if let Some(error) = value.get("error_response") {
        return classify_top_error(error);
    }
    let inner = match value {
        Value::Object(mut map) if map.get("response").is_some_and(Value::is_object) => {
            map.remove("response").unwrap_or(Value::Null)
        }
        other => other,
    };
    if let Some(flag) = inner.get("flag").and_then(Value::as_str) {
        if flag == "failure" {
            let code = wire::code_text(inner.get("code"));
            let message = wire::message_of(&inner, &["message", "msg"]);
            if message.contains("限流") || message.contains("频") {
                return Outcome::Throttled {
                    code,
                    message,
                    retry_after: Some(Duration::from_secs(1)),
                };
            }
            return Outcome::Fatal { code, message };
        }
        return Outcome::Data(inner);
    }
    if inner.get("status").is_some() && inner.get("code").is_none() {
        return wdt::classify_envelope(inner);
    }
    if inner.get("code").is_some() {
        return jushuitan::classify_envelope(inner);
    }
    Outcome::Data(inner)
}

/// What is known of Qimen-routed `endpoint` (a method name).
pub fn endpoint_info(endpoint: &str) -> EndpointInfo {
    if endpoint.starts_with("wdt.") {
        let mut info = EndpointInfo {
            page_base: Some(1),
            max_page_size: Some(200),
            total_path: Some(FieldPath::parse("data.total_count")),
            records_path: Some(FieldPath::parse("data.order")),
            ..EndpointInfo::default()
        };
        if endpoint == "wdt.aftersales.refund.refund.search" {
            info.max_window = Some(Duration::from_secs(30 * 86_400));
        }
        return info;
    }
    if endpoint.starts_with("jushuitan.") {
        let rates = vec![(5, Duration::from_secs(1)), (100, Duration::from_secs(60))];
        let mut info = EndpointInfo {
            page_base: Some(1),
            records_path: Some(FieldPath::parse("data.datas")),
            has_next_path: Some(FieldPath::parse("data.has_next")),
            total_path: Some(FieldPath::parse("data.data_count")),
            rate: rates.first().copied(),
            rates,
            ..EndpointInfo::default()
        };
        if endpoint == "jushuitan.refund.list.query" {
            info.max_page_size = Some(100);
            info.max_window = Some(Duration::from_secs(7 * 86_400));
        }
        return info;
    }
    EndpointInfo::default()
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

    fn qimen(extra: &[(&str, &str)]) -> Qimen {
        let mut settings = vec![
            (
                "base_url",
                "http://qimen.api.taobao.com/router/qimen/service",
            ),
            ("app_key", "ak"),
            ("app_secret", "sec"),
            ("target_app_key", "23060081"),
            ("customer_id", "cust"),
        ];
        settings.extend_from_slice(extra);
        Qimen::new("qm", &connection(&settings)).unwrap()
    }

    fn call(endpoint: &str, params: &str) -> ApiCall {
        ApiCall {
            endpoint: endpoint.to_owned(),
            http_method: HttpMethod::Post,
            params: serde_json::from_str(params).unwrap(),
            query: vec![],
            headers: vec![],
        }
    }

    fn form(req: &PreparedRequest) -> Vec<(String, String)> {
        wire::form_decode(req.body.as_deref().unwrap_or_default().as_bytes())
    }

    fn get(form: &[(String, String)], key: &str) -> Option<String> {
        form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn top_md5_sign_matches_hand_computation() {
        let fields: Vec<(String, String)> = vec![
            ("method".to_owned(), "m".to_owned()),
            ("app_key".to_owned(), "a".to_owned()),
            ("empty".to_owned(), String::new()),
        ];
        let expected = wire::md5_hex(b"secapp_keyamethodmsec").to_ascii_uppercase();
        assert_eq!(sign(SignMethod::Md5, "sec", &fields), expected);
        let hmac = wire::hmac_md5_hex(b"sec", b"app_keyamethodm").to_ascii_uppercase();
        assert_eq!(sign(SignMethod::Hmac, "sec", &fields), hmac);
        assert_ne!(sign(SignMethod::HmacSha256, "sec", &fields), hmac);
    }

    #[test]
    fn jushuitan_params_are_top_level_fields() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let req = qimen(&[])
            .prepare(
                &call(
                    "jushuitan.refund.list.query",
                    r#"{"page_index":1,"page_size":100,"start_time":"2024-01-01 00:00:00","so_ids":["a","b"]}"#,
                ),
                now,
                None,
            )
            .unwrap();
        let f = form(&req);
        assert_eq!(get(&f, "timestamp").as_deref(), Some("2024-01-01 08:00:00"));
        assert_eq!(get(&f, "page_index").as_deref(), Some("1"));
        assert_eq!(get(&f, "so_ids").as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(get(&f, "customer_id").as_deref(), Some("cust"));
        assert_eq!(get(&f, "sign"), Some(sign(SignMethod::Md5, "sec", &f)));
    }

    #[test]
    fn wdt_params_become_json_strings_with_wdt_sign() {
        let q = qimen(&[
            ("wdt_appkey", "wk"),
            ("wdt_secret", "ws"),
            ("wdt_salt", "wsalt"),
            ("wdt3_customer_id", "c3"),
        ]);
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let req = q
            .prepare(
                &call(
                    "wdt.aftersales.refund.refund.search",
                    r#"{"pager":{"page_size":50,"page_no":1},"params":{"modified_from":"a","modified_to":"b"}}"#,
                ),
                now,
                None,
            )
            .unwrap();
        let f = form(&req);
        assert_eq!(
            get(&f, "pager").as_deref(),
            Some(r#"{"page_size":50,"page_no":1}"#)
        );
        assert_eq!(
            get(&f, "params").as_deref(),
            Some(r#"{"modified_from":"a","modified_to":"b"}"#)
        );
        // F: sorted keys; JSON strings flattened; wdt3_customer_id excluded.
        let flat = "datetime2024-01-01 08:00:00methodwdt.aftersales.refund.refund.search\
                    pagerpage_no1page_size50paramsmodified_fromamodified_tob\
                    wdt_appkeywkwdt_saltwsalt";
        assert_eq!(
            get(&f, "wdt_sign"),
            Some(wire::md5_hex(format!("ws{flat}ws").as_bytes()))
        );
        assert_eq!(get(&f, "sign"), Some(sign(SignMethod::Md5, "sec", &f)));
    }

    #[test]
    fn wdt_without_credentials_is_an_error() {
        let err = qimen(&[])
            .prepare(&call("wdt.x", "{}"), Utc::now(), None)
            .unwrap_err();
        assert!(err.to_string().contains("wdt_appkey"), "{err}");
    }

    #[test]
    fn decodes_code15_throttle_sample() {
        let outcome = qimen(&[]).classify(
            200,
            &[],
            samples::get("taobao_top_error_response_code15_throttle.json"),
        );
        assert!(
            matches!(outcome, Outcome::Throttled { ref code, .. } if code == "15/9100"),
            "{outcome:?}"
        );
    }

    #[test]
    fn classifies_top_errors() {
        let c = |body: &str| qimen(&[]).classify(200, &[], body.as_bytes());
        assert_eq!(
            c(
                r#"{"error_response":{"code":7,"msg":"App Call Limited","sub_code":"accesscontrol.limited-by-app-access-count","sub_msg":"This ban will last for 12 more seconds"}}"#
            ),
            Outcome::Throttled {
                code: "7/accesscontrol.limited-by-app-access-count".to_owned(),
                message: "App Call Limited: This ban will last for 12 more seconds".to_owned(),
                retry_after: Some(Duration::from_secs(12)),
            }
        );
        assert!(matches!(
            c(
                r#"{"error_response":{"code":15,"msg":"Remote service error","sub_code":"isp.remote-service-timeout"}}"#
            ),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            c(r#"{"error_response":{"code":25,"msg":"Invalid signature"}}"#),
            Outcome::Fatal { ref code, .. } if code == "25"
        ));
        assert!(matches!(
            c(r#"{"response":{"flag":"failure","code":"E1","message":"bad"}}"#),
            Outcome::Fatal { ref code, .. } if code == "E1"
        ));
    }

    #[test]
    fn unwraps_response_for_jst_and_wdt() {
        let c = |body: &str| qimen(&[]).classify(200, &[], body.as_bytes());
        let wrapped = c(
            r#"{"response":{"code":0,"msg":"ok","data":{"datas":[{"as_id":1}],"has_next":false}}}"#,
        );
        assert!(
            matches!(wrapped, Outcome::Data(ref v) if walk(v, &["data","datas","0","as_id"]) == Some(&Value::from(1)))
        );
        let plain = c(r#"{"code":0,"data":{"datas":[]}}"#);
        assert!(matches!(plain, Outcome::Data(_)));
        assert!(matches!(
            c(r#"{"response":{"code":199,"msg":"x"}}"#),
            Outcome::Throttled { .. }
        ));
        let wdt = c(r#"{"response":{"status":0,"data":{"total_count":0,"order":[]}}}"#);
        assert!(matches!(wdt, Outcome::Data(ref v) if v.get("status").is_some()));
        assert!(matches!(
            c(r#"{"response":{"status":100,"message":"查询时间不能大于30天"}}"#),
            Outcome::Fatal { .. }
        ));
        // The YonBIP wrapper around this very method decodes too.
        assert!(matches!(
            qimen(&[]).classify(
                200,
                &[],
                samples::get("jushuitan_refund_list_TEMPLATE_yonbip_wrapper.json")
            ),
            Outcome::Data(_)
        ));
    }
}
