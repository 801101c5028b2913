//! One file per subcommand: its clap arguments and its `run`.

pub mod diff;
pub mod learn;
pub mod report;
pub mod snapshot;
pub mod trace;
