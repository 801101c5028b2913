//! modtrace's command line: parse, then hand over to the subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use modtrace::cli;

/// Which kernel modules this machine needs, and who needs them.
#[derive(Parser)]
#[command(name = "modtrace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream every module request, load and unload, with who caused it.
    Trace(cli::trace::Args),
    /// Trace for a while and add what was loaded, and why, to the profile.
    Learn(cli::learn::Args),
    /// Show the profile: top-level modules, their causes and dependencies.
    Report(cli::report::Args),
    /// Record the loaded modules (/proc/modules) to compare later.
    Snapshot(cli::snapshot::Args),
    /// Compare two snapshots or profiles; exit 0 same, 1 different, 2 trouble.
    Diff(cli::diff::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Trace(args) => cli::trace::run(args),
        Command::Learn(args) => cli::learn::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::Snapshot(args) => cli::snapshot::run(args),
        Command::Diff(args) => cli::diff::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("modtrace: {err:#}");
            ExitCode::from(1)
        }
    }
}
