//! template (being built)
