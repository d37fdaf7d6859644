//! How a sink reaches its server: the profile's MySQL URL with qsync's TLS settings, the one
//! probe connection a sink makes before it builds its pool, and what that probe learned.
//!
//! Owns the URL parameters qsync adds to the driver's, named as MySQL's own client names its
//! options (`ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key`), what each mode asks of rustls, and
//! the messages of connection failures. It does not own what is written (`mysql`) nor how
//! the URL is found in the profile (the callers).
//!
//! The probe decides once per sink what the pool then uses for every connection: whether a
//! `preferred` server offers TLS, and for `verify_ca` a host name the certificate holds (see
//! [`Endpoint::connect`]), so no connection of a run repeats a failed attempt.

use std::fmt;

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};

use super::mysql::{classify_code, ErrorClass, SinkError};

/// The `ssl-mode` of a MySQL URL: MySQL's client values, in any case, with `_` or `-`.
///
/// Without `ssl-mode`, `verify_ca` when `ssl-ca` is given, else `preferred` (MySQL's client
/// does the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disabled,
    /// TLS when the server offers it, its certificate unchecked; else unencrypted.
    Preferred,
    /// TLS or no connection; the certificate is not checked.
    Required,
    /// TLS with a certificate signed by `ssl-ca` (without it, by a CA of the built-in
    /// Mozilla roots), whatever host names it holds.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must hold the URL's host (name or IP address).
    VerifyIdentity,
}

impl SslMode {
    /// Parses an `ssl-mode` value; `None` when it is none of the five.
    pub fn parse(text: &str) -> Option<SslMode> {
        match text.to_ascii_lowercase().replace('-', "_").as_str() {
            "disabled" => Some(SslMode::Disabled),
            "preferred" => Some(SslMode::Preferred),
            "required" => Some(SslMode::Required),
            "verify_ca" => Some(SslMode::VerifyCa),
            "verify_identity" => Some(SslMode::VerifyIdentity),
            _ => None,
        }
    }

    /// Whether the server's certificate is checked against a CA.
    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyIdentity)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        })
    }
}

/// How a sink's connections travel, as the server reports it on the probe connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// The URL's `ssl-mode` (or its default).
    pub mode: SslMode,
    /// The TLS protocol version and cipher (`TLSv1.3`, `TLS_AES_256_GCM_SHA384`), `None`
    /// when the connection is not encrypted.
    pub tls: Option<(String, String)>,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls {
            Some((version, cipher)) => {
                write!(f, "encrypted ({version}, {cipher}; ssl-mode={})", self.mode)
            }
            None => write!(f, "not encrypted (ssl-mode={})", self.mode),
        }
    }
}

/// URL parameters of the driver's own that set TLS up; qsync's `ssl-*` replace them, so that
/// one URL cannot say two things.
const DRIVER_TLS_PARAMS: [(&str, &str); 4] = [
    ("require_ssl", "ssl-mode=required"),
    ("verify_ca", "ssl-mode=verify_ca"),
    ("verify_identity", "ssl-mode=verify_identity"),
    ("built_in_roots", "ssl-ca"),
];

/// A parsed MySQL URL: the driver's options without TLS, and the TLS settings.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    base: Opts,
    mode: SslMode,
    /// `ssl-ca`'s certificates (PEM or DER), read once.
    ca: Option<Vec<u8>>,
    /// `ssl-cert` and `ssl-key` (PEM or DER), read once.
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// `host:port`, for messages.
    pub(crate) host: String,
    /// The URL's database, for messages.
    pub(crate) database: String,
}

/// The options the pool uses, the probe connection, and what it learned.
pub(crate) struct Opened {
    pub(crate) opts: Opts,
    pub(crate) conn: Conn,
    pub(crate) transport: Transport,
}

