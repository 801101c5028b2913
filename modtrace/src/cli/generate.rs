//! `modtrace generate`: the files that lock module loading down, from the
//! profile, written under a directory laid out like the root file system, to
//! review and then copy (or straight into / with --out /).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::outputs::generate::here::{self, Request};
use crate::outputs::generate::LockPoint;
use crate::profile;

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
    };
    let generated = here::generate_here(&request)?;
    generated.said.print();
    Ok(ExitCode::from(generated.status))
}
