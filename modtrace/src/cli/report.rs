//! `modtrace report`: what the profile says, for a person deciding what to keep.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::needs;
use crate::outputs::report::{self, Format, GroupBy};
use crate::profile;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile to read.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// table for reading, markdown for issues and wikis, json for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Group by top-level module (dependencies folded under it) or by systemd unit.
    #[arg(long, value_enum, default_value_t = GroupBy::Module)]
    pub by: GroupBy,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let p = profile::load_existing(&args.profile)?;
    let (plan, invalid) = needs::as_learned(&p, Path::new("/"));
    for i in invalid {
        eprintln!("modtrace: warning: the profile cannot be used to generate anything: {i}");
    }
    print!("{}", report::render(&p, &plan, args.format, args.by));
    Ok(ExitCode::SUCCESS)
}