impl Endpoint {
    /// Parses `url` and reads the files its `ssl-ca`, `ssl-cert` and `ssl-key` name.
    ///
    /// # Errors
    /// [`SinkError::Url`] for a URL the driver refuses or a driver TLS parameter;
    /// [`SinkError::Tls`] for an unknown `ssl-mode`, settings that contradict each other
    /// (`ssl-mode=disabled&ssl-ca=...`, `ssl-cert` without `ssl-key`), a file that cannot be
    /// read, and a client key the driver cannot read. Messages name the files, but show the
    /// `ssl-key` path as `***`.
    pub(crate) async fn parse(url: &str) -> Result<Endpoint, SinkError> {
        let bad = |reason: String| SinkError::Url { reason };
        let settings = TlsSettings::split(url).map_err(bad)?;
        // mysql_async (0.36) always asks the server for CLIENT_MULTI_STATEMENTS
        // (`Opts::get_capabilities`) and offers neither a switch nor COM_SET_OPTION, so a
        // text statement holding a `;` would run as several. qsync's only raw SQL, a
        // spec's `sql(...)` and `sql` head, is held to one piece of one statement instead
        // (`plan::sql_fault`, in `check` and again in `sql::TableSpec::new`).
        let base = Opts::from_url(&settings.rest).map_err(|error| bad(error.to_string()))?;
        let mode = settings.mode()?;
        let ca = match &settings.ca {
            Some(path) => Some(read_file("ssl-ca", path).await?),
            None => None,
        };
        let identity = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => {
                let key_pem = read_file("ssl-key", key).await?;
                expect_rsa_key(&key_pem)?;
                Some((read_file("ssl-cert", cert).await?, key_pem))
            }
            _ => None,
        };
        let host = format!("{}:{}", base.ip_or_hostname(), base.tcp_port());
        let database = base.db_name().unwrap_or("").to_owned();
        Ok(Endpoint {
            base,
            mode,
            ca,
            identity,
            host,
            database,
        })
    }

    /// The TLS options for `mode`; `name` overrides the host name the certificate must hold.
    fn ssl_opts(&self, name: Option<String>) -> SslOpts {
        let identity = self
            .identity
            .as_ref()
            .map(|(cert, key)| ClientIdentity::new(cert.clone().into(), key.clone().into()));
        let opts = SslOpts::default().with_client_identity(identity);
        if !self.mode.verifies() {
            // MySQL's `preferred` and `required` encrypt without checking who answers.
            return opts.with_danger_accept_invalid_certs(true);
        }
        let opts = match &self.ca {
            // The CA the user named, alone: with the built-in roots beside it, any
            // certificate a public CA signed would pass `verify_ca`.
            Some(ca) => opts
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true),
            None => opts,
        };
        opts.with_danger_tls_hostname_override(name)
    }

    /// Options for one attempt: `init` run on each new connection, TLS or not.
    fn opts(&self, init: &[String], tls: Option<SslOpts>) -> Opts {
        let builder = OptsBuilder::from_opts(self.base.clone()).init(init.to_vec());
        match tls {
            // The driver moves a connection to the server's Unix socket when it can reach
            // it (`prefer_socket`), and a socket carries no TLS: the user asked for TLS.
            Some(tls) => builder.ssl_opts(tls).prefer_socket(false).into(),
            None => builder.into(),
        }
    }

    /// Opens the probe connection and settles the options of every later one.
    ///
    /// - `preferred`: TLS when the server offers it, else the unencrypted options.
    /// - `verify_ca`: the driver can only skip the host-name check by matching
    ///   `NotValidForName` in the text of rustls' error, which rustls 0.23 no longer prints
    ///   (its error is now `NotValidForNameContext`, displayed in words). So the probe checks
    ///   the certificate against the host; when only the name is wrong (webpki checks the
    ///   chain first, so the CA did sign it), the pool asks for a name the certificate holds
    ///   instead: the chain is still checked on every connection, the name is one it has.
    ///
    /// # Errors
    /// [`SinkError::Connect`] with a reason a user can act on (see `connect_failure`).
    pub(crate) async fn connect(&self, init: &[String]) -> Result<Opened, SinkError> {
        let (opts, conn) = match self.mode {
            SslMode::Disabled => match Conn::new(self.opts(init, None)).await {
                Ok(conn) => (self.opts(init, None), conn),
                Err(error) => return Err(self.refused_in_clear(init, &error).await),
            },
            SslMode::Preferred => {
                let tls = self.opts(init, Some(self.ssl_opts(None)));
                match Conn::new(tls.clone()).await {
                    Ok(conn) => (tls, conn),
                    Err(mysql_async::Error::Driver(
                        mysql_async::DriverError::NoClientSslFlagFromServer,
                    )) => self.attempt(self.opts(init, None)).await?,
                    Err(error) => return Err(self.failure(&error)),
                }
            }
            SslMode::Required | SslMode::VerifyIdentity => {
                self.attempt(self.opts(init, Some(self.ssl_opts(None))))
                    .await?
            }
            SslMode::VerifyCa => {
                let checked = self.opts(init, Some(self.ssl_opts(None)));
                match Conn::new(checked.clone()).await {
                    Ok(conn) => (checked, conn),
                    Err(error) => {
                        let Some(names) = name_mismatch(&error) else {
                            return Err(self.failure(&error));
                        };
                        let Some(name) = names.iter().find_map(|n| reference_name(n)) else {
                            return Err(self.connect_error(
                                format!(
                                    "ssl-mode=verify_ca: the server's certificate is signed \
                                     by the CA but holds no host name or IP address \
                                     (subjectAltName) that rustls can check it against{}; \
                                     give the server a certificate with one, or use \
                                     ssl-mode=required",
                                    presented_list(&names)
                                ),
                                ErrorClass::Fatal,
                            ));
                        };
                        self.attempt(self.opts(init, Some(self.ssl_opts(Some(name)))))
                            .await?
                    }
                }
            }
        };
        let mut conn = conn;
        let transport = Transport {
            mode: self.mode,
            tls: tls_session(&mut conn)
                .await
                .map_err(|error| self.failure(&error))?,
        };
        Ok(Opened {
            opts,
            conn,
            transport,
        })
    }

    /// The failure of an unencrypted connection. MariaDB answers `require_secure_transport`
    /// with a plain "Access denied" (1045), like a wrong password: when the same account
    /// gets in over TLS, TLS is what is missing, and the message says so.
    async fn refused_in_clear(&self, init: &[String], error: &mysql_async::Error) -> SinkError {
        let denied = matches!(error, mysql_async::Error::Server(server) if server.code == 1045);
        if denied {
            let tls = self.opts(init, Some(self.ssl_opts(None)));
            if let Ok(conn) = Conn::new(tls).await {
                let _ = conn.disconnect().await;
                return self.connect_error(
                    format!(
                        "ssl-mode={}: the server refuses this account without TLS (MariaDB's \
                         `require_secure_transport`, or `REQUIRE SSL` on the account) and \
                         accepts it with TLS: set ssl-mode=required, or verify_ca or \
                         verify_identity with ssl-ca, in the URL",
                        self.mode
                    ),
                    ErrorClass::Fatal,
                );
            }
        }
        self.failure(error)
    }

    async fn attempt(&self, opts: Opts) -> Result<(Opts, Conn), SinkError> {
        match Conn::new(opts.clone()).await {
            Ok(conn) => Ok((opts, conn)),
            Err(error) => Err(self.failure(&error)),
        }
    }

    fn connect_error(&self, reason: String, class: ErrorClass) -> SinkError {
        SinkError::Connect {
            host: self.host.clone(),
            database: self.database.clone(),
            reason,
            class,
        }
    }

    /// A connection failure, with what to change when TLS is the cause.
    pub(crate) fn failure(&self, error: &mysql_async::Error) -> SinkError {
        let (reason, class) = connect_failure(self.mode, &self.base, error);
        self.connect_error(reason, class)
    }
}

