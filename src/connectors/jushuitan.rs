//! Jushuitan (聚水潭) open API (openweb): form POST to `base_url + path`, the md5 sign,
//! the token lifecycle (`getInitToken` / `refreshToken`), the `{code,msg,data}` envelope
//! and error codes. Also owns [`classify_envelope`], reused by the Qimen connector for
//! `jushuitan.*` methods, and [`sign`], reused by the simulator.
//!
//! Profile settings (connection `kind: jushuitan`):
//! - `base_url`: `https://openapi.jushuitan.com` (test: `https://dev-api.jushuitan.com`).
//! - `app_key`, `app_secret`: the open-platform app.
//! - `access_token` (optional): a merchant token; when absent, one is fetched through
//!   `/openWeb/auth/getInitToken`.
//! - `refresh_token` (optional): lets an expired profile token be refreshed through
//!   `/openWeb/auth/refreshToken` instead of re-initialised.
//!
//! Every request is POSTed whatever the spec's HTTP method: the vendor only takes POST.
//! Error 140 (timestamp more than 15 minutes off) is classified fatal: the timestamp comes
//! from our clock, so retrying with the same clock fails again; fix the clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::wire::{self, Settings};
use super::{ApiCall, Connector, ConnectorError, EndpointInfo, Outcome, PreparedRequest, Token};
use crate::config::Connection;
use crate::plan::{walk, ConnectorKind, FieldPath};

const VENDOR: &str = "jushuitan";

/// Every profile key a `kind: jushuitan` connection takes (besides `kind`); `check` refuses others.
pub(super) const PROFILE_KEYS: &[&str] = &[
    "base_url",
    "app_key",
    "app_secret",
    "access_token",
    "refresh_token",
];
const FORM: &str = "application/x-www-form-urlencoded;charset=UTF-8";
/// Token lifetime the vendor reports (`expires_in` 2592000 s); used for profile tokens.
const PROFILE_TOKEN_LIFETIME: i64 = 2_592_000;

