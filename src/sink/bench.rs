//! The write benchmark: qsync's [`WindowWriter`](super::WindowWriter) side by side with the baselines it must
//! match, on the same server, table and rows in one run.
//!
//! Baselines: `LOAD DATA LOCAL INFILE` of pre-encoded text on one and on two connections,
//! and 1000-row multi-row statements on one connection (what a good client library does).
//! Scenarios: insert into an empty table, then replace and upsert into a full one. The
//! table is the ~30-column Jushuitan after-sales table of [`crate::transform::bench`].
//! Run it with `cargo bench --bench write` (`QSYNC_BENCH_ROWS` for a smaller run) or from
//! a `qsync bench` command.
//!
//! One file of ~700 lines on purpose: each scenario and its baselines sit side by side, so a
//! reader can see they write the same rows to the same table the same way.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params};

use super::mysql::{encode_row, load_data_sql, statement_head, statement_tail, to_sql_value};
use super::{create_table_sql, statement_sql, MysqlSink, SinkError, TableSpec, WriterOptions};
use crate::plan::{TargetPlan, WriteMode};
use crate::transform::{bench as samples, Cell, Transformer};

/// One measured scenario.
#[derive(Debug, Clone)]
pub struct BenchLine {
    pub name: String,
    pub rows: usize,
    pub elapsed: Duration,
    /// CPU time this process and the children it waited for (the `mariadb` clients) spent
    /// meanwhile, user + system: what the client takes from the cores the server shares
    /// with it. `None` where `/proc` is missing.
    pub client_cpu: Option<Duration>,
}

impl BenchLine {
    /// Rows per second.
    pub fn rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "a rate for humans")]
        let rows = self.rows as f64;
        rows / self.elapsed.as_secs_f64()
    }
}

impl std::fmt::Display for BenchLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<44} {:>9} rows {:>8.2}s {:>10.0} rows/s",
            self.name,
            self.rows,
            self.elapsed.as_secs_f64(),
            self.rate()
        )?;
        match self.client_cpu {
            Some(cpu) => write!(f, " {:>6.2}s client CPU", cpu.as_secs_f64()),
            None => Ok(()),
        }
    }
}

/// A run's wall time and this process's CPU time over the same span.
#[derive(Debug, Clone, Copy)]
struct Measured {
    elapsed: Duration,
    client_cpu: Option<Duration>,
}

/// Wall and CPU clocks started together; [`Clocks::stop`] reads both.
struct Clocks {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Clocks {
    fn start() -> Clocks {
        Clocks {
            wall: Instant::now(),
            cpu: process_cpu(),
        }
    }

    fn stop(&self) -> Measured {
        let elapsed = self.wall.elapsed();
        let client_cpu = match (self.cpu, process_cpu()) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        Measured {
            elapsed,
            client_cpu,
        }
    }
}

/// User + system CPU time of this process and its waited-for children so far, from
/// `/proc/self/stat` (clock ticks, 100 a second on Linux: 10 ms resolution, plenty for
/// runs of seconds).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    Some(Duration::from_millis(cpu_ticks(&stat)? * 10))
}

/// utime + stime + cutime + cstime (fields 14 to 17) of a `/proc/<pid>/stat` line.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name, field 2, is in parentheses and may hold spaces and parentheses:
    // the fields after its last `)` start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let mut ticks = 0;
    let mut fields = 0;
    for field in rest.split_whitespace().skip(11).take(4) {
        ticks += field.parse::<u64>().ok()?;
        fields += 1;
    }
    (fields == 4).then_some(ticks)
}

fn table(mode: WriteMode) -> Result<TableSpec, SinkError> {
    let target = TargetPlan {
        connection: "bench".into(),
        table: vec!["after_sales".into()],
        mode,
        key: vec!["id".into()],
        batch: 1000,
        create: true,
        sql: None,
    };
    TableSpec::new(&target, &samples::sample_columns())
}

