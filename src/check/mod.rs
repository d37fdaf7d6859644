//! check (being built)