/// `lower(md5(secret + concat(k + v for sorted k)))` over every field except `sign`,
/// empty values dropped.
pub fn sign(secret: &str, fields: &[(String, String)]) -> String {
    let body = wire::concat_sorted(
        fields
            .iter()
            .filter(|(k, v)| k != "sign" && !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    wire::md5_hex(format!("{secret}{body}").as_bytes())
}

/// The Jushuitan open-API connector.
#[derive(Debug, Clone)]
pub struct Jushuitan {
    base_url: String,
    app_key: String,
    app_secret: String,
    access_token: Option<String>,
    refresh_token: Option<String>,
}

impl Jushuitan {
    pub fn new(name: &str, connection: &Connection) -> Result<Self, ConnectorError> {
        let s = Settings::new(name, VENDOR, connection);
        Ok(Jushuitan {
            base_url: s.base_url()?,
            app_key: s.required("app_key")?,
            app_secret: s.required("app_secret")?,
            access_token: s.optional("access_token"),
            refresh_token: s.optional("refresh_token"),
        })
    }

    fn signed_form(&self, mut fields: Vec<(String, String)>) -> String {
        let signature = sign(&self.app_secret, &fields);
        fields.retain(|(_, v)| !v.is_empty());
        fields.push(("sign".to_owned(), signature));
        wire::form_encode(&fields)
    }
}

fn pair(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

impl Connector for Jushuitan {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Jushuitan
    }

    fn prepare(
        &self,
        call: &ApiCall,
        now: DateTime<Utc>,
        token: Option<&Token>,
    ) -> Result<PreparedRequest, ConnectorError> {
        let access_token = token
            .map(|t| t.access_token.clone())
            .or_else(|| self.access_token.clone())
            .ok_or_else(|| ConnectorError::BadToken {
                vendor: VENDOR,
                message: "no access token: set `access_token` in the profile or fetch one \
                          with token_request"
                    .to_owned(),
            })?;
        let biz = if call.params.is_empty() {
            "{}".to_owned()
        } else {
            Value::Object(call.params.clone()).to_string()
        };
        let fields = vec![
            pair("app_key", self.app_key.clone()),
            pair("access_token", access_token),
            pair("timestamp", now.timestamp().to_string()),
            pair("version", "2"),
            pair("charset", "utf-8"),
            pair("biz", biz),
        ];
        let path = if call.endpoint.starts_with('/') {
            call.endpoint.clone()
        } else {
            format!("/{}", call.endpoint)
        };
        let url = wire::with_query(&format!("{}{path}", self.base_url), &call.query);
        Ok(PreparedRequest::post(
            FORM,
            url,
            self.signed_form(fields),
            &call.headers,
        ))
    }

    fn classify(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
        match wire::decode(status, headers, body) {
            Ok(value) => classify_envelope(value),
            Err(outcome) => outcome,
        }
    }

    fn token_request(
        &self,
        now: DateTime<Utc>,
        current: Option<&Token>,
    ) -> Result<Option<PreparedRequest>, ConnectorError> {
        let refresh = current
            .and_then(|t| t.refresh_token.clone())
            .or_else(|| self.refresh_token.clone());
        let timestamp = now.timestamp().to_string();
        let (path, fields) = match refresh {
            Some(refresh_token) => (
                "/openWeb/auth/refreshToken",
                vec![
                    pair("app_key", self.app_key.clone()),
                    pair("timestamp", timestamp),
                    pair("grant_type", "refresh_token"),
                    pair("charset", "utf-8"),
                    pair("refresh_token", refresh_token),
                    pair("scope", "all"),
                ],
            ),
            None => (
                "/openWeb/auth/getInitToken",
                vec![
                    pair("app_key", self.app_key.clone()),
                    pair("timestamp", timestamp),
                    pair("grant_type", "authorization_code"),
                    pair("charset", "utf-8"),
                    // The vendor wants "any 6 characters"; derived from the clock to stay pure.
                    pair(
                        "code",
                        format!("{:06}", now.timestamp().rem_euclid(1_000_000)),
                    ),
                ],
            ),
        };
        let url = format!("{}{path}", self.base_url);
        Ok(Some(PreparedRequest::post(
            FORM,
            url,
            self.signed_form(fields),
            &[],
        )))
    }

    fn parse_token(&self, now: DateTime<Utc>, body: &[u8]) -> Result<Token, ConnectorError> {
        parse_token_body(now, body)
    }

    fn profile_token(&self, now: DateTime<Utc>) -> Option<Token> {
        self.access_token.as_ref().map(|access_token| Token {
            access_token: access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            expires_at: now + chrono::Duration::seconds(PROFILE_TOKEN_LIFETIME),
        })
    }

    fn endpoint_info(&self, endpoint: &str) -> EndpointInfo {
        endpoint_info(endpoint)
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.app_secret.clone()];
        secrets.extend(self.access_token.clone());
        secrets.extend(self.refresh_token.clone());
        secrets
    }
}

/// Reads `{"code":0,"data":{"access_token","expires_in","refresh_token"}}`.
fn parse_token_body(now: DateTime<Utc>, body: &[u8]) -> Result<Token, ConnectorError> {
    let bad = |message: String| ConnectorError::BadToken {
        vendor: VENDOR,
        message,
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("not JSON ({e}): {}", wire::snippet(body))))?;
    let code = wire::code_text(value.get("code"));
    if code != "0" {
        return Err(bad(format!(
            "code {code}: {}",
            wire::message_of(&value, &["msg", "message"])
        )));
    }
    let data = value
        .get("data")
        .ok_or_else(|| bad("no `data`".to_owned()))?;
    let access_token = data
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no `data.access_token`".to_owned()))?;
    let expires_in = data
        .get("expires_in")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        .ok_or_else(|| bad("no `data.expires_in`".to_owned()))?;
    Ok(Token {
        access_token: access_token.to_owned(),
        refresh_token: data
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_owned),
        expires_at: now + chrono::Duration::seconds(expires_in),
    })
}

