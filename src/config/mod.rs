//! Connection profiles (`qsync.yaml`): DSNs and credentials, never in specs.
//!
//! Owns loading the YAML, `${ENV}` expansion and the typed view of each connection; which
//! values are secrets and how they are masked ([`mask`]); and the target database's URL
//! ([`LoadedProfile::target_url`]). It does not own what a vendor does with its
//! credentials (`connectors`).

mod mask;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use mask::{mask, Masker};

/// A parsed profile file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// IANA time zone of the source systems' clocks; `Asia/Shanghai` by default.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub connections: BTreeMap<String, Connection>,
    /// Alert channels for `qsync serve`: a list of `{kind: dingtalk, url, secret}`,
    /// `{kind: wecom, url}` or `{kind: webhook, url, headers}`; the schema and its checks
    /// live in `serve::alerts`.
    #[serde(default)]
    pub alerts: Vec<serde_yaml::Value>,
    /// Token required by the status API on non-loopback listeners.
    #[serde(default)]
    pub api_token: Option<String>,
}

/// The response size limit of a vendor connection without `max_response_mb`, in MiB.
pub const DEFAULT_MAX_RESPONSE_MB: u64 = 64;

/// Profile keys every vendor connection takes besides its kind's own.
pub const COMMON_VENDOR_KEYS: &[&str] = &["max_response_mb"];

/// One entry of `connections:`.
#[derive(Debug, Clone, Deserialize)]
pub struct Connection {
    /// `mysql`, `jushuitan`, `qimen`, `jikeyun`, `wdt`, `dingtalk_yida` or `http`.
    pub kind: String,
    /// Every other key: `url`, `base_url`, `app_key`, `app_secret`, ...
    #[serde(flatten)]
    pub settings: BTreeMap<String, serde_yaml::Value>,
}

