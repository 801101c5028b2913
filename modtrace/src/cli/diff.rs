//! `modtrace diff A B`: compare two snapshots, two profiles, or one of each.
//! Exits 0 when they are the same, 1 when they differ, 2 on trouble, like diff(1).

use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, PROFILE};

use crate::outputs::diff;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
Compares two lists of modules: snapshots (JSON or text, from modtrace snapshot), \
plain /proc/modules or lsmod output, or profiles, in any combination. Modules only \
in A and only in B are listed; where a profile knows why a module was loaded (A or B \
when they are profiles, or --profile), the cause is shown.";

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "diff",
    exit_status: &[
        ("0", "The same modules."),
        ("1", "The modules differ."),
        ("2", "Trouble: a file could not be read or understood (explained on standard error), or a usage error."),
    ],
    files: &[PROFILE],
    examples: &[
        ("modtrace diff before.json after.json", "Modules loaded or unloaded between two snapshots."),
        (
            "modtrace diff /var/lib/modtrace/profile.json /proc/modules",
            "What is loaded now that the profile has not seen, and what it knows that is not loaded.",
        ),
    ],
    see_also: &["modtrace(8)", "modtrace-snapshot(8)", "diff(1)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Before: a snapshot (JSON, text, /proc/modules or lsmod output) or a profile.
    pub a: PathBuf,
    /// After: a snapshot or a profile.
    pub b: PathBuf,
    /// A profile to explain the differences with (besides A or B when they are profiles).
    #[arg(long, value_name = "PATH")]
    pub profile: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(diff::status(&args.a, &args.b, args.profile.as_deref(), &mut std::io::stdout().lock())))
}
