//! `modtrace merge --out FLEET.json PROFILE...`: many hosts' profiles as one
//! fleet profile.

use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, ERROR, USAGE};

use crate::profile::fleet;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
Merges the profiles of several hosts into one fleet profile: each host is kept \
(its name, machine id, kernels, boots and learning sessions), and each module and \
cause lists the hosts that saw it. A host is its name plus its /etc/machine-id; \
the same host's profile given twice, or an earlier copy of it, counts once (a \
profile holding all the sessions of another replaces it; profiles of one host \
without a session in common add up; profiles sharing only some sessions are \
refused). Decisions merge conservatively: a deny on any input wins, and an allow \
counts for the host that made it. Every input is read before anything is \
written: an input that cannot be read as a host's profile is named, and OUT is \
left as it was. A fleet profile is read by every command that takes --profile: \
without more options, what was trusted on any host is needed.";

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "merge",
    exit_status: &[("0", "The fleet profile was written."), ERROR, USAGE],
    files: &[(
        "FLEET.json",
        "The fleet profile: a profile with a hosts list, and the hosts that saw each module and cause. The \
         format is described in /usr/share/doc/modtrace/docs/profile.md (Fleet profiles).",
    )],
    examples: &[
        (
            "modtrace merge --out fleet.json vm-kvm.json vm-vbox.json desktop.json",
            "One fleet profile from the profiles three hosts learned.",
        ),
        ("modtrace diff host.json fleet.json", "What one host loaded that the fleet has not seen, and the reverse."),
        ("modtrace generate --profile fleet.json", "The lock-down files for what any host of the fleet trusted."),
    ],
    see_also: &["modtrace(8)", "modtrace-learn(8)", "modtrace-report(8)", "modtrace-generate(8)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the fleet profile (replaced atomically).
    #[arg(long, value_name = "FLEET.json")]
    pub out: PathBuf,
    /// The hosts' profiles, of any schema modtrace reads.
    #[arg(value_name = "PROFILE", required = true)]
    pub profiles: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    fleet::merge_files(&args.profiles, &args.out)?.print();
    Ok(ExitCode::SUCCESS)
}
