//! `modtrace deny NAME`: never list a module, or never honour an alias, whoever
//! asks; generate --deny's modprobe.d file refuses a denied module.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::profile::{self, decide, Verdict};

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