impl Connection {
    /// A setting as text (numbers and booleans are accepted as their text form).
    pub fn get(&self, key: &str) -> Option<String> {
        match self.settings.get(key)? {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The largest response body qsync reads from this vendor connection, in bytes:
    /// `max_response_mb` (MiB, a whole number ≥ 1), else [`DEFAULT_MAX_RESPONSE_MB`]. A
    /// decoded page takes several times its body in memory, so a vendor (or a proxy) that
    /// answers with a huge body must fail the call, not the machine.
    ///
    /// # Errors
    /// A message naming the key when it is not a whole number of MiB ≥ 1.
    pub fn max_response_bytes(&self) -> Result<u64, String> {
        let Some(value) = self.get("max_response_mb") else {
            return Ok(DEFAULT_MAX_RESPONSE_MB << 20);
        };
        match value.trim().parse::<u64>() {
            Ok(mb) if (1..=1 << 20).contains(&mb) => Ok(mb << 20),
            _ => Err(format!(
                "`max_response_mb` must be a whole number of MiB from 1 to 1048576, not `{value}`"
            )),
        }
    }

    /// Every setting whose value is a secret, to be masked wherever it could be printed:
    /// settings named like one ([`is_secret_key`]), the values under `secrets:`
    /// ([`Connection::declared_secrets`]), the password of any URL setting (`url`,
    /// `base_url`: `https://user:pw@host`), for a MySQL `url` also its `ssl-key` path, and
    /// `username:password` as one value, whose base64 is `Authorization: Basic`.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .settings
            .iter()
            .filter(|(key, _)| is_secret_key(key))
            .filter_map(|(key, _)| self.get(key))
            .filter(|value| !value.is_empty())
            .collect();
        secrets.extend(self.declared_secrets().into_values());
        for key in self.settings.keys().filter(|key| key.ends_with("url")) {
            let Some(text) = self.get(key) else {
                continue;
            };
            // The password as written: the parser re-encodes it (`=` becomes `%3D`).
            if let Some((_, rest)) = text.split_once("://") {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                if let Some((userinfo, _)) = authority.rsplit_once('@') {
                    if let Some((_, password)) = userinfo.split_once(':') {
                        secrets.push(password.to_owned());
                    }
                }
            }
            let Ok(url) = url::Url::parse(&text) else {
                continue;
            };
            if let Some(password) = url.password() {
                let decoded = percent_decode(password);
                // What an HTTP client sends as `Authorization: Basic` for such a URL.
                if !url.username().is_empty() {
                    secrets.push(format!("{}:{decoded}", percent_decode(url.username())));
                }
                secrets.push(decoded);
                secrets.push(password.to_owned());
            }
            secrets.extend(
                url.query_pairs()
                    .filter(|(key, _)| matches!(key.as_ref(), "ssl-key" | "ssl_key"))
                    .map(|(_, path)| path.into_owned()),
            );
        }
        if let (Some(user), Some(password)) = (self.get("username"), self.get("password")) {
            secrets.push(format!("{user}:{password}"));
        }
        secrets.retain(|secret| !secret.is_empty());
        secrets
    }

    /// The connection's extra secrets, `secrets: { system_token: ${YIDA_SYSTEM_TOKEN} }`:
    /// values a spec sends as request parameters (`{{ secrets.system_token }}`) that the
    /// vendor's own settings do not cover. Masked like every other secret.
    pub fn declared_secrets(&self) -> BTreeMap<String, String> {
        let Some(serde_yaml::Value::Mapping(map)) = self.settings.get("secrets") else {
            return BTreeMap::new();
        };
        map.iter()
            .filter_map(|(key, value)| {
                let value = match value {
                    serde_yaml::Value::String(s) => s.clone(),
                    serde_yaml::Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some((key.as_str()?.to_owned(), value))
            })
            .collect()
    }
}

/// The values of environment variables whose name says they are credentials (it contains
/// `TOKEN`, `SECRET`, `PASSWORD` or `KEY`, in any case): a spec may send them through
/// `{{ env.NAME }}`. Values under four characters are left out (`KEYS=1` would otherwise
/// mask every `1`).
pub fn env_secrets(vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    vars.into_iter()
        .filter(|(name, value)| {
            let name = name.to_ascii_uppercase();
            value.chars().count() >= 4
                && ["TOKEN", "SECRET", "PASSWORD", "KEY"]
                    .iter()
                    .any(|word| name.contains(word))
        })
        .map(|(_, value)| value)
        .collect()
}

/// `text` with its `%XX` escapes decoded, as a URL's userinfo holds them (`+` stays `+`).
fn percent_decode(text: &str) -> String {
    let escaped = text.replace('+', "%2B");
    form_urlencoded::parse(escaped.as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(key, _)| key.into_owned())
}

/// Keys that hold credentials.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "sign_key",
        "key_secret",
        "salt",
    ]
    .iter()
    .any(|word| key.contains(word))
        || key == "url" // MySQL URLs carry passwords
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("profile `{path}` is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("profile `{path}` uses environment variable `{var}`, which is not set")]
    MissingEnv { path: String, var: String },
    #[error("profile `{path}` has no connection `{name}`")]
    UnknownConnection { path: String, name: String },
    #[error("connection `{name}` in profile `{path}` has no `{key}`")]
    MissingSetting {
        path: String,
        name: String,
        key: String,
    },
    /// A target's `connection` names a vendor entry.
    #[error(
        "connection `{name}` in profile `{path}` is `kind: {kind}`; a target needs `kind: mysql`"
    )]
    NotMysql {
        path: String,
        name: String,
        kind: String,
    },
}

/// How missing environment variables are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvPolicy {
    /// `plan` and `run`: a missing variable is an error.
    Require,
    /// `check`: a missing variable becomes an empty value and is reported as a warning.
    Tolerate,
}

/// A loaded profile plus the variables it referenced that were not set.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    pub path: String,
    pub profile: Profile,
    pub missing_env: Vec<String>,
    /// Unset variables per connection entry.
    pub missing_by_connection: BTreeMap<String, Vec<String>>,
    /// The profile's text as read, to say where in it an entry or a key stands.
    pub text: String,
}

impl LoadedProfile {
    pub fn connection(&self, name: &str) -> Result<&Connection, ProfileError> {
        self.profile
            .connections
            .get(name)
            .ok_or_else(|| ProfileError::UnknownConnection {
                path: self.path.clone(),
                name: name.to_owned(),
            })
    }

    /// The `url` of connection `name`, the target database: the one lookup `run`, `replay`,
    /// `serve`, `plan --stored` and `check --db` share.
    ///
    /// Errors: no such connection, one that is not `kind: mysql`, or one without a
    /// (non-empty) `url`.
    pub fn target_url(&self, name: &str) -> Result<String, ProfileError> {
        let connection = self.connection(name)?;
        if connection.kind != "mysql" {
            return Err(ProfileError::NotMysql {
                path: self.path.clone(),
                name: name.to_owned(),
                kind: connection.kind.clone(),
            });
        }
        connection
            .get("url")
            .filter(|url| !url.is_empty())
            .ok_or_else(|| ProfileError::MissingSetting {
                path: self.path.clone(),
                name: name.to_owned(),
                key: "url".to_owned(),
            })
    }

