//! DingTalk Yida (宜搭) over the api.dingtalk.com v1.0 APIs: the OAuth2 app access token
//! (fetched as data: `token_request` / `parse_token`), JSON-body searches with
//! `pageNumber` / `pageSize` in the query string, and DingTalk's error bodies (HTTP 4xx
//! with a string `code`, and the IP-protection `{"status":1111,"wait":N}` block).
//!
//! Profile settings (connection `kind: dingtalk_yida`):
//! - `base_url`: `https://api.dingtalk.com`.
//! - `app_key`, `app_secret`: the internal app's client id and secret.
//!
//! Yida's own credentials (`appType`, `systemToken`, `userId`, `formUuid`) are request
//! params of the spec (`systemToken` may come from `env`). Params named `pageNumber` /
//! `pageSize` are moved to the query string; params whose name ends in `Json`
//! (`searchFieldJson`, `orderConfigJson`) are sent as JSON strings when given as objects.
//! Token expiry: `expires_at = now + expireIn − 5 min` (a tenth of `expireIn` when that
//! is under 10 minutes, so short-lived test tokens stay usable).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::wire::{self, Settings};
use super::{ApiCall, Connector, ConnectorError, EndpointInfo, Outcome, PreparedRequest, Token};
use crate::config::Connection;
use crate::plan::{ConnectorKind, FieldPath, HttpMethod};

const VENDOR: &str = "dingtalk_yida";

/// Every profile key a `kind: dingtalk_yida` connection takes (besides `kind`); `check` refuses others.
pub(super) const PROFILE_KEYS: &[&str] = &["base_url", "app_key", "app_secret"];
pub const TOKEN_PATH: &str = "/v1.0/oauth2/accessToken";
pub const TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";

/// The DingTalk Yida connector.
#[derive(Debug, Clone)]
pub struct DingtalkYida {
    base_url: String,
    app_key: String,
    app_secret: String,
}

impl DingtalkYida {
    pub fn new(name: &str, connection: &Connection) -> Result<Self, ConnectorError> {
        let s = Settings::new(name, VENDOR, connection);
        Ok(DingtalkYida {
            base_url: s.base_url()?,
            app_key: s.required("app_key")?,
            app_secret: s.required("app_secret")?,
        })
    }
}

/// Splits params into (JSON body, query pairs): see the module doc.
pub fn split_params(params: &Map<String, Value>) -> (Map<String, Value>, Vec<(String, String)>) {
    let mut body = Map::new();
    let mut query = Vec::new();
    for (k, v) in params {
        match (k.as_str(), v) {
            ("pageNumber" | "pageSize", _) => query.push((k.clone(), wire::scalar_text(v))),
            (name, Value::Object(_) | Value::Array(_)) if name.ends_with("Json") => {
                body.insert(k.clone(), Value::String(v.to_string()));
            }
            _ => {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    (body, query)
}

impl Connector for DingtalkYida {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::DingtalkYida
    }

    fn prepare(
        &self,
        call: &ApiCall,
        _now: DateTime<Utc>,
        token: Option<&Token>,
    ) -> Result<PreparedRequest, ConnectorError> {
        let token = token.ok_or_else(|| ConnectorError::BadToken {
            vendor: VENDOR,
            message: "no access token: fetch one with token_request first".to_owned(),
        })?;
        let (body, mut query) = split_params(&call.params);
        query.extend(call.query.iter().cloned());
        let path = if call.endpoint.starts_with('/') {
            call.endpoint.clone()
        } else {
            format!("/{}", call.endpoint)
        };
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (TOKEN_HEADER.to_owned(), token.access_token.clone()),
        ];
        headers.extend(call.headers.iter().cloned());
        let (method, body) = match call.http_method {
            HttpMethod::Post => (HttpMethod::Post, Some(Value::Object(body).to_string())),
            HttpMethod::Get => {
                query.extend(body.iter().map(|(k, v)| (k.clone(), wire::scalar_text(v))));
                (HttpMethod::Get, None)
            }
        };
        Ok(PreparedRequest {
            method,
            url: wire::with_query(&format!("{}{path}", self.base_url), &query),
            headers,
            body,
        })
    }

    fn classify(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            if let Some(outcome) = classify_error(status, &value) {
                return outcome;
            }
        }
        let value = match wire::decode(status, headers, body) {
            Ok(value) => value,
            Err(outcome) => return outcome,
        };
        if !(200..300).contains(&status) {
            return Outcome::Fatal {
                code: format!("http_{status}"),
                message: wire::snippet(body),
            };
        }
        Outcome::Data(value)
    }

    fn token_request(
        &self,
        _now: DateTime<Utc>,
        _current: Option<&Token>,
    ) -> Result<Option<PreparedRequest>, ConnectorError> {
        Ok(Some(PreparedRequest {
            method: HttpMethod::Post,
            url: format!("{}{TOKEN_PATH}", self.base_url),
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: Some(json!({"appKey": self.app_key, "appSecret": self.app_secret}).to_string()),
        }))
    }

    fn parse_token(&self, now: DateTime<Utc>, body: &[u8]) -> Result<Token, ConnectorError> {
        let bad = |message: String| ConnectorError::BadToken {
            vendor: VENDOR,
            message,
        };
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| bad(format!("not JSON ({e}): {}", wire::snippet(body))))?;
        let access_token = value
            .get("accessToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "no `accessToken` ({} {})",
                    wire::code_text(value.get("code")),
                    wire::message_of(&value, &["message"])
                ))
            })?;
        let expire_in = value
            .get("expireIn")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("no `expireIn`".to_owned()))?;
        let margin = if expire_in >= 600 {
            300
        } else {
            expire_in / 10
        };
        Ok(Token {
            access_token: access_token.to_owned(),
            refresh_token: None,
            expires_at: now + chrono::Duration::seconds(expire_in - margin),
        })
    }

    fn endpoint_info(&self, endpoint: &str) -> EndpointInfo {
        endpoint_info(endpoint)
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.app_secret.clone()]
    }
}

