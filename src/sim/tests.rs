//! End-to-end simulator tests.