    /// Where connection `name` (or its `key`) is written: `qsync.yaml:12:5`, or the path
    /// alone when the text does not show it plainly (flow style, anchors).
    pub fn locate(&self, name: &str, key: Option<&str>) -> String {
        match position(&self.text, name, key) {
            Some((line, column)) => format!("{}:{line}:{column}", self.path),
            None => self.path.clone(),
        }
    }

    pub fn timezone(&self) -> chrono_tz::Tz {
        self.profile
            .timezone
            .as_deref()
            .and_then(|tz| tz.parse().ok())
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// Every secret value in the profile, and the credential-named environment variables
    /// ([`env_secrets`]), longest first; [`Masker`] adds their encoded forms.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .profile
            .connections
            .values()
            .flat_map(Connection::secrets)
            .collect();
        if let Some(token) = &self.profile.api_token {
            secrets.push(token.clone());
        }
        secrets.extend(env_secrets(std::env::vars()));
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        secrets
    }
}

/// Reads and parses a profile, expanding `${VAR}` and `${VAR:-default}` from `env`.
pub fn load(
    path: &Path,
    policy: EnvPolicy,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedProfile, ProfileError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: display.clone(),
        source,
    })?;
    parse(&display, &text, policy, env)
}

/// Parses profile text; see [`load`].
pub fn parse(
    path: &str,
    text: &str,
    policy: EnvPolicy,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedProfile, ProfileError> {
    let parse_error = |message: String| ProfileError::Parse {
        path: path.to_owned(),
        message,
    };
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
    // Expand inside values only, so comments may mention `${VAR}` freely.
    let mut missing_env = Vec::new();
    let mut per_connection: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(connections) = doc
        .get_mut("connections")
        .and_then(serde_yaml::Value::as_mapping_mut)
    {
        for (name, entry) in connections.iter_mut() {
            let mut missing = Vec::new();
            expand_value(entry, env, &mut missing);
            if let Some(name) = name.as_str() {
                per_connection.insert(name.to_owned(), missing.clone());
            }
            missing_env.extend(missing);
        }
    }
    expand_value(&mut doc, env, &mut missing_env);
    missing_env.dedup();
    if policy == EnvPolicy::Require {
        if let Some(var) = missing_env.first() {
            return Err(ProfileError::MissingEnv {
                path: path.to_owned(),
                var: var.clone(),
            });
        }
    }
    // A type error quotes the value (`invalid type: integer `123456`, expected a string`):
    // never a secret's.
    let mut hidden = Vec::new();
    secret_scalars(&doc, false, &mut hidden);
    // As in `serve`: a value under four characters would mask ordinary words.
    hidden.retain(|value| value.chars().count() >= 4);
    let profile: Profile = serde_yaml::from_value(doc)
        .map_err(|e| parse_error(Masker::new(&hidden).mask(&e.to_string())))?;
    per_connection.retain(|_, vars| !vars.is_empty());
    for (name, connection) in &profile.connections {
        let known = connection.kind == "mysql"
            || crate::plan::ConnectorKind::from_keyword(&connection.kind).is_some();
        if !known {
            let mut kinds = vec!["mysql"];
            kinds.extend(crate::plan::ConnectorKind::ALL.map(|kind| kind.keyword()));
            let hint = match crate::plan::closest(&connection.kind, &kinds) {
                Some(kind) => format!("did you mean `{kind}`?"),
                None => {
                    let last = kinds.pop().unwrap_or_default();
                    format!("expected {} or {last}", kinds.join(", "))
                }
            };
            let at = match position(text, name, Some("kind")) {
                Some((line, column)) => format!("{path}:{line}:{column}"),
                None => path.to_owned(),
            };
            return Err(ProfileError::Parse {
                path: path.to_owned(),
                message: format!(
                    "connection `{name}` has unknown kind `{}` at {at}; {hint}",
                    connection.kind,
                ),
            });
        }
    }
    Ok(LoadedProfile {
        path: path.to_owned(),
        profile,
        missing_env,
        missing_by_connection: per_connection,
        text: text.to_owned(),
    })
}

/// The keys a `kind: mysql` connection takes (see [`LoadedProfile::target_url`]); the
/// vendors' keys are in `connectors::profile_keys`.
pub const MYSQL_KEYS: &[&str] = &["url"];

/// The 1-based line and column of connection `name` under `connections:` (of its `key`
/// when given), in block-style YAML as profiles are written; `None` when not found.
/// Hand-written because serde_yaml's `Value` keeps no positions, and a line scan over
/// `name:` / `key:` at their indentation is all a profile needs.
fn position(text: &str, name: &str, key: Option<&str>) -> Option<(usize, usize)> {
    let mut in_connections = false;
    let mut entry_indent: Option<usize> = None;
    let mut in_entry = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let word = trimmed
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if indent == 0 {
            in_connections = word == "connections";
            entry_indent = None;
            in_entry = false;
            continue;
        }
        if !in_connections {
            continue;
        }
        if entry_indent.is_none_or(|at| indent <= at) {
            entry_indent = Some(indent);
            in_entry = word == name;
            if in_entry && key.is_none() {
                return Some((index + 1, indent + 1));
            }
        } else if in_entry && Some(word) == key {
            return Some((index + 1, indent + 1));
        }
    }
    None
}

