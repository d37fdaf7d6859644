//! Plumbing shared by the vendor connectors and the simulator: profile settings lookup,
//! hashing, form encoding, and the HTTP-level half of response classification
//! (429, 5xx, torn bodies). Nothing here knows a vendor's rules; those live in the vendor
//! files.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::Value;
use sha2::Sha256;

use super::{ConnectorError, Outcome};
use crate::config::Connection;

/// Typed access to one connection's settings, with errors naming the connection.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub name: &'a str,
    pub vendor: &'static str,
    pub connection: &'a Connection,
}

impl<'a> Settings<'a> {
    pub fn new(name: &'a str, vendor: &'static str, connection: &'a Connection) -> Self {
        Settings {
            name,
            vendor,
            connection,
        }
    }

    /// A non-empty setting.
    pub fn optional(&self, key: &str) -> Option<String> {
        self.connection.get(key).filter(|value| !value.is_empty())
    }

    /// A setting that must be present and non-empty.
    pub fn required(&self, key: &str) -> Result<String, ConnectorError> {
        self.optional(key)
            .ok_or_else(|| ConnectorError::MissingSetting {
                connection: self.name.to_owned(),
                vendor: self.vendor,
                key: key.to_owned(),
            })
    }

    /// `base_url`, validated as an absolute http(s) URL, without a trailing slash.
    pub fn base_url(&self) -> Result<String, ConnectorError> {
        let raw = self.required("base_url")?;
        let parsed = url::Url::parse(&raw).map_err(|e| self.bad(format!("`base_url` {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(self.bad(format!("`base_url` must be http(s), got `{raw}`")));
        }
        Ok(raw.trim_end_matches('/').to_owned())
    }

    pub fn bad(&self, message: String) -> ConnectorError {
        ConnectorError::BadSetting {
            connection: self.name.to_owned(),
            message,
        }
    }
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn hmac_md5_hex(key: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// `k1v1k2v2...` over the pairs sorted by key bytes (ASCII order), no separators.
pub fn concat_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(b.1)));
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(k);
        out.push_str(v);
    }
    out
}

/// `application/x-www-form-urlencoded` text of the pairs, in order.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

/// Parses form-urlencoded text (a query string or a form body) into pairs.
pub fn form_decode(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text).into_owned().collect()
}

/// Appends `query` to `url` with `?` or `&`.
pub fn with_query(url: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", form_encode(query))
}

/// A JSON value as a form/query field: strings as-is, null empty, others as JSON text; a
/// number as the vendor wrote it (a keyset or cursor value of 20+ digits goes back exact).
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A code field as text (`0`, `"0"`, `null` → empty).
pub fn code_text(value: Option<&Value>) -> String {
    value.map(scalar_text).unwrap_or_default()
}

