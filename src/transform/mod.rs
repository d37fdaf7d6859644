//! Records → rows: flatten, rename, split, filter, map and convert. Pure functions, no I/O.

mod cell;

pub use cell::Cell;
