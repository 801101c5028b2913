//! `modtrace allow NAME`: accept a module or alias that only untrusted
//! processes asked for, so that generate, check and lock list it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::profile::{self, decide, Verdict};

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
