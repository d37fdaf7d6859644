//! The MySQL sink: table DDL, statement text, and the batch writer that commits a window's
//! last rows together with its state update.
//!
//! Owns everything that talks to MySQL for row data ([`mysql`]), the error classification
//! the executor's retry logic reads ([`SinkError::class`]), and the per-test database helper
//! ([`testing`]). It does not own what the state rows mean (`state` builds them as
//! [`SqlStatement`]s) nor how rows are produced (`transform`). Nothing from `mysql_async`
//! leaves this module and `state`.

pub mod bench;
mod describe;
pub mod mysql;
#[doc(hidden)]
pub mod testing;
mod xa;

pub use self::describe::{LiveColumn, LiveTable};
pub use self::mysql::{
    column_sql, create_table_sql, statement_sql, ErrorClass, MysqlSink, SinkError, SqlStatement,
    TableSpec, WindowWriter, WriteMethod, WriteStats, WriterOptions,
};
pub use self::xa::Settled;
