//! MySQL over TLS against a MariaDB of the tests' own that accepts only TLS
//! (`require_secure_transport=ON`), with certificates made at test time: each `ssl-mode`,
//! its failures and their messages, a full sync by `LOAD DATA` and by statements, and what
//! `check --db` and `qsync state` report.

use std::path::Path;

use mysql_async::prelude::Queryable;
use qsync::sink::testing::{ServerKind, TestServer};
use qsync::sink::{ErrorClass, MysqlSink, SinkError, SslMode};

fn path(p: &Path) -> String {
    p.display().to_string()
}

async fn connect(url: &str) -> Result<MysqlSink, SinkError> {
    MysqlSink::connect(url).await
}

#[tokio::test]
async fn required_connects_encrypted_and_disabled_is_refused() {
    let server = TestServer::shared(ServerKind::Tls).await;
    let db = server.fresh_database().await;

    for (params, mode) in [
        ("ssl-mode=required", SslMode::Required),
        ("", SslMode::Preferred),
    ] {
        let sink = connect(&server.url(&db, params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        let transport = sink.transport().clone();
        assert_eq!(transport.mode, mode);
        let (version, cipher) = transport.tls.clone().expect("encrypted");
        assert!(version.starts_with("TLSv1."), "{version}");
        assert!(!cipher.is_empty());
        assert!(
            transport.to_string().starts_with("encrypted (TLSv1."),
            "{transport}"
        );
        // The pool's connections travel as the probe did.
        let table = sink
            .describe(&[db.clone(), "nothing".to_owned()])
            .await
            .expect("a pooled connection works");
        assert!(table.is_none());
        sink.disconnect().await;
    }

    let error = connect(&server.url(&db, "ssl-mode=disabled"))
        .await
        .expect_err("the server requires TLS");
    let text = error.to_string();
    assert!(
        text.contains("ssl-mode=disabled: the server refuses this account without TLS")
            && text.contains("set ssl-mode=required"),
        "{text}"
    );
    assert_eq!(error.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn verify_identity_checks_the_host_name_and_verify_ca_the_signature() {
    let server = TestServer::shared(ServerKind::Tls).await;
    let db = server.fresh_database().await;
    let ca = format!("ssl-ca={}", path(&server.ca()));

    // The certificate holds `localhost`.
    let sink = connect(&server.url_at("localhost", &db, &format!("ssl-mode=verify_identity&{ca}")))
        .await
        .expect("verify_identity by the certificate's name");
    assert!(sink.transport().tls.is_some());
    sink.disconnect().await;

    let error = connect(&server.url(&db, &format!("ssl-mode=verify_identity&{ca}")))
        .await
        .expect_err("127.0.0.1 is not in the certificate");
    let text = error.to_string();
    assert!(
        text.contains(
            "ssl-mode=verify_identity: the server's certificate is not valid for `127.0.0.1` \
             (it holds localhost)"
        ) && text.contains("ssl-mode=verify_ca"),
        "{text}"
    );
    assert_eq!(error.class(), ErrorClass::Fatal);

    // verify_ca: signed by the CA is enough, whatever the host; `ssl-ca` alone means it.
    for params in [format!("ssl-mode=verify_ca&{ca}"), ca.clone()] {
        let sink = connect(&server.url(&db, &params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        assert_eq!(sink.transport().mode, SslMode::VerifyCa);
        assert!(sink.transport().tls.is_some());
        sink.describe(&[db.clone(), "nothing".to_owned()])
            .await
            .expect("pooled connections verify the same way");
        sink.disconnect().await;
    }

    // Another CA signed nothing here; without `ssl-ca`, the built-in roots did not either.
    let other = format!("ssl-mode=verify_ca&ssl-ca={}", path(&server.other_ca()));
    for params in [other, "ssl-mode=verify_identity".to_owned()] {
        let error = connect(&server.url_at("localhost", &db, &params))
            .await
            .expect_err("not signed by a trusted CA");
        let text = error.to_string();
        assert!(
            text.contains("TLS failed") && text.contains("a CA other than `ssl-ca`"),
            "{params}: {text}"
        );
        assert_eq!(error.class(), ErrorClass::Fatal);
    }
}

#[tokio::test]
async fn a_client_certificate_is_presented_and_missing_files_are_named() {
    let server = TestServer::shared(ServerKind::Tls).await;
    let db = server.fresh_database().await;
    let (cert, key) = server.client_identity();
    let mut admin = server.admin().await;
    // An account that must present a certificate signed by the server's CA.
    admin
        .query_drop(format!(
            "CREATE USER 'x509'@'%' REQUIRE X509; GRANT ALL ON `{db}`.* TO 'x509'@'%'"
        ))
        .await
        .expect("creates the account");
    let url = |params: &str| server.url(&db, params).replacen("root@", "x509@", 1);
    let identity = format!("ssl-cert={}&ssl-key={}", path(&cert), path(&key));
    let sink = connect(&url(&format!("ssl-mode=required&{identity}")))
        .await
        .expect("the client certificate is accepted");
    assert!(sink.transport().tls.is_some());
    sink.disconnect().await;
    let error = connect(&url("ssl-mode=required"))
        .await
        .expect_err("no client certificate");
    assert!(error.to_string().contains("denied"), "{error}");

    for (cert, key, missing) in [
        (
            "/nonexistent/c.pem".to_owned(),
            path(&key),
            "`ssl-cert` file `/nonexistent/c.pem`",
        ),
        (
            path(&cert),
            "/nonexistent/k.pem".to_owned(),
            "`ssl-key` file `***`",
        ),
    ] {
        let error = connect(&url(&format!(
            "ssl-mode=required&ssl-cert={cert}&ssl-key={key}"
        )))
        .await
        .expect_err("no such file");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("MySQL TLS settings: cannot read the {missing}: ")),
            "{text}"
        );
        assert_eq!(error.class(), ErrorClass::Fatal);
    }

    let pkcs8 = path(&server.pkcs8_key());
    let error = connect(&url(&format!(
        "ssl-mode=required&ssl-cert={}&ssl-key={pkcs8}",
        path(&cert)
    )))
    .await
    .expect_err("a PKCS#8 key");
    let text = error.to_string();
    assert!(
        text.contains("the `ssl-key` file `***` holds a PKCS#8 key")
            && !text.contains(&pkcs8)
            && text.contains("openssl rsa -in KEY -traditional"),
        "{text}"
    );
}

/// A Jushuitan refunds spec into `table`; `head` is an optional custom statement head.
fn refunds_spec(table: &str, head: &str, initial: &str) -> String {
    format!(
        r#"sync "jst refunds -> {table}"

source jushuitan "/open/refund/single/query" {{
    connection jst
    window max 12h lag 0s overlap 5m initial "{initial}"
    param modified_begin = "{{{{ window.start | datetime }}}}"
    param modified_end = "{{{{ window.end | datetime }}}}"
    @paginate page_index size 50
    @rate 500/s
    records data.datas
    id as_id
    modified modified
}}

@flatten items

target mysql "{table}" {{
    connection bi
    mode replace
    key id
    create
    {head}
}}

map {{
    id = "<as_id>-<items_asi_id>"
    as_id = as_id : bigint
    items_qty = items_qty : int
    shop_name = shop_name : string(64)
}}
"#
    )
}

/// Runs the real binary in `dir`; returns stdout and stderr, asserting exit status 0.
fn qsync(dir: &Path, args: &[&str]) -> (String, String) {
    let output = std::process::Command::new(crate::support::BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("qsync runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "qsync {args:?}: {}\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_runs_over_tls_by_load_data_and_by_statements() {
    let server = TestServer::shared(ServerKind::Tls).await;
    let db = server.fresh_database().await;
    let sim = qsync::sim::start(
        qsync::sim::SimConfig {
            seed: 19,
            records: 300,
            span_days: 2,
            ..qsync::sim::SimConfig::default()
        },
        "127.0.0.1:0".parse().expect("literal address"),
    )
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let c = qsync::sim::SimCredentials::default();
    let url = server.url_at(
        "localhost",
        &db,
        &format!("ssl-mode=verify_identity&ssl-ca={}", path(&server.ca())),
    );
    std::fs::write(
        dir.path().join("qsync.yaml"),
        format!(
            "connections:\n  jst:\n    kind: jushuitan\n    base_url: {}\n    app_key: {}\n    \
             app_secret: {}\n    access_token: {}\n  bi:\n    kind: mysql\n    url: \"{url}\"\n",
            sim.base_url(qsync::plan::ConnectorKind::Jushuitan),
            c.app_key,
            c.app_secret,
            c.jst_access_token,
        ),
    )
    .expect("profile written");
    let initial = (chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai)
        - chrono::Duration::days(3))
    .format("%Y-%m-%d %H:%M:%S")
    .to_string();
    std::fs::write(
        dir.path().join("loaded.qsync"),
        refunds_spec("loaded", "", &initial),
    )
    .expect("spec written");
    std::fs::write(
        dir.path().join("statements.qsync"),
        refunds_spec(
            "statements",
            r#"sql """REPLACE INTO {{ table }} ({{ columns }}) VALUES""""#,
            &initial,
        ),
    )
    .expect("spec written");

    let expected: std::collections::BTreeSet<String> = sim
        .truth(qsync::sim::Dataset::JstRefunds)
        .iter()
        .flat_map(|record| {
            let as_id = record["as_id"].clone();
            record["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |item| format!("{as_id}-{}", item["asi_id"]))
        })
        .collect();
    assert!(expected.len() > 300, "{}", expected.len());
    let mut admin = server.admin().await;
    for (spec, counter) in [("loaded", "Com_load"), ("statements", "Com_replace")] {
        let before = server.status(counter).await;
        qsync(dir.path(), &["run", &format!("{spec}.qsync")]);
        assert!(
            server.status(counter).await > before,
            "{spec} wrote by {counter}"
        );
        let keys: Vec<String> = admin
            .query(format!("SELECT id FROM `{db}`.`{spec}`"))
            .await
            .expect("reads the table");
        let keys: std::collections::BTreeSet<String> = keys.into_iter().collect();
        assert_eq!(keys, expected, "{spec}");
    }
    let _ = admin.disconnect().await;

    // What `qsync state` and `check --db` say about the connection.
    let (state, _) = qsync(dir.path(), &["state", "loaded.qsync"]);
    let line = state
        .lines()
        .find(|line| line.starts_with("database "))
        .unwrap_or_else(|| panic!("no database line:\n{state}"));
    assert!(
        line.contains(&format!("localhost:{}/{db}, encrypted (TLSv1.", port(&url)))
            && line.ends_with("; ssl-mode=verify_identity)"),
        "{line}"
    );
    let (_, check) = qsync(dir.path(), &["check", "--db", "loaded.qsync"]);
    assert!(
        check.contains(&format!(
            "loaded.qsync: MySQL at localhost:{}/{db}: encrypted (TLSv1.",
            port(&url)
        )),
        "{check}"
    );
    let (json, _) = qsync(
        dir.path(),
        &["check", "--db", "--format", "json", "loaded.qsync"],
    );
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    let connection = &json["files"][0]["connection"];
    assert_eq!(connection["encrypted"], true, "{json}");
    assert_eq!(connection["ssl_mode"], "verify_identity", "{json}");
    sim.shutdown().await;
}

fn port(url: &str) -> u16 {
    url::Url::parse(url).expect("url").port().expect("port")
}

#[test]
fn a_missing_key_file_is_masked_in_what_qsync_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("qsync.yaml"),
        "connections:\n  jst:\n    kind: jushuitan\n    base_url: http://127.0.0.1:1\n    \
         app_key: k\n    app_secret: app-s3cret\n    access_token: t0ken-1\n  bi:\n    kind: mysql\n    \
         url: \"mysql://root@127.0.0.1:1/bi?ssl-mode=required&ssl-cert=/srv/keys/c.pem&\
         ssl-key=/srv/keys/hidden-k.pem\"\n",
    )
    .expect("profile written");
    std::fs::write(
        dir.path().join("t.qsync"),
        refunds_spec("t", "", "2024-01-01 00:00:00"),
    )
    .expect("spec written");
    for args in [&["state", "t.qsync"][..], &["check", "--db", "t.qsync"][..]] {
        let output = std::process::Command::new(crate::support::BIN)
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("qsync runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("MySQL TLS settings: cannot read the `ssl-key` file `***`"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("hidden-k"), "{args:?}: {stderr}");
    }
}
