//! `qsync plan` on the example specs, snapshot-tested.
