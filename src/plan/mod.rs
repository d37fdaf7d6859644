//! The compiled, validated plan (`plan::compile`): plain data that `exec` and the dry run
//! consume. Nothing downstream re-parses text.

mod types;

pub use types::*;

use crate::check::CheckedSpec;

/// Assembles the plan of a checked spec; `name` is the spec's file stem (its state key).
pub fn compile(name: &str, checked: CheckedSpec) -> Plan {
    Plan {
        title: checked.title,
        name: name.to_owned(),
        source: checked.source,
        transforms: checked.transforms,
        columns: checked.columns,
        target: checked.target,
        schedule: checked.schedule,
        remedy: checked.remedy,
        on_error: checked.on_error,
        alerts: checked.alerts,
    }
}
