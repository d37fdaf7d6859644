//! syntax (being built)
