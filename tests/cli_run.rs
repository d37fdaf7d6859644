//! `qsync run` as an operator sees it: progress on a piped stderr (one plain line per
//! window, no ANSI colour), and a run stopped by SIGTERM (exit 143, recorded as `stopped`
//! over the range it committed, a rerun completes to the simulator's truth). The real
//! binary, the simulator on loopback and a real MariaDB.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeZone as _, Utc};
use mysql_async::prelude::Queryable as _;
use qsync::plan::ConnectorKind;
use qsync::sim::{self, Dataset, Faults, SimConfig, SimCredentials, SimHandle};
use qsync::sink::testing::{fresh_database, DatabaseGuard};

use crate::support::{Test, BIN};

/// The simulator's records are modified in the three days before this instant (UTC), so
/// windows and their counts are the same on every run of the test.
const ANCHOR: (i32, u32, u32) = (2024, 3, 10);
const SINCE: &str = "2024-03-07 00:00:00";
/// Shanghai time, past the anchor (08:00 there): every record is in range.
const UNTIL: &str = "2024-03-10 12:00:00";

struct World {
    sim: SimHandle,
    url: String,
    _db: DatabaseGuard,
    dir: tempfile::TempDir,
}

impl World {
    async fn new(records: usize, faults: Faults, window_max: &str) -> World {
        let anchor = Utc
            .with_ymd_and_hms(ANCHOR.0, ANCHOR.1, ANCHOR.2, 0, 0, 0)
            .single()
            .expect("a valid anchor");
        let sim = sim::start(
            SimConfig {
                seed: 18,
                records,
                span_days: 3,
                anchor: Some(anchor),
                faults,
                ..SimConfig::default()
            },
            "127.0.0.1:0".parse().expect("literal address"),
        )
        .await
        .expect("simulator starts");
        let (url, db) = fresh_database().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let c = SimCredentials::default();
        let profile = format!(
            "timezone: Asia/Shanghai\nconnections:\n  jst:\n    kind: jushuitan\n    \
             base_url: {}\n    app_key: {}\n    app_secret: {}\n    access_token: {}\n  \
             bi:\n    kind: mysql\n    url: \"{url}\"\n",
            sim.base_url(ConnectorKind::Jushuitan),
            c.app_key,
            c.app_secret,
            c.jst_access_token,
        );
        std::fs::write(dir.path().join("qsync.yaml"), profile).expect("profile written");
        let spec = format!(
            r#"sync "refunds"

source jushuitan "/open/refund/single/query" {{
    connection jst
    window max {window_max} lag 0s overlap 0s initial "2024-01-01 00:00:00"
    param modified_begin = "{{{{ window.start | datetime }}}}"
    param modified_end = "{{{{ window.end | datetime }}}}"
    @paginate page_index size 50
    @rate 500/s
    @retry 5 backoff 10ms max 2s
    records data.datas
    id as_id
    modified modified
}}

@flatten items

target mysql "refunds" {{
    connection bi
    mode replace
    key id
    batch 500
    create
}}

map {{
    id = "<as_id>-<items_asi_id>"
    as_id = as_id : bigint
    qty = items_qty : int
}}
"#
        );
        std::fs::write(dir.path().join("refunds.qsync"), spec).expect("spec written");
        World {
            sim,
            url,
            _db: db,
            dir,
        }
    }

    /// Rows the truth flattens into.
    fn expected_rows(&self) -> u64 {
        self.sim
            .truth(Dataset::JstRefunds)
            .iter()
            .map(|r| r["items"].as_array().map_or(0, |i| i.len() as u64))
            .sum()
    }

    async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(&self.url)
            .await
            .expect("test MySQL")
    }
}