/// The reason and class of a failed connection attempt in `mode` to the server of `base`.
fn connect_failure(mode: SslMode, base: &Opts, error: &mysql_async::Error) -> (String, ErrorClass) {
    let host = base.ip_or_hostname();
    if let Some(names) = name_mismatch(error) {
        return (
            format!(
                "ssl-mode={mode}: the server's certificate is not valid for `{host}`{}; \
                 connect by a name the certificate holds, or use ssl-mode=verify_ca to check \
                 only that the CA signed it",
                presented_list(&names)
            ),
            ErrorClass::Fatal,
        );
    }
    if let Some(tls) = rustls_error(error) {
        let hint = match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                " (a CA other than `ssl-ca`, or than the built-in roots when no `ssl-ca` is \
                 given, signed the server's certificate)"
            }
            _ => "",
        };
        return (
            format!("ssl-mode={mode}: TLS failed: {tls}{hint}"),
            ErrorClass::Fatal,
        );
    }
    match error {
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => (
            format!(
                "ssl-mode={mode} needs TLS, and the server does not offer it (its `have_ssl` is \
                 not YES); configure TLS on the server, or use ssl-mode=preferred"
            ),
            ErrorClass::Fatal,
        ),
        mysql_async::Error::Server(server) if server.code == ER_SECURE_TRANSPORT_REQUIRED => (
            format!(
                "{}: the server accepts only TLS connections (require_secure_transport); \
                 set ssl-mode=required, or verify_ca or verify_identity with ssl-ca, in the URL",
                server.message
            ),
            ErrorClass::Fatal,
        ),
        mysql_async::Error::Server(server) if server.code == ER_BAD_DB_ERROR => (
            format!(
                "{}; create it: CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE \
                 utf8mb4_unicode_ci",
                server.message,
                super::mysql::quote_identifier(base.db_name().unwrap_or_default())
                    .unwrap_or_else(|_| "<database>".to_owned())
            ),
            ErrorClass::Fatal,
        ),
        mysql_async::Error::Server(server) => (server.message.clone(), classify_code(server.code)),
        mysql_async::Error::Io(mysql_async::IoError::Tls(tls)) => (
            format!("ssl-mode={mode}: TLS setup failed: {tls}"),
            ErrorClass::Fatal,
        ),
        // A refused or dropped socket: the server may come back.
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
            (error.to_string(), ErrorClass::Retriable)
        }
        mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => {
            (error.to_string(), ErrorClass::Fatal)
        }
    }
}

