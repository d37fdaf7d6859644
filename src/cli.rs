//! Command-line front end (being built).
