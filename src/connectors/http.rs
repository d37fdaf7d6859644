//! The generic JSON-API connector, for vendors without a dedicated file: GET with params in
//! the query string or POST with a JSON body, one of a few auth schemes, and an optional
//! signing template so a new vendor's signature can be described in the profile.
//!
//! Profile settings (connection `kind: http`):
//! - `base_url`: prefix of every endpoint path.
//! - `auth`: `none` (default) | `bearer` (`token`) | `basic` (`username`, `password`) |
//!   `api_key` (`api_key`, and `api_key_header` or `api_key_query`: where it goes) |
//!   `sign`:
//!   - `secret`: the signing key.
//!   - `sign_template`: a minijinja template producing the string to sign, over `params`
//!     (every query and top-level body param, timestamp included, as `[key, value]` pairs
//!     sorted by key), `secret`, `timestamp`, `method` and `path`. Example:
//!     `{% for p in params %}{{ p[0] }}={{ p[1] }}&{% endfor %}key={{ secret }}`.
//!   - `sign_algorithm`: `md5` (default) | `sha256` | `hmac_sha256` (keyed by `secret`).
//!   - `sign_case`: `lower` (default) | `upper`.
//!   - `sign_param`: the query parameter carrying the signature (default `sign`).
//!   - `timestamp_param` (optional): a query parameter set to the request time, in
//!     `timestamp_format` `unix` (default) | `millis` | `datetime` (`yyyy-MM-dd HH:mm:ss`
//!     in `timezone`, default Asia/Shanghai).
//! - `error_path` + `success_value` (optional): a 2xx body whose value at `error_path`
//!   (dotted) is not `success_value` is an error (message from `message_path`, default
//!   `message` / `msg`). It fails the call at once, unless its code is one of
//!   `retryable_codes` (a list, or text separated by commas: the vendor's "busy, try
//!   again" codes), which are retried with backoff.
//!
//! No token lifecycle: 401/403 are fatal (nothing to refresh).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::wire::{self, Settings};
use super::{ApiCall, Connector, ConnectorError, EndpointInfo, Outcome, PreparedRequest, Token};
use crate::config::Connection;
use crate::plan::{ConnectorKind, FieldPath, HttpMethod};

const VENDOR: &str = "http";