/// MySQL's "Connections using insecure transport are prohibited while
/// --require_secure_transport=ON". MariaDB answers 1045 instead (see
/// `Endpoint::refused_in_clear`).
const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;
/// "Unknown database": the URL names a database the server does not have.
const ER_BAD_DB_ERROR: u16 = 1049;

/// The rustls error under a driver error, when a TLS handshake failed.
fn rustls_error(error: &mysql_async::Error) -> Option<&rustls::Error> {
    let mysql_async::Error::Io(io) = error else {
        return None;
    };
    match io {
        mysql_async::IoError::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        mysql_async::IoError::Tls(mysql_async::TlsError::Tls(tls)) => Some(tls),
        mysql_async::IoError::Tls(_) => None,
    }
}

/// The names the certificate presents, when the handshake failed only because none of them
/// is the host asked for.
fn name_mismatch(error: &mysql_async::Error) -> Option<Vec<String>> {
    match rustls_error(error)? {
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => Some(presented.clone()),
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName) => {
            Some(Vec::new())
        }
        _ => None,
    }
}

/// `" (it holds localhost, 10.0.0.5)"`, or nothing when it holds no names.
fn presented_list(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .map(|name| reference_name(name).unwrap_or_else(|| name.clone()))
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!(" (it holds {})", shown.join(", "))
    }
}

/// A host name to ask for that the presented name `presented` matches.
///
/// webpki presents names as `DnsName("db.example.com")` and `IpAddress(10.0.0.5)` (its
/// `Debug` form; the TLS tests check it against a real server). A wildcard's first label
/// is replaced by a fixed one, which the wildcard matches.
fn reference_name(presented: &str) -> Option<String> {
    if let Some(dns) = presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
    {
        let name = match dns.strip_prefix("*.") {
            Some(parent) => format!("qsync-verify-ca.{parent}"),
            None => dns.to_owned(),
        };
        return rustls::pki_types::ServerName::try_from(name.as_str())
            .is_ok()
            .then_some(name);
    }
    let ip = presented
        .strip_prefix("IpAddress(")
        .and_then(|rest| rest.strip_suffix(')'))?;
    ip.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

/// The session's TLS version and cipher, `None` when it is not encrypted.
async fn tls_session(conn: &mut Conn) -> Result<Option<(String, String)>, mysql_async::Error> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        .await?;
    let get = |name: &str| {
        rows.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
    };
    Ok(get("Ssl_version").zip(get("Ssl_cipher")))
}

