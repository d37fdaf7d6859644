//! Every spec in `specs/` passes `qsync check`.
