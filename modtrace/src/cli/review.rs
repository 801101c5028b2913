//! `modtrace review`: one module at a time of those only untrusted processes
//! asked for: accept, deny or skip; the decisions go into the profile.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::outputs::review;
use crate::profile;

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
