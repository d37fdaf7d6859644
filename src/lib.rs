//! qsync: sync business data from SaaS HTTP APIs into MySQL, driven by `.qsync` specs.
//!
//! Flow (one direction): `syntax` → `check` → `plan` → `exec` (`source` → `connectors` →
//! `transform` → `sink` + `state`). `serve` schedules `exec` and hands alerts to `alerts`
//! for delivery; `sim` stands in for vendors.

pub mod alerts;
pub mod check;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod dryrun;
pub mod exec;
pub mod frontend;
pub mod import;
pub mod plan;
pub mod serve;
pub mod sim;
pub mod sink;
pub mod source;
pub mod state;
pub mod syntax;
pub mod template;
pub mod transform;
