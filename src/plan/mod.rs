//! The compiled, validated plan (`plan::compile`) and its stable text rendering.

mod types;

pub use types::*;
