//! The MySQL sink: table DDL, statement text, the batch writer that commits a window's last
//! rows together with its state update, and the state tables themselves.
//!
//! Owns everything that talks to MySQL ([`mysql`]): row data, the state tables
//! ([`StateStore`]: cursors, window ledger, run history, rejects, leases), the two-phase
//! commit of `insert` windows (`xa`), the error classification the executor's retry logic
//! reads ([`SinkError::class`]), and the per-test database helper ([`testing`]). It does not
//! own what the state rows mean (`state`'s types and rules, which [`StateStore`] speaks)
//! nor how rows are produced (`transform`). Nothing from `mysql_async` leaves this module:
//! no connection is handed out, callers get qsync's own types.

pub mod bench;
mod connect;
mod describe;
pub mod mysql;
#[doc(hidden)]
pub mod testing;
mod xa;

pub use self::connect::{SslMode, Transport};
pub use self::describe::{LiveColumn, LiveTable, LiveTarget};
pub use self::mysql::{
    add_column_sql, column_sql, create_table_sql, load_statements, statement_sql, CommittedRows,
    ErrorClass, KeyCompare, MysqlSink, SinkError, StateStore, TableSpec, WindowWriter, WriteMethod,
    WriteStats, WriterOptions, BINARY_KEY_COLLATION, CURSOR_SQL, STATE_TABLES_SQL,
};
pub use self::xa::Settled;