/// Classifies a decoded Jushuitan envelope `{code, msg, data}`.
///
/// A string code `"200"` next to a `data.datas` array is a wrapper's success (the YonBIP
/// wrapper sample uses HTTP-style codes), not Jushuitan's "100 per minute" throttle.
pub fn classify_envelope(value: Value) -> Outcome {
    let code = wire::code_text(value.get("code"));
    let message = wire::message_of(&value, &["msg", "message"]);
    let wrapped_success = code == "200"
        && value.get("code").is_some_and(Value::is_string)
        && walk(&value, &["data", "datas"]).is_some_and(Value::is_array);
    if code == "0" || wrapped_success {
        return Outcome::Data(value);
    }
    match code.as_str() {
        "" => Outcome::Fatal {
            code: "missing_code".to_owned(),
            message: format!("jushuitan envelope has no `code`: {}", value),
        },
        "199" => Outcome::Throttled {
            code,
            message,
            retry_after: Some(Duration::from_secs(1)),
        },
        "200" => Outcome::Throttled {
            code,
            message,
            retry_after: Some(Duration::from_secs(60)),
        },
        "100" => Outcome::AuthExpired { code, message },
        _ => Outcome::Fatal { code, message },
    }
}

/// What Jushuitan publishes for `endpoint` (a path).
pub fn endpoint_info(endpoint: &str) -> EndpointInfo {
    let rates = vec![(5, Duration::from_secs(1)), (100, Duration::from_secs(60))];
    let mut info = EndpointInfo {
        page_base: Some(1),
        records_path: Some(FieldPath::parse("data.datas")),
        has_next_path: Some(FieldPath::parse("data.has_next")),
        rate: rates.first().copied(),
        rates,
        ..EndpointInfo::default()
    };
    match endpoint {
        "/open/refund/single/query" | "/open/orders/out/simple/query" => {
            info.max_page_size = Some(50);
            info.max_window = Some(Duration::from_secs(7 * 86_400));
            info.total_path = Some(FieldPath::parse("data.data_count"));
        }
        e if e.starts_with("/open/inventory/") => info.max_page_size = Some(100),
        _ => {}
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::HttpMethod;
    use chrono::TimeZone;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| pair(k, *v)).collect()
    }

    pub(crate) fn connection(settings: &[(&str, &str)]) -> Connection {
        crate::connectors::samples::connection(VENDOR, settings)
    }

    fn sample(name: &str) -> Vec<u8> {
        crate::connectors::samples::get(name).to_vec()
    }

    #[test]
    fn published_vector_with_biz() {
        let fields = pairs(&[
            ("app_key", "5b53060f23d84ddf9703056e84fa5a2d"),
            ("access_token", "d7b01bf0842a4742a9450e21ffd95f60"),
            ("timestamp", "1639128407"),
            ("charset", "utf-8"),
            ("version", "2"),
            (
                "biz",
                r#"{"page_index":"1","page_size":"100","nicks":["老板"]}"#,
            ),
        ]);
        assert_eq!(
            sign("e9c5ca33fecb404b8e6cdbd0ef4a6d25", &fields),
            "395f5a78b446be465ac03a02491296c7"
        );
    }

    #[test]
    fn published_minimal_vector_and_empty_values_dropped() {
        let fields = pairs(&[
            ("timestamp", "100"),
            ("app_key", "app"),
            ("charset", "utf-8"),
        ]);
        assert_eq!(sign("secret", &fields), "706427ca94e342781ac36d501151cb10");
        let mut with_empty = fields.clone();
        with_empty.push(pair("access_token", ""));
        with_empty.push(pair("sign", "ignored"));
        assert_eq!(
            sign("secret", &with_empty),
            "706427ca94e342781ac36d501151cb10"
        );
    }

    #[test]
    fn prepare_builds_a_signed_form() {
        let jst = Jushuitan::new(
            "jst",
            &connection(&[
                ("base_url", "https://openapi.jushuitan.com/"),
                ("app_key", "k"),
                ("app_secret", "s"),
                ("access_token", "t"),
            ]),
        )
        .unwrap();
        let mut params = serde_json::Map::new();
        params.insert("page_index".to_owned(), Value::from(1));
        let call = ApiCall {
            endpoint: "/open/refund/single/query".to_owned(),
            http_method: HttpMethod::Get,
            params,
            query: vec![],
            headers: vec![],
        };
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let req = jst.prepare(&call, now, None).unwrap();
        assert_eq!(req.method, HttpMethod::Post);
        assert_eq!(
            req.url,
            "https://openapi.jushuitan.com/open/refund/single/query"
        );
        let form = wire::form_decode(req.body.as_deref().unwrap().as_bytes());
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("biz").as_deref(), Some(r#"{"page_index":1}"#));
        assert_eq!(get("timestamp").as_deref(), Some("1700000000"));
        let expected = sign("s", &form);
        assert_eq!(get("sign"), Some(expected));
    }

    #[test]
    fn missing_secret_is_reported() {
        let err = Jushuitan::new("jst", &connection(&[("base_url", "https://x")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection `jst` has no `app_key` (needed by the jushuitan connector)"
        );
    }

    #[test]
    fn token_requests_init_then_refresh() {
        let jst = Jushuitan::new(
            "jst",
            &connection(&[
                ("base_url", "https://x"),
                ("app_key", "k"),
                ("app_secret", "s"),
            ]),
        )
        .unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let init = jst.token_request(now, None).unwrap().unwrap();
        assert_eq!(init.url, "https://x/openWeb/auth/getInitToken");
        assert!(init
            .body
            .as_deref()
            .unwrap()
            .contains("grant_type=authorization_code"));
        let token = jst
            .parse_token(now, &sample("jushuitan_auth_token.json"))
            .unwrap();
        assert_eq!(token.access_token, "0ecde8631431a5ed6b3e7368afbabdadss");
        assert_eq!(token.expires_at, now + chrono::Duration::seconds(2_592_000));
        let refresh = jst.token_request(now, Some(&token)).unwrap().unwrap();
        assert_eq!(refresh.url, "https://x/openWeb/auth/refreshToken");
        assert!(refresh
            .body
            .as_deref()
            .unwrap()
            .contains("refresh_token=eb1964a9d142423a9f0de88b97bb38fc"));
        let err = jst
            .parse_token(now, br#"{"code":150,"msg":"no"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("code 150"), "{err}");
    }

    #[test]
    fn decodes_vendor_samples() {
        let jst = Jushuitan::new(
            "jst",
            &connection(&[
                ("base_url", "https://x"),
                ("app_key", "k"),
                ("app_secret", "s"),
            ]),
        )
        .unwrap();
        for name in [
            "jushuitan_shops_query.json",
            "jushuitan_shops_query_general.json",
            "jushuitan_refund_list_TEMPLATE_yonbip_wrapper.json",
        ] {
            match jst.classify(200, &[], &sample(name)) {
                Outcome::Data(v) => {
                    let datas = walk(&v, &["data", "datas"]).and_then(Value::as_array);
                    assert_eq!(datas.map(Vec::len), Some(1), "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn classifies_error_codes() {
        let c = |body: &str| classify_envelope(serde_json::from_str(body).unwrap());
        assert_eq!(
            c(r#"{"code":199,"msg":"调用频次超过限制!请稍后再试"}"#),
            Outcome::Throttled {
                code: "199".to_owned(),
                message: "调用频次超过限制!请稍后再试".to_owned(),
                retry_after: Some(Duration::from_secs(1)),
            }
        );
        assert!(matches!(
            c(r#"{"code":200,"msg":"调用频次超过限制"}"#),
            Outcome::Throttled { retry_after: Some(d), .. } if d.as_secs() == 60
        ));
        assert!(matches!(
            c(r#"{"code":100,"msg":"x"}"#),
            Outcome::AuthExpired { .. }
        ));
        for code in [10, 110, 130, 140, 150, 170, 190] {
            let body = format!(r#"{{"code":{code},"msg":"m"}}"#);
            assert!(
                matches!(c(&body), Outcome::Fatal { code: ref got, .. } if *got == code.to_string()),
                "{code}"
            );
        }
    }
}
