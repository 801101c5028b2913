//! `modtrace check`: what would break if module loading were locked now, or at
//! the lock point. Exit 0: no blocker; 1: blockers (listed).

use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, PROFILE, USAGE};

use crate::outputs::check::{self, SystemPaths};
use crate::outputs::generate::LockPoint;
use crate::profile;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = concat!(
    "\
Reads the profile and the running system, and lists what would break if module \
loading were locked at the lock point (the installed modtrace-lock.service's, or \
--lock-point):

  a module loaded now that the profile neither lists nor needs as a dependency: after a locked boot nothing would load it
  a profile entry this kernel cannot resolve (a module renamed, removed or an alias gone)
  a request that would fail after the lock: its alias resolves to no module, or to none loaded before the lock
  a unit whose modules nothing loads before the lock point
  an installed modtrace-lock.service for this kernel that does not load a module the profile needs (regenerate it)
  kernel events lost while learning

Requests that already failed while learning only warn. When the profile shows a display \
manager (its unit, or a requester running one), an advice line says what the lock point means \
for the greeter, the session and hotplug. Shown as information: \
kernel.modules_disabled, kernel.modprobe, the kernel lockdown mode, \
module.sig_enforce and the active LSMs.\n\n\
Not blockers: what only untrusted processes asked for (listed under \"needs \
review\", with the command that accepts it), requests for a module the site's \
modprobe.d disables (a warning: denied by site policy), and modules an admin \
denied.\n\n",
    trust_text!()
);

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "check",
    exit_status: &[
        ("0", "Nothing found that would break after the lock."),
        ("1", "Blockers were found (listed), or an error (explained on standard error)."),
        USAGE,
    ],
    files: &[
        PROFILE,
        ("/etc/systemd/system/modtrace-lock.service", "The installed lock unit: its lock point."),
        ("/etc/modtrace/lock/KVER.conf", "The installed lock's module list for kernel KVER."),
        ("/proc/modules", "The modules loaded now."),
        ("/lib/modules/$(uname -r)/", "The running kernel's module index."),
    ],
    examples: &[
        ("sudo modtrace check", "Before enabling modtrace-lock.service, and after changing the hardware or the services."),
        ("sudo modtrace check --lock-point early", "The same, for a lock before sysinit.target."),
        ("sudo modtrace check --json", "The same report as one JSON object, for scripts."),
    ],
    see_also: &["modtrace(8)", "modtrace-generate(8)", "modtrace-lock(8)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile to check.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// The lock point to check for; default: the installed modtrace-lock.service's, else after-udev.
    #[arg(long, value_enum)]
    pub lock_point: Option<LockPoint>,
    /// Before rebooting into another kernel: compare the profile with KVER's module tree instead (renamed,
    /// split, merged, built in or gone; lock entries that cannot load); exit 1 when that boot's lock would fail.
    #[arg(long, value_name = "KVER", conflicts_with = "lock_point")]
    pub kernel: Option<String>,
    /// Print the report as one JSON object (safe, blockers, warnings, review, info, needed, desktop).
    #[arg(long, conflicts_with = "kernel")]
    pub json: bool,
    /// Read /proc, /sys, /lib/modules and /etc under this directory instead of /.
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profile = crate::profile::load_existing(&args.profile)?;
    if let Some(release) = &args.kernel {
        let (said, status) = crate::outputs::upgrade::check_kernel(&profile, &args.root, release)?;
        said.print();
        return Ok(ExitCode::from(status));
    }
    let paths = SystemPaths::new(&args.root);
    let report = check::evaluate_system(&profile, &paths, args.lock_point);
    print!("{}", if args.json { check::render_json(&report) } else { check::render(&report) });
    Ok(if report.safe() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
