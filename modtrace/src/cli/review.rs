//! `modtrace review`: one module at a time of those only untrusted processes
//! asked for: accept, deny or skip; the decisions go into the profile.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, PROFILE, ERROR, USAGE};

use crate::outputs::review;
use crate::profile;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = concat!(
    "Goes through the modules that only untrusted processes asked for, one at a time, \
showing what the module is (modinfo's description), who asked (uid, scope, unit, \
process), how often, and why that is not trusted, and asks: accept (list it), deny \
(never list it; generate --deny refuses it), skip (decide later) or quit. The \
decisions are written into the profile at the end, atomically and under the \
learner's lock, and are kept when learning merges new sessions in.\n\n",
    trust_text!()
);

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "review",
    exit_status: &[("0", "The pass ended (every item answered, skipped, or quit); the decisions are saved."), ERROR, USAGE],
    files: &[PROFILE],
    examples: &[
        ("sudo modtrace review", "Decide, one module at a time, what only untrusted processes asked for."),
        ("sudo modtrace review --profile ./p.json", "The same for another profile."),
    ],
    see_also: &["modtrace(8)", "modtrace-allow(8)", "modtrace-deny(8)", "modtrace-report(8)", "modinfo(8)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile to review and record the decisions in.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        eprintln!(
            "modtrace: review reads its answers from standard input (a for accept, d for deny, s for skip, q for quit)"
        );
    }
    let summary = review::review_file(&args.profile, &mut stdin.lock(), &mut io::stdout())?;
    println!("{}", review::closing_line(&summary, &args.profile));
    Ok(ExitCode::SUCCESS)
}
