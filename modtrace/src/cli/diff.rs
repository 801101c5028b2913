//! `modtrace diff A B`: compare two snapshots, two profiles, or one of each.
//! Exits 0 when they are the same, 1 when they differ, 2 on trouble, like diff(1).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::outputs::diff;

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
