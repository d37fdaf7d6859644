//! The pest parser derived from `grammar/qsync.pest`. Nothing here leaves `syntax`.

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/qsync.pest"]
pub(crate) struct QsyncParser;