/// A header value, name compared case-insensitively.
pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A `Retry-After` header (RFC 9110 section 10.2.3): a delay in seconds, or an HTTP-date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120` (fractions such as `1.5` are accepted too).
    Delay(Duration),
    /// `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`.
    At(SystemTime),
}

/// Longest wait a `Retry-After` may ask for; a longer one is taken for garbage and ignored
/// (the backoff applies instead), so that one odd header cannot stall a run for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

impl RetryAfter {
    /// Reads the `Retry-After` header (name compared case-insensitively). `None` when it is
    /// absent, neither form, negative, or longer than [`MAX_RETRY_AFTER`] as a delay.
    pub fn parse(headers: &[(String, String)]) -> Option<RetryAfter> {
        let value = header(headers, "retry-after")?.trim();
        if let Ok(secs) = value.parse::<f64>() {
            let ok = secs.is_finite() && secs >= 0.0 && secs < MAX_RETRY_AFTER.as_secs_f64();
            return ok.then(|| RetryAfter::Delay(Duration::from_secs_f64(secs)));
        }
        httpdate::parse_http_date(value).ok().map(RetryAfter::At)
    }

    /// How long to wait from `now`: zero for a date already past, `None` for a date more
    /// than [`MAX_RETRY_AFTER`] ahead.
    pub fn wait(self, now: SystemTime) -> Option<Duration> {
        let wait = match self {
            RetryAfter::Delay(delay) => delay,
            RetryAfter::At(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
        };
        (wait < MAX_RETRY_AFTER).then_some(wait)
    }

    /// The delay form only: what a connector, which has no clock, can say on its own. The
    /// date form is turned into a wait by `source::retry::retry_after`.
    pub fn delay(self) -> Option<Duration> {
        match self {
            RetryAfter::Delay(delay) => Some(delay),
            RetryAfter::At(_) => None,
        }
    }
}

/// The first 200 characters of a response body or a record's JSON, for messages, with `…`
/// when cut; bytes that are not UTF-8 show as `�`. The one snippet of vendor text.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// HTTP-level outcomes every vendor shares: 429 and 5xx (and 408). A 5xx that says when
/// to come back (`Retry-After`) is treated as throttling so the wait is honoured. The
/// outcome carries the delay form of `Retry-After`; for the date form it carries none and
/// `source` reads the header with its clock.
pub fn http_failure(status: u16, headers: &[(String, String)], body: &[u8]) -> Option<Outcome> {
    let code = format!("http_{status}");
    let retry_after = RetryAfter::parse(headers);
    match status {
        429 => Some(Outcome::Throttled {
            code,
            message: format!("HTTP 429 Too Many Requests: {}", snippet(body)),
            retry_after: retry_after.and_then(RetryAfter::delay),
        }),
        408 | 500..=599 => match retry_after {
            Some(wait) => Some(Outcome::Throttled {
                code,
                message: format!("HTTP {status} with Retry-After: {}", snippet(body)),
                retry_after: wait.delay(),
            }),
            None => Some(Outcome::Transient {
                code,
                message: format!("HTTP {status}: {}", snippet(body)),
            }),
        },
        _ => None,
    }
}

/// The charset a `Content-Type` header declares (`application/json;charset=GBK` → `GBK`).
fn declared_charset(headers: &[(String, String)]) -> Option<&str> {
    header(headers, "content-type")?
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// The body as UTF-8 bytes: a byte-order mark is skipped (and says which Unicode encoding
/// the body is in, whatever the header declares), a declared charset other than UTF-8 is
/// decoded (Chinese vendors still send GBK / GB18030), and a body without either is UTF-8
/// as JSON requires (RFC 8259). Decoding is `encoding_rs`'s, with the WHATWG labels
/// (`gbk`, `gb2312` and `gb18030` all read as GB18030, a superset). `Err` says why the
/// body cannot be text: an unknown charset, or bytes the charset does not have.
fn body_text<'b>(
    headers: &[(String, String)],
    body: &'b [u8],
) -> Result<std::borrow::Cow<'b, [u8]>, String> {
    use std::borrow::Cow;
    let (encoding, content) = match encoding_rs::Encoding::for_bom(body) {
        Some((encoding, bom)) => (encoding, &body[bom..]),
        None => match declared_charset(headers) {
            None => (encoding_rs::UTF_8, body),
            Some(label) => match encoding_rs::Encoding::for_label(label.as_bytes()) {
                Some(encoding) => (encoding, body),
                None => return Err(format!("it declares an unknown charset `{label}`")),
            },
        },
    };
    if encoding == encoding_rs::UTF_8 {
        return Ok(Cow::Borrowed(content));
    }
    match encoding.decode_without_bom_handling_and_without_replacement(content) {
        Some(text) => Ok(Cow::Owned(text.into_owned().into_bytes())),
        None => Err(format!(
            "it is not valid {} (the charset it declares)",
            encoding.name()
        )),
    }
}

/// Parses a JSON body, in the charset it declares. A 2xx body that ends early (empty or
/// cut off) or is an HTML page (a proxy's error page) is transient: it is most often a torn
/// response or a gateway hiccup, and the next attempt may differ. A complete body that is
/// not JSON, or not text in its charset, is fatal: it would parse the same way every time.
/// A non-2xx non-JSON body is fatal.
pub fn parse_json(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Value, Outcome> {
    let success = (200..300).contains(&status);
    let fatal = |message: String| Outcome::Fatal {
        code: if success {
            "invalid_body".to_owned()
        } else {
            format!("http_{status}")
        },
        message,
    };
    let text = match body_text(headers, body) {
        Ok(text) => text,
        Err(why) if success => {
            return Err(fatal(format!(
                "the response body cannot be read: {why} ({} bytes, Content-Type {}): {}",
                body.len(),
                header(headers, "content-type").unwrap_or("not given"),
                snippet(body)
            )))
        }
        Err(_) => return Err(fatal(format!("HTTP {status}: {}", snippet(body)))),
    };
    match serde_json::from_slice::<Value>(&text) {
        Ok(value) => Ok(value),
        Err(_) if !success => Err(fatal(format!("HTTP {status}: {}", snippet(body)))),
        Err(e) if e.is_eof() => Err(Outcome::Transient {
            code: "invalid_json".to_owned(),
            message: format!(
                "response body ends before its JSON does ({} bytes, {e}); the response may be \
                 truncated or torn: {}",
                body.len(),
                snippet(body)
            ),
        }),
        Err(e) if text.trim_ascii_start().starts_with(b"<") => Err(Outcome::Transient {
            code: "invalid_json".to_owned(),
            message: format!(
                "response body is an HTML page, not JSON ({} bytes, {e}), perhaps a proxy's \
                 error page: {}",
                body.len(),
                snippet(body)
            ),
        }),
        Err(e) if std::str::from_utf8(&text).is_err() => Err(fatal(format!(
            "the response body is not UTF-8 and its Content-Type ({}) declares no other \
             charset ({} bytes, {e}): {}",
            header(headers, "content-type").unwrap_or("not given"),
            body.len(),
            snippet(body)
        ))),
        Err(e) => {
            // One bad record (a lone surrogate `\ud800`, a raw control character) fails the
            // whole page: JSON has no record boundaries to recover at. Name where it is, so
            // the vendor can be told which record, instead of the page's first bytes.
            let offset = byte_offset(&text, e.line(), e.column());
            Err(fatal(format!(
                "the response body is complete but not valid JSON ({} bytes, {e}, byte \
                 offset {offset}); the page fails on every read until the vendor fixes the \
                 record there: …{}…",
                body.len(),
                around(&text, offset)
            )))
        }
    }
}

/// The byte offset of serde_json's 1-based `line` and `column` (a column counts bytes).
fn byte_offset(text: &[u8], line: usize, column: usize) -> usize {
    let line_start = text
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// The text around `offset` (up to 200 bytes before, 100 after), for an error message.
fn around(text: &[u8], offset: usize) -> String {
    let start = offset.saturating_sub(200);
    let end = (offset + 100).min(text.len());
    String::from_utf8_lossy(&text[start..end]).into_owned()
}

/// `http_failure`, then `parse_json`: the common first step of `classify`.
pub fn decode(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Value, Outcome> {
    if let Some(outcome) = http_failure(status, headers, body) {
        return Err(outcome);
    }
    parse_json(status, headers, body)
}

/// The message field of an envelope, trying the usual names.
pub fn message_of(value: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| value.get(*k).filter(|v| !v.is_null()).map(scalar_text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_go_back_to_the_vendor_as_it_wrote_them() {
        for text in ["12345678901234567890123", "9007199254740993", "19.90", "-0"] {
            let value: Value = serde_json::from_str(text).expect("a number");
            assert_eq!(scalar_text(&value), text);
        }
    }

    #[test]
    fn concat_sorted_orders_by_ascii() {
        assert_eq!(
            concat_sorted([("b", "2"), ("a", "1"), ("B", "3")]),
            "B3a1b2"
        );
    }

    #[test]
    fn torn_body_is_transient_and_html_404_fatal() {
        let torn = parse_json(200, &[], br#"{"code":0,"data":{"datas":[{"a""#).unwrap_err();
        assert!(matches!(torn, Outcome::Transient { ref message, .. } if message.contains("torn")));
        let html = parse_json(404, &[], b"<html>not found</html>").unwrap_err();
        assert!(matches!(html, Outcome::Fatal { ref code, .. } if code == "http_404"));
        assert!(matches!(
            parse_json(200, &[], b""),
            Err(Outcome::Transient { .. })
        ));
        assert!(matches!(
            parse_json(200, &[], b"<html>502 Bad Gateway</html>"),
            Err(Outcome::Transient { .. })
        ));
    }

    #[test]
    fn bodies_in_other_encodings_are_decoded_and_broken_ones_are_not_retried() {
        let json = |ct: &str| vec![("Content-Type".to_owned(), ct.to_owned())];
        let expected = serde_json::json!({"name": "退款单"});
        // A UTF-8 byte-order mark.
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(r#"{"name":"退款单"}"#.as_bytes());
        assert_eq!(parse_json(200, &[], &bom), Ok(expected.clone()));
        // GBK, declared.
        let (gbk, _, _) = encoding_rs::GBK.encode(r#"{"name":"退款单"}"#);
        for ct in [
            "application/json;charset=GBK",
            "application/json; charset=\"gb2312\"",
            "application/json;charset=GB18030",
        ] {
            assert_eq!(
                parse_json(200, &json(ct), &gbk),
                Ok(expected.clone()),
                "{ct}"
            );
        }
        // GBK, undeclared: fatal, and it says what to look at, not "torn".
        let undeclared = parse_json(200, &json("application/json"), &gbk).unwrap_err();
        assert!(
            matches!(&undeclared, Outcome::Fatal { message, .. }
                if message.contains("not UTF-8") && !message.contains("torn")),
            "{undeclared:?}"
        );
        // An unknown charset, and bytes the declared charset does not have.
        assert!(matches!(
            parse_json(200, &json("application/json;charset=klingon"), b"{}"),
            Err(Outcome::Fatal { ref message, .. }) if message.contains("unknown charset `klingon`")
        ));
        assert!(matches!(
            parse_json(
                200,
                &json("application/json;charset=utf-8"),
                b"{\"a\":\"\xFF\"}"
            ),
            Err(Outcome::Fatal { .. })
        ));
        // Complete but not JSON: fatal.
        assert!(matches!(
            parse_json(200, &[], br#"{"a":1} trailing"#),
            Err(Outcome::Fatal { ref message, .. }) if message.contains("complete but not valid JSON")
        ));
    }

    #[test]
    fn retry_after_reads_seconds_fractions_and_http_dates() {
        let at = |value: &str| RetryAfter::parse(&[("retry-after".to_owned(), value.to_owned())]);
        assert_eq!(at("7"), Some(RetryAfter::Delay(Duration::from_secs(7))));
        assert_eq!(
            at(" 1.5 "),
            Some(RetryAfter::Delay(Duration::from_millis(1500)))
        );
        assert_eq!(at("-1"), None);
        assert_eq!(at("NaN"), None);
        assert_eq!(at("86400"), None, "a day or more is garbage");
        assert_eq!(at("soon"), None);
        assert_eq!(RetryAfter::parse(&[]), None);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        let date = at("Wed, 21 Oct 2015 07:28:00 GMT").expect("an HTTP-date");
        assert_eq!(date.wait(now), Some(Duration::from_secs(10)));
        assert_eq!(date.delay(), None);
        assert_eq!(
            date.wait(now + Duration::from_secs(60)),
            Some(Duration::ZERO)
        );
        assert_eq!(date.wait(now - MAX_RETRY_AFTER), None);
        // The obsolete RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(at("Wednesday, 21-Oct-15 07:28:00 GMT"), Some(date));
        assert_eq!(at("Wed Oct 21 07:28:00 2015"), Some(date));
    }

    #[test]
    fn a_5xx_with_an_http_date_is_throttling_whose_wait_source_computes() {
        let headers = vec![(
            "Retry-After".to_owned(),
            "Wed, 21 Oct 2015 07:28:00 GMT".to_owned(),
        )];
        assert!(matches!(
            http_failure(503, &headers, b""),
            Some(Outcome::Throttled {
                retry_after: None,
                ..
            })
        ));
    }

    #[test]
    fn http_failures_honour_retry_after() {
        let headers = vec![("Retry-After".to_owned(), "7".to_owned())];
        assert_eq!(
            http_failure(429, &headers, b""),
            Some(Outcome::Throttled {
                code: "http_429".to_owned(),
                message: "HTTP 429 Too Many Requests: ".to_owned(),
                retry_after: Some(Duration::from_secs(7)),
            })
        );
        assert!(matches!(
            http_failure(502, &[], b"bad"),
            Some(Outcome::Transient { .. })
        ));
        assert!(matches!(
            http_failure(503, &headers, b""),
            Some(Outcome::Throttled { retry_after: Some(d), .. }) if d.as_secs() == 7
        ));
        assert_eq!(http_failure(200, &[], b""), None);
        assert_eq!(http_failure(404, &[], b""), None);
    }
}
