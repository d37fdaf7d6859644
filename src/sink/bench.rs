//! The write benchmark: qsync's [`WindowWriter`] side by side with the baselines it must
//! match, on the same server, table and rows in one run.
//!
//! Baselines: `LOAD DATA LOCAL INFILE` of pre-encoded text on one and on two connections,
//! and 1000-row multi-row statements on one connection (what a good client library does).
//! Scenarios: insert into an empty table, then replace and upsert into a full one. The
//! table is the ~30-column Jushuitan after-sales table of [`crate::transform::bench`].
//! Run it with `cargo bench --bench write` (`QSYNC_BENCH_ROWS` for a smaller run) or from
//! a `qsync bench` command.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params};

use super::mysql::{encode_row, load_data_sql, to_sql_value};
use super::{create_table_sql, statement_sql, MysqlSink, SinkError, TableSpec, WriterOptions};
use crate::plan::{TargetPlan, WriteMode};
use crate::transform::{bench as samples, Cell, Transformer};

/// One measured scenario.
#[derive(Debug, Clone)]
pub struct BenchLine {
    pub name: String,
    pub rows: usize,
    pub elapsed: Duration,
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
        )
    }
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
    conn.query_drop(create_table_sql(spec))
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
) -> Result<Option<Duration>, SinkError> {
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

/// 1000-row prepared statements, autocommitted, on one connection.
async fn multi_row(
    sink: &MysqlSink,
    spec: &TableSpec,
    rows: &[Vec<Cell>],
) -> Result<Option<Duration>, SinkError> {
    let mut conn = sink.dedicated_connection().await?;
    for chunk in rows.chunks(1000) {
        let sql = statement_sql(spec, chunk.len())?;
        let params: Vec<_> = chunk.iter().flatten().map(to_sql_value).collect();
        conn.exec_drop(sql, Params::Positional(params))
            .await
            .map_err(|e| sink.query_error("after_sales", &e))?;
    }
    Ok(None)
}

/// The qsync writer: batches of 1000 through `write_batch`, one commit at the end.
async fn qsync(
    sink: &MysqlSink,
    spec: &TableSpec,
    rows: &[Vec<Cell>],
    connections: usize,
) -> Result<Option<Duration>, SinkError> {
    let options = WriterOptions {
        connections,
        ..WriterOptions::default()
    };
    // Batches are owned like the transformer's output; building them is not timed.
    let batches: Vec<Vec<Vec<Cell>>> = rows.chunks(1000).map(<[_]>::to_vec).collect();
    let start = Instant::now();
    let mut writer = sink.window(spec, options).await?;
    for batch in batches {
        writer.write_batch(batch).await?;
    }
    writer.commit(Vec::new()).await?;
    Ok(Some(start.elapsed()))
}

/// Times `run`; a run that returns its own duration (it excludes its setup) wins.
async fn measure<F: std::future::Future<Output = Result<Option<Duration>, SinkError>>>(
    name: &str,
    rows: usize,
    run: F,
) -> Result<BenchLine, SinkError> {
    let start = Instant::now();
    let own = run.await?;
    let line = BenchLine {
        name: name.to_owned(),
        rows,
        elapsed: own.unwrap_or_else(|| start.elapsed()),
    };
    println!("{line}");
    Ok(line)
}

/// Runs every scenario against the database of `url` (its `after_sales` table is dropped
/// and recreated) with `rows` rows; prints each line as it completes and returns them.
pub async fn run(url: &str, rows: usize) -> Result<Vec<BenchLine>, SinkError> {
    let sink = MysqlSink::connect(url).await?;
    let data = sample_rows(rows);
    let one = encode_parts(&data, 1);
    let two = encode_parts(&data, 2);
    let insert = table(WriteMode::Insert)?;
    let replace = table(WriteMode::Replace)?;
    let upsert = table(WriteMode::Upsert)?;
    let n = data.len();
    let mut lines = Vec::new();

    println!("-- insert into an empty table");
    reset(&sink, &insert).await?;
    lines.push(
        measure(
            "LOAD DATA, 1 connection",
            n,
            load_data(&sink, &insert, &one),
        )
        .await?,
    );
    reset(&sink, &insert).await?;
    lines.push(
        measure(
            "LOAD DATA, 2 connections",
            n,
            load_data(&sink, &insert, &two),
        )
        .await?,
    );
    reset(&sink, &insert).await?;
    lines.push(
        measure(
            "multi-row INSERT x1000, 1 connection",
            n,
            multi_row(&sink, &insert, &data),
        )
        .await?,
    );
    reset(&sink, &insert).await?;
    lines.push(
        measure(
            "qsync insert (1 connection, 1 txn)",
            n,
            qsync(&sink, &insert, &data, 1),
        )
        .await?,
    );
    reset(&sink, &replace).await?;
    lines.push(
        measure(
            "qsync replace, empty table, 2 connections",
            n,
            qsync(&sink, &replace, &data, 2),
        )
        .await?,
    );

    println!("-- replace into a full table");
    reset(&sink, &replace).await?;
    let _ = load_data(&sink, &replace, &two).await?;
    lines.push(
        measure(
            "LOAD DATA REPLACE, 1 connection",
            n,
            load_data(&sink, &replace, &one),
        )
        .await?,
    );
    lines.push(
        measure(
            "LOAD DATA REPLACE, 2 connections",
            n,
            load_data(&sink, &replace, &two),
        )
        .await?,
    );
    lines.push(
        measure(
            "multi-row REPLACE x1000, 1 connection",
            n,
            multi_row(&sink, &replace, &data),
        )
        .await?,
    );
    lines.push(
        measure(
            "qsync replace, 1 connection",
            n,
            qsync(&sink, &replace, &data, 1),
        )
        .await?,
    );
    lines.push(
        measure(
            "qsync replace, 2 connections",
            n,
            qsync(&sink, &replace, &data, 2),
        )
        .await?,
    );

    println!("-- upsert into a full table");
    lines.push(
        measure(
            "multi-row upsert x1000, 1 connection",
            n,
            multi_row(&sink, &upsert, &data),
        )
        .await?,
    );
    lines.push(
        measure(
            "qsync upsert, 2 connections",
            n,
            qsync(&sink, &upsert, &data, 2),
        )
        .await?,
    );

    sink.disconnect().await;
    Ok(lines)
}