/// The driver reads a client key only as RSA in PKCS#1 (`BEGIN RSA PRIVATE KEY`, or its
/// DER): anything else would fail at connect time with "No private key found".
fn expect_rsa_key(key: &[u8]) -> Result<(), SinkError> {
    let Ok(text) = std::str::from_utf8(key) else {
        return Ok(()); // DER, taken as PKCS#1
    };
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return Ok(());
    }
    let found = if text.contains("-----BEGIN PRIVATE KEY-----") {
        "a PKCS#8 key (BEGIN PRIVATE KEY)"
    } else if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        "an EC key"
    } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        "an encrypted key"
    } else {
        "no private key"
    };
    Err(SinkError::Tls {
        reason: format!(
            "the `ssl-key` file `***` holds {found}; qsync reads an unencrypted RSA key in \
             PKCS#1 (BEGIN RSA PRIVATE KEY): convert it with `openssl rsa -in KEY -traditional \
             -out KEY.rsa`"
        ),
    })
}

/// The file `path` of `setting`. A message names the `ssl-key` path as `***`: where a
/// private key lives is masked like a secret.
async fn read_file(setting: &str, path: &str) -> Result<Vec<u8>, SinkError> {
    tokio::fs::read(path).await.map_err(|error| {
        let shown = if setting == "ssl-key" { "***" } else { path };
        SinkError::Tls {
            reason: format!("cannot read the `{setting}` file `{shown}`: {error}"),
        }
    })
}

/// qsync's `ssl-*` parameters taken out of a URL, and the URL the driver gets.
#[derive(Debug, Default, PartialEq)]
struct TlsSettings {
    mode: Option<String>,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    /// The URL without them.
    rest: String,
}

impl TlsSettings {
    /// Splits `url`; the driver reports what is wrong with the rest.
    fn split(url: &str) -> Result<TlsSettings, String> {
        let Ok(mut parsed) = url::Url::parse(url) else {
            return Ok(TlsSettings {
                rest: url.to_owned(),
                ..TlsSettings::default()
            });
        };
        let mut settings = TlsSettings::default();
        let mut rest: Vec<(String, String)> = Vec::new();
        for (key, value) in parsed.query_pairs() {
            let slot = match key.to_ascii_lowercase().replace('_', "-").as_str() {
                "ssl-mode" | "sslmode" => &mut settings.mode,
                "ssl-ca" => &mut settings.ca,
                "ssl-cert" => &mut settings.cert,
                "ssl-key" => &mut settings.key,
                _ => {
                    if let Some((_, instead)) =
                        DRIVER_TLS_PARAMS.iter().find(|(name, _)| *name == key)
                    {
                        return Err(format!(
                            "`{key}` is not a qsync URL parameter: use `{instead}` (see the \
                             README, \"MySQL over TLS\")"
                        ));
                    }
                    rest.push((key.into_owned(), value.into_owned()));
                    continue;
                }
            };
            if slot.is_some() {
                return Err(format!("`{key}` is given twice"));
            }
            *slot = Some(value.into_owned());
        }
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
        settings.rest = parsed.into();
        Ok(settings)
    }

