//! `modtrace allow NAME`: accept a module or alias that only untrusted
//! processes asked for, so that generate, check and lock list it.

use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, PROFILE, ERROR, USAGE};

use crate::profile::{self, decide, Verdict};

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
Records in the profile that NAME, a module or an alias the kernel requested \
(net-pf-5, fs-vfat), is accepted although only untrusted processes asked for it: \
generate lists it (a user's or a container's unit still gets no drop-in), check \
and lock load it. Names starting with '-' are refused. The decision is kept when \
learning merges new sessions in; modtrace deny NAME replaces it.";

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "allow",
    exit_status: &[("0", "The decision is recorded in the profile."), ERROR, USAGE],
    files: &[PROFILE],
    examples: &[
        ("sudo modtrace allow net-pf-5", "Accept the AppleTalk socket requests an unprivileged user made."),
        ("sudo modtrace allow vfat", "Accept the module vfat, whoever asked for it."),
    ],
    see_also: &["modtrace(8)", "modtrace-deny(8)", "modtrace-review(8)", "modtrace-generate(8)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The module (snd_hda_intel) or the alias as the kernel requested it (net-pf-5).
    #[arg(value_name = "NAME", allow_hyphen_values = true)]
    pub name: String,
    /// The profile to record the decision in.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    println!("{}", decide::record(&args.profile, &args.name, Verdict::Allow)?);
    Ok(ExitCode::SUCCESS)
}
