//! `modtrace check`: what would break if module loading were locked now, or at
//! the lock point. Exit 0: no blocker; 1: blockers (listed).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::outputs::check::{self, SystemPaths};
use crate::outputs::generate::LockPoint;
use crate::profile;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile to check.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// The lock point to check for; default: the installed modtrace-lock.service's, else after-udev.
    #[arg(long, value_enum)]
    pub lock_point: Option<LockPoint>,
    /// Read /proc, /sys, /lib/modules and /etc under this directory instead of /.
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profile = super::generate::load_profile(&args.profile)?;
    let paths = SystemPaths::new(&args.root);
    let report = check::evaluate_system(&profile, &paths, args.lock_point);
    print!("{}", check::render(&report));
    Ok(if report.safe() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