    /// The mode these settings ask for.
    fn mode(&self) -> Result<SslMode, SinkError> {
        let bad = |reason: String| Err(SinkError::Tls { reason });
        let mode = match &self.mode {
            Some(text) => match SslMode::parse(text) {
                Some(mode) => mode,
                None => {
                    return bad(format!(
                        "unknown ssl-mode `{text}`: use disabled, preferred, required, \
                         verify_ca or verify_identity"
                    ))
                }
            },
            None if self.ca.is_some() => SslMode::VerifyCa,
            None => SslMode::Preferred,
        };
        if self.cert.is_some() != self.key.is_some() {
            return bad(
                "`ssl-cert` and `ssl-key` go together: the client certificate and its key"
                    .to_owned(),
            );
        }
        if mode == SslMode::Disabled && (self.ca.is_some() || self.cert.is_some()) {
            return bad(
                "ssl-mode=disabled with `ssl-ca`, `ssl-cert` or `ssl-key`: remove them, or \
                 choose another ssl-mode"
                    .to_owned(),
            );
        }
        if self.ca.is_some() && !mode.verifies() {
            return bad(format!(
                "`ssl-ca` with ssl-mode={mode}, which does not check the server's certificate: \
                 use ssl-mode=verify_ca or verify_identity"
            ));
        }
        Ok(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> TlsSettings {
        TlsSettings::split(url).expect("splits")
    }

    fn mode(url: &str) -> Result<SslMode, String> {
        split(url).mode().map_err(|e| e.to_string())
    }

    #[test]
    fn tls_parameters_leave_the_url_the_driver_gets() {
        let settings = split(
            "mysql://u:p@db:3306/bi?ssl-mode=VERIFY_IDENTITY&ssl-ca=%2Fetc%2Fca.pem\
             &pool_max=4&ssl_cert=/c.pem&ssl-key=/k.pem",
        );
        assert_eq!(settings.mode.as_deref(), Some("VERIFY_IDENTITY"));
        assert_eq!(settings.ca.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(settings.cert.as_deref(), Some("/c.pem"));
        assert_eq!(settings.key.as_deref(), Some("/k.pem"));
        assert_eq!(settings.rest, "mysql://u:p@db:3306/bi?pool_max=4");
        assert_eq!(
            split("mysql://db/bi?ssl-mode=required").rest,
            "mysql://db/bi"
        );
        assert_eq!(split("mysql://db/bi").rest, "mysql://db/bi");
    }

    #[test]
    fn modes_parse_as_mysql_writes_them_and_default_by_ssl_ca() {
        for (text, expected) in [
            ("disabled", SslMode::Disabled),
            ("PREFERRED", SslMode::Preferred),
            ("Required", SslMode::Required),
            ("verify-ca", SslMode::VerifyCa),
            ("VERIFY_IDENTITY", SslMode::VerifyIdentity),
        ] {
            assert_eq!(SslMode::parse(text), Some(expected), "{text}");
            assert_eq!(SslMode::parse(&expected.to_string()), Some(expected));
        }
        assert_eq!(mode("mysql://db/bi"), Ok(SslMode::Preferred));
        assert_eq!(mode("mysql://db/bi?ssl-ca=/ca.pem"), Ok(SslMode::VerifyCa));
        assert_eq!(
            mode("mysql://db/bi?ssl-mode=required&ssl-cert=/c&ssl-key=/k"),
            Ok(SslMode::Required)
        );
    }

    #[test]
    fn contradicting_settings_are_refused_with_what_to_change() {
        for (url, expected) in [
            ("mysql://db/bi?ssl-mode=strict", "unknown ssl-mode `strict`"),
            (
                "mysql://db/bi?ssl-cert=/c.pem",
                "`ssl-cert` and `ssl-key` go together",
            ),
            (
                "mysql://db/bi?ssl-mode=disabled&ssl-ca=/ca.pem",
                "ssl-mode=disabled with `ssl-ca`",
            ),
            (
                "mysql://db/bi?ssl-mode=required&ssl-ca=/ca.pem",
                "use ssl-mode=verify_ca or verify_identity",
            ),
        ] {
            let error = mode(url).expect_err(url);
            assert!(error.contains(expected), "{url}: {error}");
        }
        for (param, instead) in DRIVER_TLS_PARAMS {
            let url = format!("mysql://db/bi?{param}=true");
            let error = TlsSettings::split(&url).expect_err(&url);
            assert!(error.contains(&format!("use `{instead}`")), "{error}");
        }
        let error = TlsSettings::split("mysql://db/bi?ssl-mode=required&ssl_mode=disabled")
            .expect_err("twice");
        assert!(error.contains("given twice"), "{error}");
    }

    #[test]
    fn presented_names_become_names_to_ask_for() {
        assert_eq!(
            reference_name("DnsName(\"localhost\")").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            reference_name("DnsName(\"*.rds.aliyuncs.com\")").as_deref(),
            Some("qsync-verify-ca.rds.aliyuncs.com")
        );
        assert_eq!(
            reference_name("IpAddress(10.0.0.5)").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(reference_name("IpAddress(::1)").as_deref(), Some("::1"));
        assert_eq!(reference_name("DirectoryName"), None);
        assert_eq!(reference_name("DnsName(\"bad name\")"), None);
        assert_eq!(
            presented_list(&[
                "DnsName(\"localhost\")".to_owned(),
                "Unsupported(0x88)".to_owned()
            ]),
            " (it holds localhost, Unsupported(0x88))"
        );
    }
}
