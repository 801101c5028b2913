//! `modtrace generate`: the files that lock module loading down, from the
//! profile, written under a directory laid out like the root file system, to
//! review and then copy (or straight into / with --out /).

use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, PROFILE};

use crate::outputs::generate::here::{self, Request};
use crate::outputs::generate::LockPoint;
use crate::profile;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = concat!(
    "\
Reads the profile and writes, under --out and in the root file system's layout, the \
files that make the lock-down, printing every file it wrote:

  etc/modules-load.d/modtrace.conf  the top-level modules, one a line, for systemd-modules-load (their dependencies follow through modules.dep)
  etc/systemd/system/UNIT.d/modtrace-modules.conf  for each unit whose processes caused a load: Wants= and After=modprobe@NAME.service for each module it needs
  etc/systemd/system/modtrace-lock.service  loads the top-level modules, then writes 1 to /proc/sys/kernel/modules_disabled; not enabled by generate
  etc/modprobe.d/modtrace-deny.conf  with --deny only: refuses, and logs, every module of the kernel the profile does not need

Every file starts with a header naming modtrace's version, the command, the profile \
and kernel it was made from, and how to undo it; every listed module has a comment \
with its reasons. Drop-ins modtrace wrote earlier for units that no longer need one \
are removed. Names from the profile that are not valid module or unit names are \
refused, and nothing is written.

With --kernel, each cause in the profile is resolved again in that kernel's module \
index (modules.alias, modules.dep, modules.builtin): a request by its alias, a udev \
load by the module loaded for the device while the kernel has it (else by the \
device's modalias), anything else by the module's name. A module now \
built in is not listed; what resolves to nothing is reported as unresolved.

To install after review: cp -r /var/lib/modtrace/generated/etc/. /etc/, then \
systemctl daemon-reload and systemctl enable modtrace-lock.service. \
/usr/share/doc/modtrace/docs/lockdown.md explains the lock points and how to back out.\n\n",
    trust_text!(),
    " Modules the site's modprobe.d disables (install NAME /bin/false, a disabled-* \
script, blacklist for loads by alias) and modules an admin denied are not listed \
either; all of them are named in the comments of modules-load.d/modtrace.conf. \
No drop-in is written for a user's or a container's unit.

A fleet profile (modtrace merge) gives what any of its hosts trusted. With \
--min-hosts N, only the modules trusted on at least N of its hosts: the baseline a \
distribution ships, each host learning the rest. With --vendor DIR, instead of the \
site's files, each drop-in goes under DIR/PACKAGE/usr/lib/systemd/system/UNIT.d/, \
PACKAGE being the Debian package of the unit's file as learn recorded it: what a \
package could ship instead of a modules-load.d list."
);

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "generate",
    exit_status: &[
        ("0", "The files were written."),
        (
            "1",
            "An error: no profile, names in the profile that are not valid module or unit names (nothing is \
             written), a file that could not be written; or the files were written but a guard running from \
             this profile on this kernel could not be refreshed (the command to run is printed).",
        ),
        (
            "2",
            "The files were written, but some of the profile's entries resolve to nothing in the kernel (listed \
             on standard error and in the files); --allow-unresolved makes this 0. Also a usage error.",
        ),
    ],
    files: &[
        PROFILE,
        ("/var/lib/modtrace/generated/", "Where the files go by default (--out), laid out as under /."),
        ("/etc/modules-load.d/modtrace.conf", "The top-level modules, for systemd-modules-load."),
        ("/etc/systemd/system/UNIT.d/modtrace-modules.conf", "A unit's drop-in: the modules it needs."),
        ("/etc/systemd/system/modtrace-lock.service", "The lock unit: loads the running kernel's list, then locks."),
        ("/etc/modtrace/lock/KVER.conf", "The lock's module list for kernel KVER (one per kernel generated for)."),
        ("/etc/modprobe.d/modtrace-deny.conf", "With --deny: every other module of the kernel refused."),
        (
            "/etc/kernel/postinst.d/modtrace",
            "Runs modtrace generate --kernel KVER --out / for each newly installed kernel while \
             modtrace-lock.service is enabled.",
        ),
        (
            "/sys/fs/bpf/modtrace/guard/",
            "A running guard (modtrace guard): when it runs from the same profile on the kernel the files are \
             for, generate replaces its policy if what the profile allows changed.",
        ),
    ],
    examples: &[
        ("sudo modtrace generate", "Write the files under /var/lib/modtrace/generated, to review."),
        (
            "sudo cp -r /var/lib/modtrace/generated/etc/. /etc/ && sudo systemctl daemon-reload && sudo systemctl enable modtrace-lock.service",
            "Install them; the next boot locks module loading.",
        ),
        (
            "sudo modtrace generate --lock-point early --kernel 6.1.0-28-amd64",
            "Lock before sysinit.target, with the profile resolved in another installed kernel.",
        ),
        (
            "modtrace generate --profile fleet.json --min-hosts 3 --vendor vendor/",
            "The drop-ins, by package, of what at least 3 hosts of a fleet trusted.",
        ),
    ],
    see_also: &[
        "modtrace(8)",
        "modtrace-check(8)",
        "modtrace-lock(8)",
        "modules-load.d(5)",
        "modprobe.d(5)",
        "systemd.unit(5)",
        "systemd-modules-load.service(8)",
        "/usr/share/doc/modtrace/docs/lockdown.md",
    ],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile to read.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// The directory to write into, laid out like the root file system
    /// (DIR/etc/modules-load.d/..., DIR/etc/systemd/system/...). `--out /`
    /// installs directly.
    #[arg(long, value_name = "DIR", default_value = here::DEFAULT_OUT)]
    pub out: PathBuf,
    /// Resolve the profile's aliases, devices and module names against this
    /// kernel's modules (/lib/modules/KVER). Without it the profile's names are
    /// used as learned, for the kernel it was learned on.
    #[arg(long, value_name = "KVER")]
    pub kernel: Option<String>,
    /// The kernel's module directory, if not /lib/modules/KVER.
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,
    /// When modtrace-lock.service locks: early (before sysinit.target),
    /// after-udev (after udev settled, before logins), late (after multi-user.target).
    #[arg(long, value_enum, default_value_t = LockPoint::AfterUdev)]
    pub lock_point: LockPoint,
    /// Also write modprobe.d/modtrace-deny.conf, refusing every module of the
    /// kernel the profile does not need (for systems that keep loading enabled).
    #[arg(long)]
    pub deny: bool,
    /// Exit 0 even when some of the profile's entries resolve to nothing in the
    /// kernel; without it the exit status is then 2. Either way they are listed
    /// on stderr and in the files, and the files are written.
    #[arg(long)]
    pub allow_unresolved: bool,
    /// With a fleet profile (modtrace merge): only what was trusted on at least
    /// N of its hosts, the baseline a distribution ships.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub min_hosts: Option<u16>,
    /// Write, instead of the site's files, each packaged unit's drop-in under
    /// DIR/PACKAGE/usr/lib/systemd/system/UNIT.d/, as its package would ship it.
    #[arg(long, value_name = "DIR")]
    pub vendor: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let request = Request {
        profile: args.profile,
        out: args.out,
        kernel: args.kernel,
        modules_dir: args.modules_dir,
        lock_point: args.lock_point,
        deny: args.deny,
        allow_unresolved: args.allow_unresolved,
        min_hosts: args.min_hosts.map(usize::from),
        vendor: args.vendor,
    };
    let generated = here::generate_here(&request)?;
    generated.said.print();
    Ok(ExitCode::from(generated.status))
}
