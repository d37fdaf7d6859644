//! Jackyun (吉客云) open API: one form-POST gateway for every method, `bizcontent` as a
//! JSON string, the lowercase-then-md5 sign, the `{code, subCode, result}` envelope with
//! `result.data` possibly a JSON string. [`sign`] is reused by the simulator.
//!
//! Profile settings (connection `kind: jikeyun`):
//! - `base_url`: the full gateway URL, `https://open.jackyun.com/open/openapi/do`.
//! - `app_key` (sent as `appkey`), `app_secret`.
//! - `success_code` (optional): `200`, `0`, or `any` (default: both 200 and 0 mean
//!   success; sources disagree, see PROTOCOLS §7.1). `subCode` must be empty or all zeros.
//! - `version` (optional): default `v1.0`.
//! - `token` (optional): sent as `token` (not signed), for methods that want one.
//!
//! `erp.warehouse.get` pages with `pageIndex` from 0 (what clients send; unverified) and
//! ends on a short page (`pageInfo.total` is unreliable on some methods).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::wire::{self, Settings};
use super::{
    ApiCall, Connector, ConnectorError, EndpointInfo, Outcome, PreparedRequest, Token, FORM_UTF8,
};
use crate::config::Connection;
use crate::plan::{walk, ConnectorKind, FieldPath};

const VENDOR: &str = "jikeyun";

/// Every profile key a `kind: jikeyun` connection takes (besides `kind`); `check` refuses others.
pub(super) const PROFILE_KEYS: &[&str] = &[
    "base_url",
    "app_key",
    "app_secret",
    "version",
    "token",
    "success_code",
];

/// subCodes with a known meaning.
pub const SUB_SIGN_ERROR: &str = "0858030801";
pub const SUB_APPKEY_UNKNOWN: &str = "0858030802";
pub const SUB_TOKEN_EXPIRED: &str = "0858030803";
pub const SUB_NOT_SUBSCRIBED: &str = "0130020310";
pub const SUB_PARAM_ERROR: &str = "0050030002";
pub const SUB_THROTTLED: &str = "0859999999";

/// `hex(md5(lower(secret + concat(k + v for sorted k) + secret)))`, skipping `sign`,
/// `token` and `contextid`.
pub fn sign(secret: &str, fields: &[(String, String)]) -> String {
    let body = wire::concat_sorted(
        fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "sign" | "token" | "contextid"))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    wire::md5_hex(format!("{secret}{body}{secret}").to_lowercase().as_bytes())
}

/// Which `code` values mean success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuccessCode {
    Code200,
    Code0,
    Any,
}

impl SuccessCode {
    fn accepts(self, code: &str) -> bool {
        match self {
            SuccessCode::Code200 => code == "200",
            SuccessCode::Code0 => code == "0",
            SuccessCode::Any => code == "200" || code == "0",
        }
    }
}

/// The Jackyun connector.
#[derive(Debug, Clone)]
pub struct Jikeyun {
    base_url: String,
    app_key: String,
    app_secret: String,
    version: String,
    token: Option<String>,
    success: SuccessCode,
}

impl Jikeyun {
    pub fn new(name: &str, connection: &Connection) -> Result<Self, ConnectorError> {
        let s = Settings::new(name, VENDOR, connection);
        let success = match s.optional("success_code").as_deref() {
            None | Some("any") => SuccessCode::Any,
            Some("200") => SuccessCode::Code200,
            Some("0") => SuccessCode::Code0,
            Some(other) => {
                return Err(s.bad(format!(
                    "`success_code` is `{other}`; expected 200, 0 or any"
                )))
            }
        };
        Ok(Jikeyun {
            base_url: s.base_url()?,
            app_key: s.required("app_key")?,
            app_secret: s.required("app_secret")?,
            version: s.optional("version").unwrap_or_else(|| "v1.0".to_owned()),
            token: s.optional("token"),
            success,
        })
    }
}