/// The rate and the ETA depend on the machine's speed: `[rate]` and `[eta]` instead.
fn redact(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| {
            let Some((head, _)) = line.split_once(" records/s, ETA ") else {
                return line.to_owned();
            };
            let head = head.rsplit_once(", ").map_or(head, |(h, _)| h);
            format!("{head}, [rate] records/s, ETA [eta]\n")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piped_run_prints_one_plain_line_per_window_and_no_colour() {
    let world = World::new(120, Faults::default(), "1d").await;
    let path = world.dir.path().to_path_buf();
    // `info` logs too: the log lines must be as free of colour codes as the progress.
    let (quiet, logged) = tokio::task::spawn_blocking(move || {
        let run = |level: &str| {
            Test::new()
                .current_dir(&path)
                .env("QSYNC_LOG", level)
                .args(&["run", "refunds.qsync", "--since", SINCE, "--until", UNTIL])
                .run()
        };
        let quiet = run("warn");
        // The second run rewrites the same rows (idempotent): same windows, same figures.
        let logged = run("info");
        (quiet, logged)
    })
    .await
    .expect("runs");
    for out in [&quiet, &logged] {
        assert!(
            !out.stderr.contains('\x1b') && !out.stdout.contains('\x1b'),
            "ANSI escape in the output:\n{}",
            out.stderr
        );
    }
    assert!(
        logged.stderr.contains(" INFO ") && logged.stderr.contains("window committed"),
        "{}",
        logged.stderr
    );
    let lines = logged
        .stderr
        .lines()
        .filter(|l| l.starts_with("refunds: window "))
        .count();
    assert_eq!(lines, 4, "{}", logged.stderr);
    insta::assert_snapshot!("piped_run_progress", redact(&quiet.stderr));
    assert_eq!(
        world
            .conn()
            .await
            .query_first::<u64, _>("SELECT COUNT(*) FROM refunds")
            .await
            .expect("count"),
        Some(world.expected_rows())
    );
}

/// A time as MySQL returns it, for comparing with the flags.
fn shown(t: Option<NaiveDateTime>) -> String {
    t.map_or_else(
        || "NULL".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// Slow answers: fourteen 6-hour windows take seconds, so a signal sent when the first
/// window's line appears finds the run mid-range.
async fn slow_world() -> World {
    World::new(
        300,
        Faults {
            latency: Duration::from_millis(400),
            ..Faults::default()
        },
        "6h",
    )
    .await
}

/// Runs `qsync run` over the range and sends `signal` (`-TERM`, `-INT`) once the first
/// window committed: the exit status, stderr and stdout.
async fn run_and_signal(
    world: &World,
    signal: &'static str,
) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(BIN)
        .args(["run", "refunds.qsync", "--since", SINCE, "--until", UNTIL])
        .current_dir(world.dir.path())
        .env_remove("QSYNC_PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qsync run starts");
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr");
    tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        for line in lines.by_ref() {
            let line = line.expect("utf-8");
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("refunds: window 1/14 ") {
                let sent = Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status()
                    .expect("kill runs");
                assert!(sent.success());
                break;
            }
        }
        for line in lines {
            seen.push_str(&line.expect("utf-8"));
            seen.push('\n');
        }
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout)
            .expect("stdout read");
        (child.wait().expect("exit"), seen, stdout)
    })
    .await
    .expect("the run ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_a_run_like_ctrl_c_with_exit_130() {
    let world = slow_world().await;
    let (status, stderr, stdout) = run_and_signal(&world, "-INT").await;
    assert_eq!(status.code(), Some(130), "{stderr}\n{stdout}");
    assert!(stderr.contains("stopped by SIGINT: "), "{stderr}");
    let outcome: Option<String> = world
        .conn()
        .await
        .query_first("SELECT outcome FROM _qsync_runs")
        .await
        .expect("run row");
    assert_eq!(outcome.as_deref(), Some("stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_run_after_its_window_and_the_history_says_so() {
    let world = slow_world().await;
    let (status, stderr, stdout) = run_and_signal(&world, "-TERM").await;
    assert_eq!(status.code(), Some(143), "{stderr}\n{stdout}");
    assert!(
        stderr.contains("SIGTERM: stopping after the current window commits")
            && stderr.contains("stopped by SIGTERM: spec `refunds`: stopped before the range"),
        "{stderr}"
    );

    let mut conn = world.conn().await;
    let mark: Option<NaiveDateTime> = conn
        .query_first("SELECT high_water FROM _qsync_state WHERE spec = 'refunds'")
        .await
        .expect("mark");
    let runs: Vec<(String, Option<NaiveDateTime>, Option<NaiveDateTime>)> = conn
        .query("SELECT outcome, range_start, range_end FROM _qsync_runs ORDER BY id")
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (outcome, start, end) = &runs[0];
    assert_eq!(outcome, "stopped");
    assert_eq!(shown(*start), SINCE);
    // The range is what was committed: up to the mark, short of `--until`.
    assert!(mark.is_some(), "no window committed:\n{stderr}");
    assert_eq!(shown(*end), shown(mark));
    assert!(shown(*end).as_str() < UNTIL, "{runs:?}");
    assert!(
        stdout.contains(&format!("range           {SINCE} .. {}", shown(mark))),
        "{stdout}"
    );
    let partial: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM refunds")
        .await
        .expect("count");
    assert!(partial < Some(world.expected_rows()), "{partial:?}");

    // `qsync state` shows the stopped run; a rerun from the mark completes to the truth.
    world.sim.set_faults(Faults::default());
    let path = world.dir.path().to_path_buf();
    let (state, rerun) = tokio::task::spawn_blocking(move || {
        let state = Test::new()
            .current_dir(&path)
            .args(&["state", "refunds.qsync"])
            .run();
        let rerun = Test::new()
            .current_dir(&path)
            .args(&["run", "refunds.qsync", "--until", UNTIL])
            .run();
        (state, rerun)
    })
    .await
    .expect("state and rerun");
    assert!(
        state
            .stdout
            .contains(&format!(" stopped  {SINCE} .. {}", shown(mark))),
        "{}",
        state.stdout
    );
    assert!(
        rerun.stdout.contains(&format!("high-water mark {UNTIL}")),
        "{}",
        rerun.stdout
    );
    let (rows, distinct): (u64, u64) = conn
        .query_first("SELECT COUNT(*), COUNT(DISTINCT id) FROM refunds")
        .await
        .expect("count")
        .expect("a row");
    assert_eq!(
        (rows, distinct),
        (world.expected_rows(), world.expected_rows())
    );
    let last: Option<String> = conn
        .query_first("SELECT outcome FROM _qsync_runs ORDER BY id DESC LIMIT 1")
        .await
        .expect("last run");
    assert_eq!(last.as_deref(), Some("success"));
    drop(conn);
}