/// The scalar values under keys named like secrets ([`is_secret_key`], `secrets:`), as
/// text, for masking errors about the profile itself.
fn secret_scalars(value: &serde_yaml::Value, secret: bool, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, v) in map {
                let named = key.as_str().is_some_and(is_secret_key);
                secret_scalars(v, secret || named, out);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for v in items {
                secret_scalars(v, secret, out);
            }
        }
        serde_yaml::Value::Tagged(tagged) => secret_scalars(&tagged.value, secret, out),
        serde_yaml::Value::String(s) if secret => out.push(s.clone()),
        serde_yaml::Value::Number(n) if secret => out.push(n.to_string()),
        serde_yaml::Value::Bool(b) if secret => out.push(b.to_string()),
        _ => {}
    }
}

/// Expands every string inside `value`, collecting unset variables.
fn expand_value(
    value: &mut serde_yaml::Value,
    env: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
) {
    match value {
        serde_yaml::Value::String(s) => {
            let (expanded, unset) = expand_env(s, env);
            *s = expanded;
            for var in unset {
                if !missing.contains(&var) {
                    missing.push(var);
                }
            }
        }
        serde_yaml::Value::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                expand_value(v, env, missing);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for v in items {
                expand_value(v, env, missing);
            }
        }
        _ => {}
    }
}

