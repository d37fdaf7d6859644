//! `qsync check` from the command line: formats, exit codes, warnings, samples.
