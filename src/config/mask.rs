//! The one secret masker: every form in which qsync could print a secret, replaced by `***`.
//!
//! A secret reaches output in more spellings than the one in the profile: percent-encoded in
//! a query or form body (`plan`'s first request, a vendor error quoting the URL), escaped in
//! JSON (a vendor error body, `/api/*`), base64 in `Authorization: Basic` (of
//! `user:password`, which [`super::Connection::secrets`] lists as one secret). [`Masker`]
//! builds those forms once per secret; [`mask`] is the one-off spelling of it.

use base64::Engine as _;

/// Secrets shorter than this get no encoded forms: the base64 or escaped spelling of a
/// two-letter value would mask ordinary words. The raw value is always masked.
const MIN_ENCODED: usize = 6;

/// Every printed form of a set of secrets, longest first so that a secret containing
/// another is never left half-masked.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    forms: Vec<String>,
}

impl Masker {
    /// Builds the forms of every non-empty secret (see [`forms`]).
    pub fn new<I, S>(secrets: I) -> Masker
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.as_ref().is_empty())
            .flat_map(|s| forms(s.as_ref()))
            .collect();
        all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        all.dedup();
        Masker { forms: all }
    }

    /// `text` with every form of every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for form in &self.forms {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), "***");
            }
        }
        out
    }
}

/// `text` with every form of every non-empty secret replaced by `***` (see [`Masker`];
/// build one when masking many texts with the same secrets).
pub fn mask(text: &str, secrets: &[String]) -> String {
    Masker::new(secrets).mask(text)
}

/// The spellings of one secret qsync or a vendor may print: raw; percent-encoded as a form
/// or query (`+` for space) and strictly (`%20`), each with upper- and lower-case hex;
/// JSON-escaped, also with `\/` and with `\uXXXX` for non-ASCII; base64 (standard and
/// URL-safe, padded and not).
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    if secret.chars().count() < MIN_ENCODED {
        return out;
    }
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let strict = percent_encode_strict(secret);
    for encoded in [form, strict] {
        out.push(lower_hex(&encoded));
        out.push(encoded);
    }
    if let Ok(json) = serde_json::to_string(secret) {
        let json = json[1..json.len() - 1].to_owned();
        out.push(json.replace('/', "\\/"));
        let ascii: String = json
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    let mut units = [0u16; 2];
                    c.encode_utf16(&mut units)
                        .iter()
                        .map(|u| format!("\\u{u:04x}"))
                        .collect()
                }
            })
            .collect();
        out.push(ascii);
        out.push(json);
    }
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        out.push(engine.encode(secret));
    }
    out.retain(|f| !f.is_empty());
    out.sort();
    out.dedup();
    out
}

/// Every byte but the unreserved `A-Z a-z 0-9 - . _ ~` as `%XX`: how `encodeURIComponent`
/// and most signing code spell a value. By hand: four lines against a dependency.
fn percent_encode_strict(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%2B` → `%2b`: the hex digits of escapes in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "Canary+/=&%sec ret/é\"";

    #[test]
    fn mask_replaces_longest_first() {
        let secrets = vec!["abc".to_owned(), "abcdef".to_owned(), String::new()];
        assert_eq!(mask("x=abcdef&y=abc", &secrets), "x=***&y=***");
        assert_eq!(mask("nothing", &secrets), "nothing");
    }

    #[test]
    fn every_printed_form_is_masked() {
        let masker = Masker::new([CANARY]);
        let b64 = base64::engine::general_purpose::STANDARD;
        let json = serde_json::to_string(CANARY).unwrap();
        let shown = [
            CANARY.to_owned(),
            form_urlencoded::Serializer::new(String::new())
                .append_pair("key", CANARY)
                .finish(),
            format!("https://h/x?key={}", percent_encode_strict(CANARY)),
            format!("{{\"error\":{json}}}"),
            format!("{{\"error\":{}}}", json.replace('/', "\\/")),
            b64.encode(CANARY),
            base64::engine::general_purpose::URL_SAFE.encode(CANARY),
            lower_hex(&percent_encode_strict(CANARY)),
        ];
        for text in shown {
            let masked = masker.mask(&text);
            assert!(masked.contains("***"), "{text} -> {masked}");
            assert!(!masked.contains("Canary"), "{text} -> {masked}");
            assert!(!masked.contains("Q2FuYXJ5"), "{text} -> {masked}");
        }
    }

    #[test]
    fn basic_auth_is_masked_through_its_pair() {
        let header = format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ci-user:Pw+/=&%1")
        );
        let masked = Masker::new(["Pw+/=&%1", "ci-user:Pw+/=&%1"]).mask(&header);
        assert_eq!(masked, "Authorization: Basic ***");
    }

    #[test]
    fn short_secrets_get_no_encoded_forms() {
        assert_eq!(forms("k1"), vec!["k1".to_owned()]);
        assert_eq!(Masker::new(["k1"]).mask("aw k1 azE"), "aw *** azE");
    }
}