/// DingTalk error bodies; `None` for a body that is not an error.
fn classify_error(status: u16, value: &Value) -> Option<Outcome> {
    if wire::code_text(value.get("status")) == "1111" {
        let minutes = value.get("wait").and_then(Value::as_u64).unwrap_or(5);
        return Some(Outcome::Throttled {
            code: "1111".to_owned(),
            message: format!(
                "IP blocked by DingTalk protection ({}), wait {minutes} min",
                wire::message_of(value, &["punish"])
            ),
            retry_after: Some(Duration::from_secs(minutes * 60)),
        });
    }
    let code = wire::code_text(value.get("code"));
    let success_false = value.get("success").and_then(Value::as_bool) == Some(false);
    if (200..300).contains(&status) && !success_false {
        return None;
    }
    let code = if code.is_empty() {
        let inner = wire::code_text(value.get("errorCode"));
        if inner.is_empty() {
            format!("http_{status}")
        } else {
            inner
        }
    } else {
        code
    };
    let message = wire::message_of(value, &["message", "errorMsg", "errmsg"]);
    let lower = code.to_ascii_lowercase();
    Some(if code.contains("QpsLimit") {
        Outcome::Throttled {
            code,
            message,
            retry_after: Some(Duration::from_secs(1)),
        }
    } else if code.contains("ApiCountLimit") {
        Outcome::Fatal { code, message }
    } else if status == 401 || code.contains("InvalidAuthentication") || lower.contains("token") {
        Outcome::AuthExpired { code, message }
    } else if status >= 500 || code == "systemBusy" {
        Outcome::Transient { code, message }
    } else if status == 429 {
        Outcome::Throttled {
            code,
            message,
            retry_after: None,
        }
    } else {
        Outcome::Fatal { code, message }
    })
}

