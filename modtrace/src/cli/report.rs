//! `modtrace report`: what the profile says, for a person deciding what to keep.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use super::docs::{Page, PROFILE, ERROR, USAGE};

use crate::outputs::report::{self, Format, GroupBy};
use crate::profile;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = concat!(
    "Shows one row per top-level module (no other module in the profile depends on it: \
the ones to list, since their dependencies follow by themselves, also after a \
kernel upgrade) with what caused it to load (the unit with its scope, the uid, the \
process), and its dependencies folded under it. --by unit answers the other \
question: what does a given systemd unit need? A user's or a container's unit is \
shown apart from the host's unit of the same name. --by package groups the same \
needs by the Debian package of each unit and executable (read from dpkg while \
learning): what does the systemd package need, and for which units? A unit or \
executable whose package is not known, and a user's or a container's unit, is \
listed under (no package known), never guessed.\n\n\
On a fleet profile (modtrace merge) the report names the hosts, and every module \
row says on how many of them the module was seen (N/M; each cause too when there \
are several). --by host shows each host with what it needs and what waits for \
review there: its share of the fleet, under its own decisions and every deny of \
the fleet. Modules that need review, that \
an admin denied and that the site's modprobe.d disables have sections of their \
own, with the command that accepts each one waiting for review.\n\n",
    trust_text!()
);

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "report",
    exit_status: &[("0", "The report was printed."), ERROR, USAGE],
    files: &[PROFILE],
    examples: &[
        ("modtrace report", "Each top-level module, what caused it, and its dependencies."),
        ("modtrace report --by unit", "What each systemd unit needs."),
        ("modtrace report --by package", "What each Debian package's units and executables need."),
        (
            "modtrace report --profile fleet.json --by host",
            "What each host of a fleet profile needs, and what waits for review there.",
        ),
        ("modtrace report --format markdown > modules.md", "The same as a Markdown table, for an issue or a wiki."),
    ],
    see_also: &["modtrace(8)", "modtrace-learn(8)", "modtrace-generate(8)", "modtrace-merge(8)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile to read.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// table for reading, markdown for issues and wikis, json for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Group by top-level module (dependencies folded under it), systemd unit, host of a fleet, or Debian package.
    #[arg(long, value_enum, default_value_t = GroupBy::Module)]
    pub by: GroupBy,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    report::report_here(&args.profile, Path::new("/"), args.format, args.by)?.print();
    Ok(ExitCode::SUCCESS)
}
