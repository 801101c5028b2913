//! One file per subcommand: its clap arguments and its `run`.

pub mod check;
pub mod diff;
pub mod generate;
pub mod learn;
pub mod lock;
pub mod report;
pub mod snapshot;
pub mod trace;
