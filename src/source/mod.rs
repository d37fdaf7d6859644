//! source (being built)
