//! sim (being built)