/// `rows` rows of the sample table, made by the real transformer.
///
/// # Panics
/// When the sample spec does not compile or a sample record is rejected: both are bugs.
pub fn sample_rows(rows: usize) -> Vec<Vec<Cell>> {
    let transformer = Transformer::new(
        &samples::sample_steps(),
        &samples::sample_columns(),
        samples::sample_clock(),
    )
    .expect("the sample spec compiles");
    let mut out = Vec::with_capacity(rows + samples::ITEMS_PER_RECORD);
    let mut n = 0;
    while out.len() < rows {
        transformer
            .rows(&samples::sample_record(n), &mut out)
            .expect("sample records convert");
        n += 1;
    }
    out.truncate(rows);
    out
}

async fn reset(sink: &MysqlSink, spec: &TableSpec) -> Result<(), SinkError> {
    let mut conn = sink.connection().await?;
    conn.query_drop("DROP TABLE IF EXISTS `after_sales`")
        .await
        .map_err(|e| sink.query_error("after_sales", &e))?;
    conn.query_drop(create_table_sql(spec, super::BINARY_KEY_COLLATION))
        .await
        .map_err(|e| sink.query_error("after_sales", &e))
}

async fn load(sink: &MysqlSink, sql: &str, text: Bytes) -> Result<(), SinkError> {
    let mut conn: Conn = sink.dedicated_connection().await?;
    conn.set_infile_handler(async move {
        let pieces: Vec<std::io::Result<Bytes>> = (0..text.len())
            .step_by(1 << 20)
            .map(|start| Ok(text.slice(start..text.len().min(start + (1 << 20)))))
            .collect();
        Ok(futures::stream::iter(pieces).boxed())
    });
    conn.query_drop(sql)
        .await
        .map_err(|e| sink.query_error("after_sales", &e))
}

/// `LOAD DATA` of pre-encoded text split over `connections` connections.
async fn load_data(
    sink: &MysqlSink,
    spec: &TableSpec,
    parts: &[Bytes],
) -> Result<Option<Measured>, SinkError> {
    let sql = load_data_sql(spec).unwrap_or_default();
    let loads = parts.iter().map(|part| load(sink, &sql, part.clone()));
    futures::future::try_join_all(loads).await?;
    Ok(None)
}

fn encode_parts(rows: &[Vec<Cell>], parts: usize) -> Vec<Bytes> {
    let per = rows.len().div_ceil(parts).max(1);
    rows.chunks(per)
        .map(|chunk| {
            let mut text = Vec::with_capacity(chunk.len() * 300);
            for row in chunk {
                encode_row(row, &mut text);
            }
            Bytes::from(text)
        })
        .collect()
}

/// 1000-row prepared statements, autocommitted, the rows split over `connections`
/// connections (disjoint halves, so no two connections touch one key).
async fn multi_row(
    sink: &MysqlSink,
    spec: &TableSpec,
    rows: &[Vec<Cell>],
    connections: usize,
) -> Result<Option<Measured>, SinkError> {
    let per = rows.len().div_ceil(connections.max(1)).max(1);
    let parts = rows.chunks(per).map(|part| async move {
        let mut conn = sink.dedicated_connection().await?;
        for chunk in part.chunks(1000) {
            let sql = statement_sql(spec, chunk.len())?;
            let params: Vec<_> = chunk.iter().flatten().map(to_sql_value).collect();
            conn.exec_drop(sql, Params::Positional(params))
                .await
                .map_err(|e| sink.query_error("after_sales", &e))?;
        }
        Ok::<(), SinkError>(())
    });
    futures::future::try_join_all(parts).await?;
    Ok(None)
}