/// `yyyy-MM-dd HH:mm:ss` in Asia/Shanghai.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl Connector for Jikeyun {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Jikeyun
    }

    fn prepare(
        &self,
        call: &ApiCall,
        now: DateTime<Utc>,
        _token: Option<&Token>,
    ) -> Result<PreparedRequest, ConnectorError> {
        let mut fields: Vec<(String, String)> = vec![
            ("method".to_owned(), call.endpoint.clone()),
            ("appkey".to_owned(), self.app_key.clone()),
            ("version".to_owned(), self.version.clone()),
            ("contenttype".to_owned(), "json".to_owned()),
            ("timestamp".to_owned(), timestamp(now)),
            (
                "bizcontent".to_owned(),
                Value::Object(call.params.clone()).to_string(),
            ),
        ];
        let signature = sign(&self.app_secret, &fields);
        fields.push(("sign".to_owned(), signature));
        if let Some(token) = &self.token {
            fields.push(("token".to_owned(), token.clone()));
        }
        Ok(PreparedRequest::post(
            FORM_UTF8,
            wire::with_query(&self.base_url, &call.query),
            wire::form_encode(&fields),
            &call.headers,
        ))
    }

    fn classify(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
        match wire::decode(status, headers, body) {
            Ok(value) => classify_envelope(value, self.success),
            Err(outcome) => outcome,
        }
    }

    fn endpoint_info(&self, endpoint: &str) -> EndpointInfo {
        endpoint_info(endpoint)
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.app_secret.clone()];
        secrets.extend(self.token.clone());
        secrets
    }
}

fn is_ok_sub_code(sub: &str) -> bool {
    sub.chars().all(|c| c == '0')
}

/// Classifies a decoded `{code, msg, subCode, result}` envelope.
pub fn classify_envelope(mut value: Value, success: SuccessCode) -> Outcome {
    let code = wire::code_text(value.get("code"));
    let sub = wire::code_text(value.get("subCode"));
    let message = wire::message_of(&value, &["msg", "message", "subMsg"]);
    if success.accepts(&code) && is_ok_sub_code(&sub) {
        let data = walk(&value, &["result", "data"]).cloned();
        if let Some(Value::String(text)) = data {
            match serde_json::from_str::<Value>(&text) {
                Ok(parsed) => {
                    if let Some(result) = value.get_mut("result").and_then(Value::as_object_mut) {
                        result.insert("data".to_owned(), parsed);
                    }
                }
                Err(e) => {
                    return Outcome::Transient {
                        code: "invalid_json".to_owned(),
                        message: format!(
                            "jikeyun `result.data` is a string that is not valid JSON ({e}); \
                             the response may be torn: {}",
                            wire::snippet(text.as_bytes())
                        ),
                    }
                }
            }
        }
        return Outcome::Data(value);
    }
    let shown = if is_ok_sub_code(&sub) {
        code.clone()
    } else {
        sub.clone()
    };
    match sub.as_str() {
        SUB_THROTTLED => Outcome::Throttled {
            code: shown,
            message,
            retry_after: Some(Duration::from_secs(1)),
        },
        SUB_TOKEN_EXPIRED => Outcome::AuthExpired {
            code: shown,
            message,
        },
        SUB_SIGN_ERROR | SUB_APPKEY_UNKNOWN | SUB_NOT_SUBSCRIBED | SUB_PARAM_ERROR => {
            Outcome::Fatal {
                code: shown,
                message,
            }
        }
        _ if code.parse::<i64>().is_ok_and(|c| c >= 500) && is_ok_sub_code(&sub) => {
            Outcome::Transient {
                code: shown,
                message,
            }
        }
        _ => Outcome::Fatal {
            code: if shown.is_empty() {
                "missing_code".to_owned()
            } else {
                shown
            },
            message,
        },
    }
}