/// What is known of `endpoint` (a path).
pub fn endpoint_info(endpoint: &str) -> EndpointInfo {
    let rates = vec![(20, Duration::from_secs(1))];
    match endpoint {
        "/v1.0/yida/processes/instances" | "/v1.0/yida/forms/instances/search" => EndpointInfo {
            max_page_size: Some(100),
            page_base: Some(1),
            records_path: Some(FieldPath::parse("data")),
            total_path: Some(FieldPath::parse("totalCount")),
            rate: rates.first().copied(),
            rates,
            ..EndpointInfo::default()
        },
        _ => EndpointInfo {
            rate: rates.first().copied(),
            rates,
            ..EndpointInfo::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::samples;
    use chrono::TimeZone;

    fn yida() -> DingtalkYida {
        let connection = Connection {
            kind: VENDOR.to_owned(),
            settings: [
                ("base_url", "https://api.dingtalk.com"),
                ("app_key", "ding-key"),
                ("app_secret", "ding-secret"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_yaml::Value::String((*v).to_owned())))
            .collect(),
        };
        DingtalkYida::new("yida", &connection).unwrap()
    }

    fn token() -> Token {
        Token {
            access_token: "tok".to_owned(),
            refresh_token: None,
            expires_at: Utc::now(),
        }
    }

    #[test]
    fn paging_goes_to_query_and_search_json_becomes_a_string() {
        let call = ApiCall {
            endpoint: "/v1.0/yida/processes/instances".to_owned(),
            http_method: HttpMethod::Post,
            params: serde_json::from_str(
                r#"{"appType":"APP_X","formUuid":"FORM-1","searchFieldJson":{"textField_x":"v"},"pageNumber":2,"pageSize":100}"#,
            )
            .unwrap(),
            query: vec![],
            headers: vec![],
        };
        let req = yida().prepare(&call, Utc::now(), Some(&token())).unwrap();
        assert_eq!(
            req.url,
            "https://api.dingtalk.com/v1.0/yida/processes/instances?pageNumber=2&pageSize=100"
        );
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body["searchFieldJson"],
            Value::from(r#"{"textField_x":"v"}"#)
        );
        assert!(body.get("pageNumber").is_none());
        assert!(req
            .headers
            .contains(&(TOKEN_HEADER.to_owned(), "tok".to_owned())));
        assert!(yida().prepare(&call, Utc::now(), None).is_err());
    }

    #[test]
    fn token_lifecycle_decodes_sample() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let req = yida().token_request(now, None).unwrap().unwrap();
        assert_eq!(req.url, "https://api.dingtalk.com/v1.0/oauth2/accessToken");
        assert_eq!(
            req.body.as_deref(),
            Some(r#"{"appKey":"ding-key","appSecret":"ding-secret"}"#)
        );
        let token = yida()
            .parse_token(now, samples::get("dingtalk_oauth2_access_token.json"))
            .unwrap();
        assert_eq!(token.access_token, "fw8ef8we8f76e6f7s8dxxxx");
        assert_eq!(
            token.expires_at,
            now + chrono::Duration::seconds(7200 - 300)
        );
        let short = yida()
            .parse_token(now, br#"{"accessToken":"a","expireIn":60}"#)
            .unwrap();
        assert_eq!(short.expires_at, now + chrono::Duration::seconds(54));
    }

    #[test]
    fn decodes_ip_block_sample() {
        let outcome = yida().classify(200, &[], samples::get("dingtalk_ip_throttle_block.json"));
        assert!(
            matches!(outcome, Outcome::Throttled { retry_after: Some(d), ref code, .. } if d.as_secs() == 300 && code == "1111"),
            "{outcome:?}"
        );
    }

    #[test]
    fn robot_error_sample_bodies_are_not_data_shaped() {
        // The robot webhook errors are 200 + errcode: under a v1.0 API they would come with a
        // non-2xx status; make sure they classify as fatal rather than data there.
        let bodies: Vec<Value> =
            serde_json::from_slice(samples::get("dingtalk_robot_send_errors.json")).unwrap();
        for body in bodies {
            let outcome = yida().classify(400, &[], body.to_string().as_bytes());
            assert!(matches!(outcome, Outcome::Fatal { .. }), "{outcome:?}");
        }
    }

    #[test]
    fn classifies_http_errors() {
        let c = |status: u16, body: &str| yida().classify(status, &[], body.as_bytes());
        assert!(matches!(
            c(403, r#"{"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","message":"m"}"#),
            Outcome::Throttled { retry_after: Some(d), .. } if d.as_secs() == 1
        ));
        assert!(matches!(
            c(
                403,
                r#"{"code":"Forbidden.AccessDenied.QpsLimitForApi","message":"m"}"#
            ),
            Outcome::Throttled { .. }
        ));
        assert!(matches!(
            c(
                403,
                r#"{"code":"Forbidden.AccessDenied.ApiCountLimitForOrg","message":"m"}"#
            ),
            Outcome::Fatal { .. }
        ));
        assert!(matches!(
            c(401, r#"{"code":"InvalidAuthentication","message":"m"}"#),
            Outcome::AuthExpired { .. }
        ));
        assert!(matches!(
            c(400, r#"{"code":"invalidAccessToken","message":"m"}"#),
            Outcome::AuthExpired { .. }
        ));
        assert!(matches!(
            c(500, r#"{"code":"systemBusy"}"#),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            c(200, r#"{"totalCount":0,"data":[]}"#),
            Outcome::Data(_)
        ));
        assert!(matches!(
            c(200, r#"{"totalCount":0,"data":["#),
            Outcome::Transient { .. }
        ));
    }
}
