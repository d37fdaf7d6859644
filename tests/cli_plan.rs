//! `qsync plan` on every example spec with its sample, snapshot-tested, and plan errors.

use crate::support::{repo, Test};

const SPECS: &[&str] = &[
    "jst-refunds",
    "jikeyun-warehouses",
    "wdt-refunds",
    "jst-orders",
    "yida-receipts",
    "http-orders",
];

#[test]
fn example_plans() {
    for spec in SPECS {
        let out = Test::new()
            .args(&[
                "plan",
                &format!("specs/{spec}.qsync"),
                "--at",
                "2024-03-10 12:00:00",
            ])
            .current_dir(&repo())
            .run();
        assert!(
            out.stdout.contains("rows from the sample"),
            "{spec}: no rows\n{}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("sim-secret"),
            "{spec}: secret leaked\n{}",
            out.stdout
        );
        insta::assert_snapshot!(format!("plan_{spec}"), out.stdout);
    }
}

#[test]
fn plan_is_deterministic() {
    let run = || {
        Test::new()
            .args(&[
                "plan",
                "specs/wdt-refunds.qsync",
                "--at",
                "2024-03-10 12:00:00",
            ])
            .current_dir(&repo())
            .run()
            .stdout
    };
    assert_eq!(run(), run());
}

#[test]
fn plan_from_a_stated_last_sync_and_remedy() {
    let out = Test::new()
        .args(&[
            "plan",
            "specs/jst-refunds.qsync",
            "--at",
            "2024-03-10 12:00:00",
            "--last-sync",
            "2024-03-09 00:00:00",
        ])
        .current_dir(&repo())
        .run();
    assert!(
        out.stdout.contains("range 2024-03-08 23:55:00 .. 2024-03-10 11:59:00 (from last sync 2024-03-09 00:00:00 minus overlap): 1 window(s)"),
        "{}",
        out.stdout
    );
    let out = Test::new()
        .args(&[
            "plan",
            "specs/jst-refunds.qsync",
            "--at",
            "2024-03-10 12:00:00",
            "--remedy",
        ])
        .current_dir(&repo())
        .run();
    assert!(
        out.stdout
            .contains("range 2024-03-09 11:59:00 .. 2024-03-10 11:59:00 (from remedy lookback)"),
        "{}",
        out.stdout
    );
}

#[test]
fn plan_requires_env_variables_the_profile_uses() {
    let out = Test::new()
        .file(
            "qsync.yaml",
            "connections:\n  jst:\n    kind: jushuitan\n    base_url: http://127.0.0.1:9\n    app_key: a\n    app_secret: ${QSYNC_TEST_UNSET_SECRET}\n  bi:\n    kind: mysql\n    url: mysql://root@127.0.0.1/x\n",
        )
        .file("s.qsync", &std::fs::read_to_string(repo().join("tests/check/base.qsync")).unwrap())
        .args(&["plan", "s.qsync"])
        .status(1)
        .run();
    assert_eq!(
        out.stderr,
        "error: profile `qsync.yaml` uses environment variable `QSYNC_TEST_UNSET_SECRET`, which is not set\n"
    );
}

#[test]
fn secrets_from_the_environment_are_masked() {
    let out = Test::new()
        .file(
            "qsync.yaml",
            "connections:\n  jst:\n    kind: jushuitan\n    base_url: http://127.0.0.1:9\n    app_key: a\n    app_secret: ${QSYNC_TEST_SECRET}\n    access_token: tok-123456\n  bi:\n    kind: mysql\n    url: mysql://root:pw-98765@127.0.0.1/x\n",
        )
        .file("s.qsync", &std::fs::read_to_string(repo().join("tests/check/base.qsync")).unwrap())
        .env("QSYNC_TEST_SECRET", "s3cr3t-value")
        .args(&["plan", "s.qsync", "--at", "2024-03-10 12:00:00"])
        .run();
    assert!(out.stdout.contains("access_token=***"), "{}", out.stdout);
    for secret in ["s3cr3t-value", "tok-123456", "pw-98765"] {
        assert!(
            !out.stdout.contains(secret),
            "{secret} leaked:\n{}",
            out.stdout
        );
    }
}

