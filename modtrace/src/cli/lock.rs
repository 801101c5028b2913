//! `modtrace lock`: load what the profile needs, verify, then set
//! kernel.modules_disabled=1 now. Refuses when a required module does not load
//! or `modtrace check` finds blockers, unless --force; --dry-run changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::outputs::check::SystemPaths;
use crate::outputs::generate::LockPoint;
use crate::outputs::lock::{self, Options, SystemHost, Verdict};
use crate::needs::trust;
use crate::profile::{self, Verdict as Decided};

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
    let profile = super::generate::load_profile(&args.profile)?;
    let paths = SystemPaths::new(&args.root);
    // Locking now: everything the boot starts has started, as with the late lock point.
    let report = crate::outputs::check::evaluate_system(&profile, &paths, Some(LockPoint::Late));
    let required: Vec<String> = match &report.plan {
        Some(plan) => plan.top_level.clone(),
        // No plan for this kernel (its index is unreadable): only with --force,
        // and then the profile's own top-level modules that a trusted cause or
        // an admin's allow asked for, and no deny refused.
        None => profile
            .modules
            .iter()
            .filter(|m| m.top_level && crate::validate::check_module(&m.name).is_ok())
            .filter(|m| {
                let decided = profile.decision(&m.name).map(|d| d.verdict);
                decided == Some(Decided::Allow)
                    || (decided.is_none() && m.triggers.iter().any(|t| trust::of_trigger(t).trusted()))
            })
            .map(|m| m.name.clone())
            .collect(),
    };
    for w in &report.warnings {
        eprintln!("modtrace: warning: {w}");
    }
    let mut host = SystemHost::new(paths);
    let outcome =
        lock::lock(&required, &report.blockers, &mut host, Options { dry_run: args.dry_run, force: args.force });
    for s in &outcome.steps {
        println!("{s}");
    }
    match &outcome.result {
        Verdict::Locked | Verdict::AlreadyLocked => Ok(ExitCode::SUCCESS),
        Verdict::AlreadyLockedMissing(missing) => {
            eprintln!(
                "modtrace: already locked, but {} required module(s) are not loaded: {}",
                missing.len(),
                missing.join(", ")
            );
            Ok(ExitCode::from(1))
        }
        Verdict::Refused(why) => {
            let what = if args.dry_run { "dry run: the lock would be refused" } else { "refusing to lock" };
            let force = if args.force { "" } else { "; --force locks anyway" };
            eprintln!("modtrace: {what} ({} reason(s) above){force}", why.len());
            Ok(ExitCode::from(1))
        }
        Verdict::Failed(e) => {
            eprintln!("modtrace: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
