//! The one integration-test binary: the real `qsync` binary, a real MariaDB and the
//! vendor simulator on loopback. One module per area.

mod check_corpus;
mod cli_check;
mod cli_check_catches;
mod cli_check_db;
mod cli_plan;
mod cli_run;
mod cli_sim;
mod engine;
mod examples;
mod examples_e2e;
mod hostile_input;
mod import;
mod layers;
mod no_local_infile;
mod numbers;
mod scripted;
mod secrets;
mod serve;
mod support;
mod systemd_unit;
mod test_setup;
mod tls;
mod vendor_faults;
