//! sink (being built)