#[test]
fn plan_of_a_broken_spec_shows_diagnostics() {
    let out = Test::new()
        .file(
            "bad.qsync",
            "sync \"x\"\nsource jushuitan \"/a\" { connection }\n",
        )
        .args(&["plan", "bad.qsync"])
        .status(1)
        .run();
    assert!(
        out.stderr.contains("qsync::syntax::unexpected"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_profile_is_a_clear_error() {
    let out = Test::new()
        .file("qsync.yaml", "connections:\n  jst: [1, 2]\n")
        .file(
            "s.qsync",
            &std::fs::read_to_string(repo().join("tests/check/base.qsync")).unwrap(),
        )
        .args(&["plan", "s.qsync"])
        .status(1)
        .run();
    assert!(
        out.stderr
            .starts_with("error: profile `qsync.yaml` is not valid:"),
        "{}",
        out.stderr
    );
}

/// A profile pointing every connection at a running simulator.
fn sim_profile(sim: &qsync::sim::SimHandle, secret: &str) -> String {
    std::fs::read_to_string(repo().join("specs/qsync.yaml"))
        .unwrap()
        .replace(
            "${QSYNC_SIM_URL:-http://127.0.0.1:8700}",
            &format!("http://{}", sim.addr()),
        )
        .replace("${JST_APP_SECRET:-sim-secret}", secret)
}

#[tokio::test]
async fn live_plan_fetches_the_first_page() {
    let sim = qsync::sim::start(
        qsync::sim::SimConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let since = (chrono::Utc::now() - chrono::Duration::days(6))
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let spec = std::fs::read_to_string(repo().join("specs/jst-orders.qsync")).unwrap();
    let profile = sim_profile(&sim, "sim-secret");
    let since2 = since.clone();
    let out = tokio::task::spawn_blocking(move || {
        Test::new()
            .file("qsync.yaml", &profile)
            .file("jst-orders.qsync", &spec)
            .args(&["plan", "jst-orders.qsync", "--live", "--since", &since2])
            .run()
    })
    .await
    .unwrap();
    assert!(
        out.stdout.contains("rows from the live first page ("),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("(0 record(s)"), "{}", out.stdout);

    // A wrong secret: the vendor's error code, exit 1, the secret masked.
    let spec = std::fs::read_to_string(repo().join("specs/jst-orders.qsync")).unwrap();
    let profile = sim_profile(&sim, "wrong-secret-123");
    let out = tokio::task::spawn_blocking(move || {
        Test::new()
            .file("qsync.yaml", &profile)
            .file("jst-orders.qsync", &spec)
            .args(&["plan", "jst-orders.qsync", "--live", "--since", &since])
            .status(1)
            .run()
    })
    .await
    .unwrap();
    assert!(
        out.stderr.starts_with("error: the live first page failed:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("10"), "{}", out.stderr);
    assert!(!out.stderr.contains("wrong-secret-123"), "{}", out.stderr);
    sim.shutdown().await;
}

#[tokio::test]
async fn plan_from_the_stored_mark_reads_without_writing() {
    let (url, _guard) = qsync::sink::testing::fresh_database().await;
    let profile = std::fs::read_to_string(repo().join("tests/check/qsync.yaml"))
        .unwrap()
        .replace("mysql://root@127.0.0.1:3306/corpus", &url);
    let spec = std::fs::read_to_string(repo().join("tests/check/base.qsync")).unwrap();
    let plan_stored = |profile: String, spec: String| {
        tokio::task::spawn_blocking(move || {
            Test::new()
                .file("qsync.yaml", &profile)
                .file("base.qsync", &spec)
                .args(&[
                    "plan",
                    "base.qsync",
                    "--stored",
                    "--at",
                    "2024-03-10 12:00:00",
                ])
                .run()
                .stdout
        })
    };
    // Nothing stored yet: the window's initial time, and no table is created.
    let out = plan_stored(profile.clone(), spec.clone()).await.unwrap();
    assert!(out.contains("(from the window's initial time)"), "{out}");
    let sink = qsync::sink::MysqlSink::connect(&url).await.unwrap();
    assert!(qsync::sink::StateStore::existing(&sink)
        .await
        .unwrap()
        .is_none());

    let store = qsync::sink::StateStore::open(&sink).await.unwrap();
    let mark =
        chrono::NaiveDateTime::parse_from_str("2024-03-09 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
    store.set_cursor("base", mark, "hash").await.unwrap();
    let out = plan_stored(profile, spec).await.unwrap();
    assert!(
        out.contains("(from last sync 2024-03-09 00:00:00 minus overlap)"),
        "{out}"
    );
    sink.disconnect().await;
}

#[test]
fn plan_shows_send_time_spacing_when_the_spec_asks_for_it() {
    let test = Test::new();
    let spec = std::fs::read_to_string(repo().join("specs/jst-refunds.qsync"))
        .expect("example spec")
        .replace("@rate 5/s 100/min", "@rate 5/s 100/min by send");
    std::fs::write(test.path().join("refunds.qsync"), spec).expect("spec written");
    std::fs::copy(
        repo().join("specs/qsync.yaml"),
        test.path().join("qsync.yaml"),
    )
    .expect("profile copied");
    let out = test
        .args(&["plan", "refunds.qsync", "--at", "2024-03-10 12:00:00"])
        .run();
    assert!(
        out.stdout
            .contains("rate 5/s and 100/min (spaced by send); 6 attempts per request"),
        "{}",
        out.stdout
    );
}