/// A cell as a SQL literal, escaped the way `mysqldump` writes strings.
fn push_literal(cell: &Cell, out: &mut String) {
    use std::fmt::Write as _;
    match cell {
        Cell::Null => out.push_str("NULL"),
        Cell::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Cell::Double(x) => {
            let _ = write!(out, "{x}");
        }
        Cell::Decimal(d) => out.push_str(d),
        Cell::Bool(b) => out.push(if *b { '1' } else { '0' }),
        Cell::Text(text) | Cell::Json(text) => {
            out.push('\'');
            for ch in text.chars() {
                match ch {
                    '\'' => out.push_str("\\'"),
                    '\\' => out.push_str("\\\\"),
                    '\0' => out.push_str("\\0"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    other => out.push(other),
                }
            }
            out.push('\'');
        }
        Cell::Date(d) => {
            let _ = write!(out, "'{}'", d.format("%Y-%m-%d"));
        }
        Cell::DateTime(t) => {
            let _ = write!(out, "'{}'", t.format("%Y-%m-%d %H:%M:%S"));
        }
    }
}

/// SQL scripts of 1000-row statements of `spec`'s mode, the rows split over `parts`.
fn client_scripts(
    spec: &TableSpec,
    rows: &[Vec<Cell>],
    parts: usize,
) -> Result<Vec<String>, SinkError> {
    let head = statement_head(spec)?;
    let tail = statement_tail(spec);
    let per = rows.len().div_ceil(parts.max(1)).max(1);
    Ok(rows
        .chunks(per)
        .map(|part| {
            let mut script = String::with_capacity(part.len() * 400);
            for chunk in part.chunks(1000) {
                script.push_str(&head);
                for (i, row) in chunk.iter().enumerate() {
                    script.push_str(if i == 0 { " (" } else { ", (" });
                    for (j, cell) in row.iter().enumerate() {
                        if j > 0 {
                            script.push_str(", ");
                        }
                        push_literal(cell, &mut script);
                    }
                    script.push(')');
                }
                script.push_str(&tail);
                script.push_str(";\n");
            }
            script
        })
        .collect())
}

/// A failure of the `mariadb` client baseline (not of qsync's writer).
fn client_failure(host: &str, message: String) -> SinkError {
    SinkError::Query {
        table: "after_sales".into(),
        host: host.to_owned(),
        code: 0,
        message: format!("mariadb client baseline: {message}"),
        class: super::ErrorClass::Fatal,
    }
}

/// The `mariadb` command-line client running `scripts` at once, one process each, against
/// the database of `url`; `None` when the client is not installed.
fn mariadb_client(url: &str, scripts: &[String]) -> Result<Option<Measured>, SinkError> {
    let parsed = url::Url::parse(url).map_err(|e| SinkError::Url {
        reason: e.to_string(),
    })?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let failed = |e: std::io::Error| client_failure(&host, e.to_string());
    let dir = std::env::temp_dir().join(format!("qsync-write-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let mut files = Vec::new();
    for (i, script) in scripts.iter().enumerate() {
        let path = dir.join(format!("part{i}.sql"));
        std::fs::write(&path, script).map_err(failed)?;
        files.push(path);
    }
    let result = run_clients(&parsed, &host, &files);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_clients(
    parsed: &url::Url,
    host: &str,
    files: &[std::path::PathBuf],
) -> Result<Option<Measured>, SinkError> {
    let mut inputs = Vec::new();
    for file in files {
        inputs.push(std::fs::File::open(file).map_err(|e| client_failure(host, e.to_string()))?);
    }
    let clocks = Clocks::start();
    let mut children = Vec::new();
    for input in inputs {
        let mut command = std::process::Command::new("mariadb");
        command
            .arg(format!("--host={host}"))
            .arg(format!("--port={}", parsed.port().unwrap_or(3306)))
            .arg(format!("--user={}", parsed.username()))
            .arg(parsed.path().trim_start_matches('/'))
            .stdin(input)
            .stdout(std::process::Stdio::null());
        if let Some(password) = parsed.password() {
            command.arg(format!("--password={password}"));
        }
        match command.spawn() {
            Ok(child) => children.push(child),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(client_failure(host, format!("cannot run it: {e}"))),
        }
    }
    for mut child in children {
        let status = child
            .wait()
            .map_err(|e| client_failure(host, e.to_string()))?;
        if !status.success() {
            return Err(client_failure(host, format!("exited with {status}")));
        }
    }
    Ok(Some(clocks.stop()))
}

/// The qsync writer: batches of 1000 through `write_batch`, one commit at the end.
async fn qsync(
    sink: &MysqlSink,
    spec: &TableSpec,
    rows: &[Vec<Cell>],
    connections: usize,
) -> Result<Option<Measured>, SinkError> {
    let options = WriterOptions {
        connections,
        ..WriterOptions::default()
    };
    // Batches are owned like the transformer's output; building them is not timed.
    let batches: Vec<Vec<Vec<Cell>>> = rows.chunks(1000).map(<[_]>::to_vec).collect();
    let clocks = Clocks::start();
    let mut writer = sink.window(spec, options).await?;
    for batch in batches {
        writer.write_batch(batch).await?;
    }
    writer.commit(Vec::new()).await?;
    Ok(Some(clocks.stop()))
}

/// Times `run`; a run that returns its own duration (it excludes its setup) wins.
async fn measure<F: std::future::Future<Output = Result<Option<Measured>, SinkError>>>(
    name: &str,
    rows: usize,
    run: F,
) -> Result<BenchLine, SinkError> {
    let clocks = Clocks::start();
    let own = run.await?;
    let measured = own.unwrap_or_else(|| clocks.stop());
    let line = BenchLine {
        name: name.to_owned(),
        rows,
        elapsed: measured.elapsed,
        client_cpu: measured.client_cpu,
    };
    println!("{line}");
    Ok(line)
}

/// Prints and keeps the scenarios of one run.
struct Report {
    rows: usize,
    lines: Vec<BenchLine>,
}

impl Report {
    async fn add<F>(&mut self, name: &str, run: F) -> Result<(), SinkError>
    where
        F: std::future::Future<Output = Result<Option<Measured>, SinkError>>,
    {
        self.lines.push(measure(name, self.rows, run).await?);
        Ok(())
    }

    /// The `mariadb` client with `scripts`; a missing client is reported, not measured.
    fn client(&mut self, name: &str, url: &str, scripts: &[String]) -> Result<(), SinkError> {
        match mariadb_client(url, scripts)? {
            Some(measured) => {
                let line = BenchLine {
                    name: name.to_owned(),
                    rows: self.rows,
                    elapsed: measured.elapsed,
                    client_cpu: measured.client_cpu,
                };
                println!("{line}");
                self.lines.push(line);
            }
            None => println!("{name:<44} skipped: no `mariadb` client on the PATH"),
        }
        Ok(())
    }
}

/// The statement baselines of `spec`'s mode (`verb` names it): the `mariadb` client, then
/// prepared statements, each on 1 and 2 connections. With `fresh`, each starts from an
/// empty table; otherwise each writes over the table the previous one left full.
async fn statement_baselines(
    report: &mut Report,
    sink: &MysqlSink,
    url: &str,
    spec: &TableSpec,
    data: &[Vec<Cell>],
    verb: &str,
    fresh: bool,
) -> Result<(), SinkError> {
    for parts in [1, 2] {
        if fresh {
            reset(sink, spec).await?;
        }
        let scripts = client_scripts(spec, data, parts)?;
        report.client(
            &format!("mariadb client, {verb} x1000, {parts} conn"),
            url,
            &scripts,
        )?;
    }
    for connections in [1, 2] {
        if fresh {
            reset(sink, spec).await?;
        }
        report
            .add(
                &format!("prepared {verb} x1000, {connections} conn"),
                multi_row(sink, spec, data, connections),
            )
            .await?;
    }
    Ok(())
}

/// Runs the scenarios of `sections` (`insert`, `replace`, `upsert`; empty: all) against the
/// database of `url` (its `after_sales` table is dropped and recreated) with `rows` rows;
/// prints each line as it completes and returns them. Then `pairs` alternates 2-connection LOAD DATA and 2-connection qsync insert `pairs` times
/// and prints the median ratio: on a shared machine single runs drift by more than the
/// margin the insert target asks about.
///
/// Replace and upsert scenarios run against the table left full by the previous one, so
/// every row replaces an existing row of the same key.
pub async fn run(
    url: &str,
    rows: usize,
    sections: &[&str],
    pairs: usize,
) -> Result<Vec<BenchLine>, SinkError> {
    let wanted = |section: &str| sections.is_empty() || sections.contains(&section);
    let sink = MysqlSink::connect(url).await?;
    let data = sample_rows(rows);
    // The LOAD DATA baselines get their text for free; what it costs qsync, on one core:
    let started = Instant::now();
    let one = encode_parts(&data, 1);
    println!(
        "(encoding {} rows as LOAD DATA text: {:.2}s on one core, untimed in the baselines)",
        data.len(),
        started.elapsed().as_secs_f64()
    );
    let two = encode_parts(&data, 2);
    let insert = table(WriteMode::Insert)?;
    let mut report = Report {
        rows: data.len(),
        lines: Vec::new(),
    };

    if wanted("insert") {
        insert_section(&mut report, &sink, url, &data, &one, &two).await?;
    } else if wanted("replace") || wanted("upsert") {
        // They write over a full table: fill it, untimed.
        reset(&sink, &insert).await?;
        load_data(&sink, &insert, &two).await?;
    }
    if wanted("replace") {
        replace_section(&mut report, &sink, url, &data, &one, &two).await?;
    }
    if wanted("upsert") {
        upsert_section(&mut report, &sink, url, &data).await?;
    }
    if pairs > 0 {
        insert_pairs(&mut report, &sink, &data, &two, pairs).await?;
    }
    sink.disconnect().await;
    if sections.contains(&"tls") {
        tls_section(&mut report, &data, &two, pairs.max(1)).await?;
    }
    Ok(report.lines)
}

/// Insert over each transport, alternated `pairs` times: LOAD DATA and qsync on 2
/// connections, by the Unix socket (what a local server gets by default), by TCP, and by
/// TCP with TLS. One server of the bench's own (`ServerKind::TlsOffered`: certificates,
/// TLS offered, not required) takes all three, so the transport is the only difference.
/// Prints the median ratio of TLS to plain TCP for each writer.
async fn tls_section(
    report: &mut Report,
    data: &[Vec<Cell>],
    two: &[Bytes],
    pairs: usize,
) -> Result<(), SinkError> {
    use super::testing::{ServerKind, TestServer};
    let server = TestServer::shared(ServerKind::TlsOffered).await;
    let db = server.fresh_database().await;
    println!("-- insert by transport, 2 connections, alternated (a server of the bench's own)");
    let mut sinks = Vec::new();
    for (name, params) in [
        ("socket", "ssl-mode=disabled"),
        ("TCP", "ssl-mode=disabled&prefer_socket=false"),
        ("TCP+TLS", "ssl-mode=required"),
    ] {
        let sink = MysqlSink::connect(&server.url(&db, params)).await?;
        println!("{name}: {}", sink.transport());
        sinks.push((name, sink));
    }
    let insert = table(WriteMode::Insert)?;
    let mut ratios: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for pair in 1..=pairs {
        for (writer, ratios) in ["LOAD DATA", "qsync insert"].into_iter().zip(&mut ratios) {
            let mut rates = Vec::new();
            for (name, sink) in &sinks {
                reset(sink, &insert).await?;
                let line = format!("{writer}, {name} (pair {pair})");
                if writer == "LOAD DATA" {
                    report.add(&line, load_data(sink, &insert, two)).await?;
                } else {
                    report.add(&line, qsync(sink, &insert, data, 2)).await?;
                }
                rates.push(report.lines.last().map_or(0.0, BenchLine::rate));
            }
            ratios.push(rates[2] / rates[1]);
        }
    }
    for (writer, mut ratios) in ["LOAD DATA", "qsync insert"].into_iter().zip(ratios) {
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "{writer}, TLS / plain TCP: median {:.2} over {pairs} pairs ({})",
            ratios[ratios.len() / 2],
            shown.join(", ")
        );
    }
    for (_, sink) in sinks {
        sink.disconnect().await;
    }
    Ok(())
}

/// 2-connection LOAD DATA and 2-connection qsync insert, alternated `pairs` times into an
/// empty table; prints each pair's ratio and the median.
async fn insert_pairs(
    report: &mut Report,
    sink: &MysqlSink,
    data: &[Vec<Cell>],
    two: &[Bytes],
    pairs: usize,
) -> Result<(), SinkError> {
    let insert = table(WriteMode::Insert)?;
    println!("-- insert pairs: LOAD DATA and qsync, 2 connections each, alternated");
    let mut ratios = Vec::with_capacity(pairs);
    for pair in 1..=pairs {
        reset(sink, &insert).await?;
        report
            .add(
                &format!("LOAD DATA, 2 connections (pair {pair})"),
                load_data(sink, &insert, two),
            )
            .await?;
        reset(sink, &insert).await?;
        report
            .add(
                &format!("qsync insert, 2 connections (pair {pair})"),
                qsync(sink, &insert, data, 2),
            )
            .await?;
        let n = report.lines.len();
        ratios.push(report.lines[n - 1].rate() / report.lines[n - 2].rate());
    }
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "qsync insert / LOAD DATA, 2 connections: median {:.2} over {pairs} pairs ({})",
        ratios[ratios.len() / 2],
        shown.join(", ")
    );
    Ok(())
}

async fn insert_section(
    report: &mut Report,
    sink: &MysqlSink,
    url: &str,
    data: &[Vec<Cell>],
    one: &[Bytes],
    two: &[Bytes],
) -> Result<(), SinkError> {
    let (insert, replace) = (table(WriteMode::Insert)?, table(WriteMode::Replace)?);
    println!("-- insert into an empty table");
    reset(sink, &insert).await?;
    report
        .add("LOAD DATA, 1 connection", load_data(sink, &insert, one))
        .await?;
    reset(sink, &insert).await?;
    report
        .add("LOAD DATA, 2 connections", load_data(sink, &insert, two))
        .await?;
    statement_baselines(report, sink, url, &insert, data, "INSERT", true).await?;
    qsync_lines(report, sink, &insert, data, "insert", true).await?;
    reset(sink, &replace).await?;
    report
        .add(
            "qsync replace, empty table, 2 connections",
            qsync(sink, &replace, data, 2),
        )
        .await
}

async fn replace_section(
    report: &mut Report,
    sink: &MysqlSink,
    url: &str,
    data: &[Vec<Cell>],
    one: &[Bytes],
    two: &[Bytes],
) -> Result<(), SinkError> {
    let replace = table(WriteMode::Replace)?;
    println!("-- replace into a full table");
    report
        .add(
            "LOAD DATA REPLACE, 1 connection",
            load_data(sink, &replace, one),
        )
        .await?;
    report
        .add(
            "LOAD DATA REPLACE, 2 connections",
            load_data(sink, &replace, two),
        )
        .await?;
    statement_baselines(report, sink, url, &replace, data, "REPLACE", false).await?;
    qsync_lines(report, sink, &replace, data, "replace", false).await
}

async fn upsert_section(
    report: &mut Report,
    sink: &MysqlSink,
    url: &str,
    data: &[Vec<Cell>],
) -> Result<(), SinkError> {
    let upsert = table(WriteMode::Upsert)?;
    println!("-- upsert into a full table");
    statement_baselines(report, sink, url, &upsert, data, "upsert", false).await?;
    qsync_lines(report, sink, &upsert, data, "upsert", false).await
}

/// qsync's writer in `spec`'s mode (`verb` names it) on 1 and 2 connections. With `fresh`,
/// each starts from an empty table; otherwise each writes over the table left full.
async fn qsync_lines(
    report: &mut Report,
    sink: &MysqlSink,
    spec: &TableSpec,
    data: &[Vec<Cell>],
    verb: &str,
    fresh: bool,
) -> Result<(), SinkError> {
    for connections in [1, 2] {
        if fresh {
            reset(sink, spec).await?;
        }
        report
            .add(
                &format!("qsync {verb}, {connections} connection(s)"),
                qsync(sink, spec, data, connections),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cpu_ticks;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (write (a) b) S 1 4242 4242 0 -1 4194304 100 0 0 0 \
                    150 25 7 3 20 0 9 0 100 1000 200";
        assert_eq!(cpu_ticks(stat), Some(150 + 25 + 7 + 3));
        assert_eq!(cpu_ticks("4242 (w) S 1 2"), None, "too few fields");
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }
}
