//! `modtrace lock`: load what the profile needs, verify, then set
//! kernel.modules_disabled=1 now. Refuses when a required module does not load
//! or `modtrace check` finds blockers, unless --force; --dry-run changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, PROFILE, USAGE};

use crate::outputs::lock::{self, Options};
use crate::profile;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
Locks the running system now, as the late lock point would: runs the checks of \
modtrace check, loads each top-level module of the profile that is not loaded yet \
(modprobe), verifies that all of them are loaded (/proc/modules, built-in ones in \
/sys/module), then writes 1 to /proc/sys/kernel/modules_disabled.

It refuses, with the reasons, when check finds blockers or a required module does \
not load, unless --force. The lock cannot be undone: until the next reboot no module \
can be loaded or unloaded. Already locked: it says so.";

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "lock",
    exit_status: &[
        (
            "0",
            "Locked (with --dry-run: the lock would go ahead), or already locked with every required module loaded.",
        ),
        (
            "1",
            "Refused (check found blockers, or a required module did not load), already locked with a required \
             module missing, or an error.",
        ),
        USAGE,
    ],
    files: &[
        PROFILE,
        ("/proc/sys/kernel/modules_disabled", "Written 1 to lock; reads 1 once locked, until the next boot."),
    ],
    examples: &[
        ("sudo modtrace lock --dry-run", "Every step, and whether the lock would go ahead; nothing changes."),
        ("sudo modtrace lock", "Load what the profile needs, then lock module loading until the next boot."),
    ],
    see_also: &["modtrace(8)", "modtrace-check(8)", "modtrace-generate(8)", "proc(5)"],
};

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
    let (said, status) = lock::lock_here(&profile, &args.root, Options { dry_run: args.dry_run, force: args.force });
    said.print();
    Ok(ExitCode::from(status))
}
