//! `modtrace allow NAME`: accept a module or alias that only untrusted
//! processes asked for, so that generate, check and lock list it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::profile::{self, decide, system, Verdict};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The module (snd_hda_intel) or the alias as the kernel requested it (net-pf-5).
    #[arg(value_name = "NAME", allow_hyphen_values = true)]
    pub name: String,
    /// The profile to record the decision in.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
}

/// Records `verdict` on `name` in the profile at `path`, and says so.
pub fn record(path: &std::path::Path, name: &str, verdict: Verdict) -> anyhow::Result<ExitCode> {
    let d = decide::update(path, |p| decide::decide(p, name, verdict, &system::now()))?;
    let what = match verdict {
        Verdict::Allow => "accepted: modtrace generate lists it",
        Verdict::Deny => "denied: never listed; generate --deny refuses it",
    };
    println!("{} {}: {what} (recorded in {})", d.target_word(), d.name, path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    record(&args.profile, &args.name, Verdict::Allow)
}