/// Every profile key a `kind: http` connection takes (besides `kind`); `check` refuses others.
pub(super) const PROFILE_KEYS: &[&str] = &[
    "base_url",
    "auth",
    "token",
    "username",
    "password",
    "api_key",
    "api_key_header",
    "api_key_query",
    "secret",
    "sign_template",
    "sign_algorithm",
    "sign_case",
    "sign_param",
    "timestamp_param",
    "timestamp_format",
    "timezone",
    "error_path",
    "success_value",
    "message_path",
    "retryable_codes",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignAlgorithm {
    Md5,
    Sha256,
    HmacSha256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampFormat {
    Unix,
    Millis,
    Datetime,
}

#[derive(Debug, Clone)]
struct SignScheme {
    secret: String,
    template: String,
    algorithm: SignAlgorithm,
    upper: bool,
    param: String,
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Bearer(String),
    Basic(String, String),
    ApiKeyHeader(String, String),
    ApiKeyQuery(String, String),
    Sign(SignScheme),
}

/// The generic HTTP/JSON connector.
#[derive(Debug, Clone)]
pub struct Http {
    name: String,
    base_url: String,
    auth: Auth,
    timestamp: Option<(String, TimestampFormat)>,
    timezone: chrono_tz::Tz,
    error_path: Option<(FieldPath, String)>,
    /// Codes at `error_path` that mean "busy, try again".
    retryable_codes: Vec<String>,
    message_path: Option<FieldPath>,
}

impl Http {
    pub fn new(name: &str, connection: &Connection) -> Result<Self, ConnectorError> {
        let s = Settings::new(name, VENDOR, connection);
        let auth_kind = s.optional("auth").unwrap_or_else(|| "none".to_owned());
        let auth = match auth_kind.as_str() {
            "none" => Auth::None,
            "bearer" => Auth::Bearer(s.required("token")?),
            "basic" => Auth::Basic(s.required("username")?, s.required("password")?),
            "api_key" => {
                let key = s.required("api_key")?;
                match (s.optional("api_key_header"), s.optional("api_key_query")) {
                    (Some(h), _) => Auth::ApiKeyHeader(h, key),
                    (None, Some(q)) => Auth::ApiKeyQuery(q, key),
                    (None, None) => {
                        return Err(s.bad(
                            "`auth: api_key` needs `api_key_header` or `api_key_query`".to_owned(),
                        ))
                    }
                }
            }
            "sign" => {
                let template = s.required("sign_template")?;
                let mut env = minijinja::Environment::new();
                env.add_template_owned("sign", template.clone())
                    .map_err(|e| s.bad(format!("`sign_template` does not compile: {e}")))?;
                // Rendered once over stand-in values, so an unknown filter fails `check`
                // and not the first signed request.
                env.get_template("sign")
                    .and_then(|t| {
                        t.render(minijinja::context! {
                            params => vec![["k", "v"]],
                            secret => "secret",
                            timestamp => "1700000000",
                            method => "GET",
                            path => "/",
                        })
                    })
                    .map_err(|e| s.bad(format!("`sign_template` does not render: {e}")))?;
                let algorithm = match s.optional("sign_algorithm").as_deref() {
                    None | Some("md5") => SignAlgorithm::Md5,
                    Some("sha256") => SignAlgorithm::Sha256,
                    Some("hmac_sha256") => SignAlgorithm::HmacSha256,
                    Some(other) => {
                        return Err(s.bad(format!(
                            "`sign_algorithm` is `{other}`; expected md5, sha256 or hmac_sha256"
                        )))
                    }
                };
                let upper = match s.optional("sign_case").as_deref() {
                    None | Some("lower") => false,
                    Some("upper") => true,
                    Some(other) => {
                        return Err(
                            s.bad(format!("`sign_case` is `{other}`; expected lower or upper"))
                        )
                    }
                };
                Auth::Sign(SignScheme {
                    secret: s.required("secret")?,
                    template,
                    algorithm,
                    upper,
                    param: s
                        .optional("sign_param")
                        .unwrap_or_else(|| "sign".to_owned()),
                })
            }
            other => {
                return Err(s.bad(format!(
                    "`auth` is `{other}`; expected none, bearer, basic, api_key or sign"
                )))
            }
        };
        let timestamp = match s.optional("timestamp_param") {
            None => None,
            Some(param) => {
                let format = match s.optional("timestamp_format").as_deref() {
                    None | Some("unix") => TimestampFormat::Unix,
                    Some("millis") => TimestampFormat::Millis,
                    Some("datetime") => TimestampFormat::Datetime,
                    Some(other) => {
                        return Err(s.bad(format!(
                            "`timestamp_format` is `{other}`; expected unix, millis or datetime"
                        )))
                    }
                };
                Some((param, format))
            }
        };
        let timezone = match s.optional("timezone") {
            None => chrono_tz::Asia::Shanghai,
            Some(tz) => tz
                .parse()
                .map_err(|_| s.bad(format!("`timezone` `{tz}` is not an IANA time zone")))?,
        };
        let error_path = match (s.optional("error_path"), s.optional("success_value")) {
            (Some(path), Some(value)) => Some((FieldPath::parse(&path), value)),
            (None, None) => None,
            _ => {
                return Err(s.bad(
                    "`error_path` and `success_value` go together; set both or neither".to_owned(),
                ))
            }
        };
        let retryable_codes = retryable_codes(connection);
        if !retryable_codes.is_empty() && error_path.is_none() {
            return Err(s.bad(
                "`retryable_codes` are codes at `error_path`: set `error_path` and \
                 `success_value` too"
                    .to_owned(),
            ));
        }
        Ok(Http {
            name: name.to_owned(),
            base_url: s.base_url()?,
            auth,
            timestamp,
            timezone,
            error_path,
            retryable_codes,
            message_path: s.optional("message_path").map(|p| FieldPath::parse(&p)),
        })
    }

    fn timestamp_text(&self, now: DateTime<Utc>, format: TimestampFormat) -> String {
        match format {
            TimestampFormat::Unix => now.timestamp().to_string(),
            TimestampFormat::Millis => now.timestamp_millis().to_string(),
            TimestampFormat::Datetime => now
                .with_timezone(&self.timezone)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
        }
    }
}

/// `retryable_codes`: a YAML list (`[1001, "E_BUSY"]`) or text separated by commas.
fn retryable_codes(connection: &Connection) -> Vec<String> {
    let text = |value: &serde_yaml::Value| match value {
        serde_yaml::Value::String(s) => Some(s.trim().to_owned()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match connection.settings.get("retryable_codes") {
        Some(serde_yaml::Value::Sequence(items)) => items.iter().filter_map(text).collect(),
        Some(serde_yaml::Value::String(list)) => list
            .split(',')
            .map(str::trim)
            .filter(|code| !code.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(other) => text(other).into_iter().collect(),
        None => Vec::new(),
    }
}

impl SignScheme {
    /// Renders the signing template over `params` (sorted here) and hashes the text.
    fn signature(
        &self,
        params: &[(String, String)],
        timestamp: &str,
        method: &str,
        path: &str,
    ) -> Result<String, minijinja::Error> {
        let mut sorted: Vec<[&str; 2]> = params
            .iter()
            .map(|(k, v)| [k.as_str(), v.as_str()])
            .collect();
        sorted.sort_by(|a, b| a[0].as_bytes().cmp(b[0].as_bytes()).then(a[1].cmp(b[1])));
        let mut env = minijinja::Environment::new();
        env.add_template("sign", &self.template)?;
        let text = env.get_template("sign").and_then(|t| {
            t.render(minijinja::context! {
                params => sorted,
                secret => self.secret,
                timestamp => timestamp,
                method => method,
                path => path,
            })
        })?;
        let hex = match self.algorithm {
            SignAlgorithm::Md5 => wire::md5_hex(text.as_bytes()),
            SignAlgorithm::Sha256 => wire::sha256_hex(text.as_bytes()),
            SignAlgorithm::HmacSha256 => {
                wire::hmac_sha256_hex(self.secret.as_bytes(), text.as_bytes())
            }
        };
        Ok(if self.upper {
            hex.to_ascii_uppercase()
        } else {
            hex
        })
    }
}

impl Connector for Http {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Http
    }

    fn prepare(
        &self,
        call: &ApiCall,
        now: DateTime<Utc>,
        _token: Option<&Token>,
    ) -> Result<PreparedRequest, ConnectorError> {
        let mut query: Vec<(String, String)> = Vec::new();
        let mut headers: Vec<(String, String)> = Vec::new();
        let body = match call.http_method {
            HttpMethod::Get => {
                query.extend(
                    call.params
                        .iter()
                        .map(|(k, v)| (k.clone(), wire::scalar_text(v))),
                );
                None
            }
            HttpMethod::Post => {
                headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
                Some(Value::Object(call.params.clone()).to_string())
            }
        };
        query.extend(call.query.iter().cloned());
        let mut timestamp = String::new();
        if let Some((param, format)) = &self.timestamp {
            timestamp = self.timestamp_text(now, *format);
            query.push((param.clone(), timestamp.clone()));
        }
        if timestamp.is_empty() {
            timestamp = now.timestamp().to_string();
        }
        let path = if call.endpoint.starts_with('/') || call.endpoint.is_empty() {
            call.endpoint.clone()
        } else {
            format!("/{}", call.endpoint)
        };
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                headers.push(("Authorization".to_owned(), format!("Bearer {token}")))
            }
            Auth::Basic(user, password) => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                headers.push(("Authorization".to_owned(), format!("Basic {encoded}")));
            }
            Auth::ApiKeyHeader(name, key) => headers.push((name.clone(), key.clone())),
            Auth::ApiKeyQuery(name, key) => query.push((name.clone(), key.clone())),
            Auth::Sign(scheme) => {
                let mut signed = query.clone();
                if call.http_method == HttpMethod::Post {
                    signed.extend(
                        call.params
                            .iter()
                            .map(|(k, v)| (k.clone(), wire::scalar_text(v))),
                    );
                }
                let signature = scheme
                    .signature(&signed, &timestamp, call.http_method.as_str(), &path)
                    .map_err(|message| ConnectorError::BadSetting {
                        connection: self.name.clone(),
                        message: format!("`sign_template` failed to render: {message}"),
                    })?;
                query.push((scheme.param.clone(), signature));
            }
        }
        headers.extend(call.headers.iter().cloned());
        Ok(PreparedRequest {
            method: call.http_method,
            url: wire::with_query(&format!("{}{path}", self.base_url), &query),
            headers,
            body,
        })
    }

    fn classify(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
        let value = match wire::decode(status, headers, body) {
            Ok(value) => value,
            Err(outcome) => return outcome,
        };
        let message = |value: &Value| match &self.message_path {
            Some(path) => wire::code_text(path.get(value)),
            None => wire::message_of(value, &["message", "msg", "error"]),
        };
        if !(200..300).contains(&status) {
            return Outcome::Fatal {
                code: format!("http_{status}"),
                message: message(&value),
            };
        }
        if let Some((path, success)) = &self.error_path {
            let code = wire::code_text(path.get(&value));
            if code != *success {
                let message = message(&value);
                return if self.retryable_codes.contains(&code) {
                    Outcome::Transient { code, message }
                } else {
                    Outcome::Fatal { code, message }
                };
            }
        }
        Outcome::Data(value)
    }

    fn endpoint_info(&self, _endpoint: &str) -> EndpointInfo {
        EndpointInfo::default()
    }

    fn secrets(&self) -> Vec<String> {
        match &self.auth {
            Auth::None => vec![],
            Auth::Bearer(token) => vec![token.clone()],
            Auth::Basic(user, password) => vec![password.clone(), format!("{user}:{password}")],
            Auth::ApiKeyHeader(_, key) | Auth::ApiKeyQuery(_, key) => vec![key.clone()],
            Auth::Sign(scheme) => vec![scheme.secret.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn http(settings: &[(&str, &str)]) -> Result<Http, ConnectorError> {
        let mut all = vec![("base_url", "http://127.0.0.1:1/http")];
        all.extend_from_slice(settings);
        let connection = Connection {
            kind: VENDOR.to_owned(),
            settings: all
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_yaml::Value::String((*v).to_owned())))
                .collect(),
        };
        Http::new("api", &connection)
    }

    fn get_call(params: &str) -> ApiCall {
        ApiCall {
            endpoint: "/api/v1/orders".to_owned(),
            http_method: HttpMethod::Get,
            params: serde_json::from_str(params).unwrap(),
            query: vec![],
            headers: vec![],
        }
    }

    #[test]
    fn sign_template_signs_sorted_params() {
        let h = http(&[
            ("auth", "sign"),
            ("secret", "sek"),
            (
                "sign_template",
                "{% for p in params %}{{ p[0] }}={{ p[1] }}&{% endfor %}key={{ secret }}",
            ),
            ("sign_case", "upper"),
            ("timestamp_param", "ts"),
        ])
        .unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let req = h
            .prepare(&get_call(r#"{"page":1,"b":"x y"}"#), now, None)
            .unwrap();
        let expected = wire::md5_hex(b"b=x y&page=1&ts=1700000000&key=sek").to_ascii_uppercase();
        assert_eq!(
            req.url,
            format!(
                "http://127.0.0.1:1/http/api/v1/orders?page=1&b=x+y&ts=1700000000&sign={expected}"
            )
        );
    }

    #[test]
    fn auth_schemes_place_credentials() {
        let now = Utc::now();
        let bearer = http(&[("auth", "bearer"), ("token", "t0k")]).unwrap();
        let req = bearer.prepare(&get_call("{}"), now, None).unwrap();
        assert!(req
            .headers
            .contains(&("Authorization".to_owned(), "Bearer t0k".to_owned())));
        let basic = http(&[("auth", "basic"), ("username", "u"), ("password", "p")]).unwrap();
        let req = basic.prepare(&get_call("{}"), now, None).unwrap();
        assert!(req
            .headers
            .contains(&("Authorization".to_owned(), "Basic dTpw".to_owned())));
        let key = http(&[
            ("auth", "api_key"),
            ("api_key", "k"),
            ("api_key_query", "apikey"),
        ])
        .unwrap();
        assert!(key
            .prepare(&get_call("{}"), now, None)
            .unwrap()
            .url
            .ends_with("?apikey=k"));
        assert!(http(&[("auth", "api_key"), ("api_key", "k")]).is_err());
        assert!(http(&[("auth", "oauth")]).is_err());
        let bad = http(&[
            ("auth", "sign"),
            ("secret", "s"),
            ("sign_template", "{% for %}"),
        ]);
        assert!(bad.unwrap_err().to_string().contains("does not compile"));
    }

    #[test]
    fn post_sends_json_body() {
        let h = http(&[]).unwrap();
        let mut call = get_call(r#"{"a":{"b":1}}"#);
        call.http_method = HttpMethod::Post;
        let req = h.prepare(&call, Utc::now(), None).unwrap();
        assert_eq!(req.body.as_deref(), Some(r#"{"a":{"b":1}}"#));
        assert_eq!(req.url, "http://127.0.0.1:1/http/api/v1/orders");
    }

    #[test]
    fn retryable_codes_are_retried_and_others_fail_at_once() {
        let h = http(&[
            ("error_path", "code"),
            ("success_value", "0"),
            ("retryable_codes", "1001, 1002"),
        ])
        .unwrap();
        assert_eq!(
            h.classify(
                200,
                &[],
                r#"{"code":1001,"msg":"系统繁忙，请稍后再试"}"#.as_bytes()
            ),
            Outcome::Transient {
                code: "1001".to_owned(),
                message: "系统繁忙，请稍后再试".to_owned()
            }
        );
        assert!(matches!(
            h.classify(200, &[], br#"{"code":40001,"msg":"bad sign"}"#),
            Outcome::Fatal { .. }
        ));
        assert!(http(&[("retryable_codes", "1001")])
            .unwrap_err()
            .to_string()
            .contains("set `error_path`"));
        let mut connection = Connection {
            kind: VENDOR.to_owned(),
            settings: [
                ("base_url", "http://127.0.0.1:1/http"),
                ("error_path", "code"),
                ("success_value", "0"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_yaml::Value::String((*v).to_owned())))
            .collect(),
        };
        connection.settings.insert(
            "retryable_codes".to_owned(),
            serde_yaml::from_str("[1001, E_BUSY]").unwrap(),
        );
        assert_eq!(retryable_codes(&connection), ["1001", "E_BUSY"]);
    }

    #[test]
    fn error_path_detects_200_with_error() {
        let h = http(&[("error_path", "code"), ("success_value", "0")]).unwrap();
        assert!(matches!(
            h.classify(200, &[], br#"{"code":0,"data":[]}"#),
            Outcome::Data(_)
        ));
        assert_eq!(
            h.classify(200, &[], br#"{"code":40001,"message":"bad sign"}"#),
            Outcome::Fatal {
                code: "40001".to_owned(),
                message: "bad sign".to_owned()
            }
        );
        assert!(matches!(
            h.classify(429, &[], b""),
            Outcome::Throttled { .. }
        ));
        assert!(matches!(
            h.classify(502, &[], b""),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            h.classify(401, &[], br#"{"message":"no"}"#),
            Outcome::Fatal { .. }
        ));
        assert!(matches!(
            h.classify(200, &[], br#"{"code":0,"da"#),
            Outcome::Transient { .. }
        ));
    }
}
