//! `modtrace lock`: load what the profile needs, verify, then set
//! kernel.modules_disabled=1 now. Refuses when a required module does not load
//! or `modtrace check` finds blockers, unless --force; --dry-run changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::outputs::check::SystemPaths;
use crate::outputs::generate::LockPoint;
use crate::outputs::lock::{self, Options, SystemHost};
use crate::profile;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile whose modules must be loaded before the lock.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// Print every step; load nothing, lock nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Lock even when a required module failed to load or check found blockers.
    #[arg(long)]
    pub force: bool,
    /// Read and write /proc, /sys, /lib/modules and /etc under this directory instead of /.
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profile = crate::profile::load_existing(&args.profile)?;
    let paths = SystemPaths::new(&args.root);
    // Locking now: everything the boot starts has started, as with the late lock point.
    let report = super::check::evaluate(&profile, &paths, Some(LockPoint::Late));
    for w in &report.warnings {
        eprintln!("modtrace: warning: {w}");
    }
    let opts = Options { dry_run: args.dry_run, force: args.force };
    let required = lock::required(&profile, report.plan.as_ref());
    let outcome = lock::lock(&required, &report.blockers, &mut SystemHost::new(paths), opts);
    let (said, status) = outcome.said(opts);
    said.print();
    Ok(ExitCode::from(status))
}