/// What is known of `endpoint` (a method name).
pub fn endpoint_info(endpoint: &str) -> EndpointInfo {
    match endpoint {
        "erp.warehouse.get" => EndpointInfo {
            page_base: Some(0),
            max_page_size: Some(200),
            records_path: Some(FieldPath::parse("result.data.warehouseInfo")),
            ..EndpointInfo::default()
        },
        _ => EndpointInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::samples;
    use crate::plan::HttpMethod;
    use chrono::TimeZone;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn connection(settings: &[(&str, &str)]) -> Connection {
        samples::connection(VENDOR, settings)
    }

    fn jky(extra: &[(&str, &str)]) -> Jikeyun {
        let mut settings = vec![
            ("base_url", "https://open.jackyun.com/open/openapi/do"),
            ("app_key", "187657"),
            ("app_secret", "sec"),
        ];
        settings.extend_from_slice(extra);
        Jikeyun::new("jky", &connection(&settings)).unwrap()
    }

    #[test]
    fn minimal_vector() {
        assert_eq!(
            sign("abc", &pairs(&[("b", "2"), ("a", "1")])),
            "e77954332c159b0debe418aa512025d0"
        );
        // token and contextid are not signed
        assert_eq!(
            sign(
                "abc",
                &pairs(&[("b", "2"), ("a", "1"), ("token", "t"), ("contextid", "c")])
            ),
            "e77954332c159b0debe418aa512025d0"
        );
    }

    #[test]
    fn official_doc_vector() {
        let biz = r#"{"brandName":"衣服","cateName":"拉链","costValuationMethod":0,"goodsAlias":"花之春","goodsAttr":1,"goodsMemo":"货品备注","goodsName":"行李包 花之春","goodsNameEn":"spring","goodsNo":"H06-2","isBatchManagement":0,"isCustomizProduction":0,"isDoorService":0,"isPaidService":0,"isPeriodManage":0,"isPickupCard":0,"isProsaleProduct":0,"isProxySale":0,"isSerialManagement":0,"outSkuCode":"8714wtst","ownerId":"jackyun_dev","ownerName":"jackyun_dev","shelfLife":0,"shelfLiftUnit":"","skuBarcode":"76620423621","skuHeight":3,"skuId":"","skuLength":3,"skuName":"无特殊字符","skuWeight":20,"skuWidth":4,"unitName":"件"}"#;
        let fields = pairs(&[
            ("appkey", "187657"),
            ("bizcontent", biz),
            ("contenttype", "json"),
            ("method", "erp.goods.skuimport"),
            ("timestamp", "2019-07-30 15:18:30"),
            ("version", "v1.0"),
        ]);
        assert_eq!(
            sign("f0d1483f1f2e49cea3dfd48c8d7e3c23", &fields),
            "04f5cccd1b52125ca5161472ffb42196"
        );
    }

    #[test]
    fn prepare_signs_the_form() {
        let call = ApiCall {
            endpoint: "erp.warehouse.get".to_owned(),
            http_method: HttpMethod::Post,
            params: serde_json::from_str(r#"{"pageIndex":0,"pageSize":100}"#).unwrap(),
            query: vec![],
            headers: vec![],
        };
        let now = Utc.with_ymd_and_hms(2019, 7, 30, 7, 18, 30).unwrap();
        let req = jky(&[("token", "tk")]).prepare(&call, now, None).unwrap();
        let form = wire::form_decode(req.body.as_deref().unwrap().as_bytes());
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("timestamp").as_deref(), Some("2019-07-30 15:18:30"));
        assert_eq!(
            get("bizcontent").as_deref(),
            Some(r#"{"pageIndex":0,"pageSize":100}"#)
        );
        assert_eq!(get("token").as_deref(), Some("tk"));
        assert_eq!(get("sign"), Some(sign("sec", &form)));
    }

    #[test]
    fn decodes_not_subscribed_sample() {
        let outcome = jky(&[]).classify(
            200,
            &[],
            samples::get("jikeyun_error_api_not_subscribed.json"),
        );
        assert_eq!(
            outcome,
            Outcome::Fatal {
                code: "0130020310".to_owned(),
                message: "appKey=22258171,method=...,未查询到应用或应用未订阅此API".to_owned(),
            }
        );
    }

    #[test]
    fn string_data_is_parsed_and_both_success_codes_accepted() {
        let body = r#"{"code":200,"msg":"ok","subCode":null,"result":{"data":"{\"warehouseInfo\":[{\"warehouseId\":1}]}"}}"#;
        match jky(&[]).classify(200, &[], body.as_bytes()) {
            Outcome::Data(v) => assert_eq!(
                walk(&v, &["result", "data", "warehouseInfo", "0", "warehouseId"]),
                Some(&Value::from(1))
            ),
            other => panic!("{other:?}"),
        }
        let zero = r#"{"code":0,"subCode":"000","result":{"data":{"warehouseInfo":[]}}}"#;
        assert!(matches!(
            jky(&[]).classify(200, &[], zero.as_bytes()),
            Outcome::Data(_)
        ));
        assert!(matches!(
            jky(&[("success_code", "200")]).classify(200, &[], zero.as_bytes()),
            Outcome::Fatal { .. }
        ));
    }

    #[test]
    fn classifies_sub_codes() {
        let c = |sub: &str| {
            let body = format!(r#"{{"code":0,"msg":"m","subCode":"{sub}","result":{{}}}}"#);
            jky(&[]).classify(200, &[], body.as_bytes())
        };
        assert!(matches!(c(SUB_THROTTLED), Outcome::Throttled { .. }));
        assert!(matches!(c(SUB_TOKEN_EXPIRED), Outcome::AuthExpired { .. }));
        for sub in [SUB_SIGN_ERROR, SUB_APPKEY_UNKNOWN, SUB_PARAM_ERROR] {
            assert!(
                matches!(c(sub), Outcome::Fatal { ref code, .. } if code == sub),
                "{sub}"
            );
        }
        let torn = r#"{"code":200,"result":{"data":"{\"warehouseInfo\":[{\"wareh"}}"#;
        assert!(matches!(
            jky(&[]).classify(200, &[], torn.as_bytes()),
            Outcome::Transient { .. }
        ));
    }
}
