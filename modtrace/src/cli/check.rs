//! `modtrace check`: what would break if module loading were locked now, or at
//! the lock point. Exit 0: no blocker; 1: blockers (listed).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::outputs::check::{self, Inputs, SystemPaths};
use crate::needs::target::Target;
use crate::outputs::generate::LockPoint;
use crate::validate;
use crate::profile::{self, Profile};
use crate::needs::sitepolicy::SitePolicy;

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

/// The running kernel's target, from the state's release, or why not.
pub fn running_target(paths: &SystemPaths, state: &check::State) -> Result<Target, String> {
    let release = state
        .release
        .clone()
        .ok_or_else(|| format!("{}: cannot read the kernel release", paths.osrelease().display()))?;
    validate::check_release(&release).map_err(|rule| format!("kernel release {release:?}: {rule}"))?;
    Target::open(&release, &paths.modules_dir(&release)).map_err(|e| e.to_string())
}

/// Runs the check for `profile` on the system under `paths`.
pub fn evaluate(profile: &Profile, paths: &SystemPaths, lock_point: Option<LockPoint>) -> check::Report {
    let state = check::read_state(paths);
    let target = running_target(paths, &state);
    let installed = check::read_installed(paths);
    let lock_point = lock_point.or(installed.as_ref().and_then(|i| i.lock_point)).unwrap_or(LockPoint::AfterUdev);
    check::evaluate(&Inputs {
        profile,
        target: target.as_ref().map_err(Clone::clone),
        state: &state,
        lock_point,
        installed,
        configured: check::configured_modules(paths),
        site: SitePolicy::read(&paths.root),
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profile = crate::profile::load_existing(&args.profile)?;
    let paths = SystemPaths::new(&args.root);
    let report = evaluate(&profile, &paths, args.lock_point);
    print!("{}", check::render(&report));
    Ok(if report.safe() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
