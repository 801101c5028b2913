//! `modtrace deny NAME`: never list a module, or never honour an alias, whoever
//! asks; generate --deny's modprobe.d file refuses a denied module.

use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, PROFILE, ERROR, USAGE};

use crate::profile::{self, decide, Verdict};

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
Records in the profile that NAME, a module or an alias, is denied: generate, check \
and lock never list it whoever asked for it, and generate --deny's modprobe.d file \
refuses the module. A module the profile does not know may be denied too. Names \
starting with '-' are refused. The decision is kept when learning merges new \
sessions in; modtrace allow NAME replaces it.";

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "deny",
    exit_status: &[("0", "The decision is recorded in the profile."), ERROR, USAGE],
    files: &[PROFILE],
    examples: &[
        ("sudo modtrace deny algif_aead", "Never list algif_aead; generate --deny refuses it."),
        ("sudo modtrace deny net-pf-38", "Never honour the kernel's requests for net-pf-38."),
    ],
    see_also: &["modtrace(8)", "modtrace-allow(8)", "modtrace-review(8)", "modprobe.d(5)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The module (cramfs) or the alias as the kernel requested it (net-pf-5).
    #[arg(value_name = "NAME", allow_hyphen_values = true)]
    pub name: String,
    /// The profile to record the decision in.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    println!("{}", decide::record(&args.profile, &args.name, Verdict::Deny)?);
    Ok(ExitCode::SUCCESS)
}
