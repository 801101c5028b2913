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
    /// Write modules-load.d, unit drop-ins and a lock unit from the profile.
    Generate(cli::generate::Args),
    /// Say what would break if module loading were locked; exit 0 safe, 1 blockers.
    Check(cli::check::Args),
    /// Load the needed modules, then set kernel.modules_disabled=1 now.
    Lock(cli::lock::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Trace(args) => cli::trace::run(args),
        Command::Learn(args) => cli::learn::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::Snapshot(args) => cli::snapshot::run(args),
        Command::Diff(args) => cli::diff::run(args),
        Command::Generate(args) => cli::generate::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Lock(args) => cli::lock::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("modtrace: {err:#}");
            ExitCode::from(1)
        }
    }
}
