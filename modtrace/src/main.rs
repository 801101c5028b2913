//! modtrace's command line: parse, then hand over to the subcommand. The
//! definitions are in the library (`modtrace::cli`), where the man pages and
//! completions are rendered from them too.

use std::process::ExitCode;

fn main() -> ExitCode {
    modtrace::cli::dispatch(modtrace::cli::parse())
}
