//! `modtrace report`: what the profile says, for a person deciding what to keep.

use std::path::{Path, PathBuf};
use std::process::ExitCode;


use crate::needs::target::Target;
use crate::profile;
use crate::outputs::report::{self, Format, GroupBy};
use crate::needs::sitepolicy::SitePolicy;

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
    let plan = needs_of(&p, Path::new("/"));
    print!("{}", report::render(&p, &plan, args.format, args.by));
    Ok(ExitCode::SUCCESS)
}

/// The needs stage's view of the profile as learned, under the site policy of
/// the system at `root`. A profile with names that cannot be written still
/// gets a report, without what is held back (the names are warned about).
pub fn needs_of(p: &profile::Profile, root: &Path) -> crate::needs::Plan {
    let site = SitePolicy::read(root);
    match crate::needs::derive(p, &site, &Target::from_profile(p)) {
        Ok(plan) => plan,
        Err(bad) => {
            for i in bad {
                eprintln!("modtrace: warning: the profile cannot be used to generate anything: {i}");
            }
            crate::needs::Plan::default()
        }
    }
}