/// Replaces `${VAR}` / `${VAR:-default}`; returns the text and the unset variables.
fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (var, default) = match inner.split_once(":-") {
            Some((var, default)) => (var, Some(default)),
            None => (inner, None),
        };
        match (env(var), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                if !missing.iter().any(|m| m == var) {
                    missing.push(var.to_owned());
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (out, missing)
}

/// The process environment, for [`load`].
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "JST_SECRET" => Some("s3cr3t".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn comments_are_not_expanded_and_misses_are_per_connection() {
        let text = "# use ${NOPE} here\nconnections:\n  a:\n    kind: http\n    token: ${MISSING_A}\n  b:\n    kind: mysql\n    url: mysql://x\n";
        let loaded = parse("p.yaml", text, EnvPolicy::Tolerate, &env).unwrap();
        assert_eq!(loaded.missing_env, vec!["MISSING_A".to_owned()]);
        assert_eq!(
            loaded.missing_by_connection["a"],
            vec!["MISSING_A".to_owned()]
        );
        assert!(!loaded.missing_by_connection.contains_key("b"));
    }

    const PROFILE: &str = "connections:\n  jst:\n    kind: jushuitan\n    app_secret: ${JST_SECRET}\n    app_key: ${JST_KEY:-k1}\n  bi:\n    kind: mysql\n    url: ${BI_URL}\n";

    #[test]
    fn expands_env_and_defaults() {
        let loaded = parse("p.yaml", PROFILE, EnvPolicy::Tolerate, &env).unwrap();
        let jst = loaded.connection("jst").unwrap();
        assert_eq!(jst.get("app_secret").as_deref(), Some("s3cr3t"));
        assert_eq!(jst.get("app_key").as_deref(), Some("k1"));
        assert_eq!(loaded.missing_env, vec!["BI_URL".to_owned()]);
    }

    #[test]
    fn missing_env_is_an_error_when_required() {
        let err = parse("p.yaml", PROFILE, EnvPolicy::Require, &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "profile `p.yaml` uses environment variable `BI_URL`, which is not set"
        );
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let err = parse(
            "p.yaml",
            "connections:\n  x:\n    kind: oracle\n",
            EnvPolicy::Require,
            &env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown kind `oracle`"), "{err}");
        let err = parse(
            "p.yaml",
            "timezone: UTC\nconnections:\n  jky:\n    kind: jikyun\n",
            EnvPolicy::Require,
            &env,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "profile `p.yaml` is not valid: connection `jky` has unknown kind `jikyun` at \
             p.yaml:4:5; did you mean `jikeyun`?"
        );
    }

    #[test]
    fn entries_and_keys_are_located() {
        let text = "# c\nconnections:\n  a:\n    kind: http\n    token: t\n\n  b:   # x\n    kind: mysql\n    url: u\nalerts: []\n";
        let loaded = parse("p.yaml", text, EnvPolicy::Require, &env).unwrap();
        assert_eq!(loaded.locate("b", None), "p.yaml:7:3");
        assert_eq!(loaded.locate("b", Some("url")), "p.yaml:9:5");
        assert_eq!(loaded.locate("a", Some("token")), "p.yaml:5:5");
        assert_eq!(loaded.locate("a", Some("url")), "p.yaml");
    }

    #[test]
    fn the_target_url_needs_a_mysql_connection_with_a_url() {
        let text = "connections:\n  jst:\n    kind: jushuitan\n  bi:\n    kind: mysql\n    url: mysql://u:p@h/db\n  empty:\n    kind: mysql\n    url: ''\n";
        let loaded = parse("p.yaml", text, EnvPolicy::Require, &env).unwrap();
        assert_eq!(loaded.target_url("bi").unwrap(), "mysql://u:p@h/db");
        assert_eq!(
            loaded.target_url("jst").unwrap_err().to_string(),
            "connection `jst` in profile `p.yaml` is `kind: jushuitan`; a target needs `kind: mysql`"
        );
        assert_eq!(
            loaded.target_url("empty").unwrap_err().to_string(),
            "connection `empty` in profile `p.yaml` has no `url`"
        );
        assert_eq!(
            loaded.target_url("nope").unwrap_err().to_string(),
            "profile `p.yaml` has no connection `nope`"
        );
    }

    #[test]
    fn a_mysql_url_gives_its_password_and_key_path_as_secrets() {
        let text = "connections:\n  bi:\n    kind: mysql\n    url: \"mysql://u:p%40ss+1@db/bi?ssl-mode=required&ssl-cert=/c.pem&ssl-key=/etc/qsync/k.pem\"\n";
        let loaded = parse("p.yaml", text, EnvPolicy::Require, &env).unwrap();
        let secrets = loaded.secrets();
        for secret in ["p@ss+1", "p%40ss+1", "/etc/qsync/k.pem"] {
            assert!(
                secrets.contains(&secret.to_owned()),
                "{secret}: {secrets:?}"
            );
        }
        assert!(!secrets.contains(&"/c.pem".to_owned()), "{secrets:?}");
    }

    #[test]
    fn type_errors_do_not_echo_secrets() {
        let text =
            "api_token: 4711471147\nconnections:\n  x:\n    kind: http\n    password: [abcd]\n";
        let err = parse("p.yaml", text, EnvPolicy::Require, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid type"), "{err}");
        assert!(!err.contains("4711471147"), "{err}");
    }

    #[test]
    fn declared_base_url_basic_and_env_secrets_are_collected() {
        let text = "connections:\n  y:\n    kind: dingtalk_yida\n    base_url: https://ci:Pw+%2F=@h/x\n    username: ci\n    password: Pw+/=\n    secrets:\n      system_token: SysTok+/=&%\n";
        let loaded = parse("p.yaml", text, EnvPolicy::Require, &env).unwrap();
        let y = loaded.connection("y").unwrap();
        assert_eq!(y.declared_secrets()["system_token"], "SysTok+/=&%");
        let secrets = loaded.secrets();
        for secret in ["SysTok+/=&%", "Pw+/=", "Pw+%2F=", "ci:Pw+/="] {
            assert!(
                secrets.contains(&secret.to_owned()),
                "{secret}: {secrets:?}"
            );
        }
        let vars = [
            ("YIDA_SYSTEM_TOKEN", "tok-1234"),
            ("DB_Password", "pw-1234"),
            ("API_KEY", "k1"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(
            env_secrets(vars),
            vec!["tok-1234".to_owned(), "pw-1234".to_owned()]
        );
    }

    #[test]
    fn secrets_are_collected() {
        let loaded = parse("p.yaml", PROFILE, EnvPolicy::Tolerate, &env).unwrap();
        assert!(loaded.secrets().contains(&"s3cr3t".to_owned()));
        assert!(!loaded.secrets().contains(&"k1".to_owned()));
    }
}
